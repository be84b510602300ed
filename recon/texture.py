"""Baking the shader's colour into a UV texture atlas: what game engines, Blender and trimesh read.

Vertex colours (`export.bake_vertex_colors`) are one colour per vertex, and many tools ignore them
when a material is present (trimesh and Blender's glTF importer among them). A texture atlas is
the form every tool shows. The atlas is made by xatlas (charts, parameterisation and packing);
each texel's surface point is found by rasterizing the triangles in UV space with the project's
own GL rasterizer (clip x = 2u − 1, y = 2v − 1, so image row r holds v = (r + ½)/H, row 0 on top,
as PNG and glTF store it); the shader is evaluated there exactly as for vertex colours (ω = n),
and the colours are dilated a few texels past every chart's border so that bilinear filtering
and mipmaps never reach the empty background.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recon.shader import NeuralShader, Normalization
from render.backends.gl import GLRasterizer
from render.viewer.features import FeatureEdits

log = logging.getLogger(__name__)

DILATION = 4  # texels of colour grown past each chart's border


@dataclass(frozen=True)
class TexturedMesh:
    """A mesh split along its UV seams, with its texture.

    Attributes:
        vertices: (V', 3) float64 world positions (seam vertices duplicated).
        faces: (F, 3) int64, the input faces' order and orientation.
        uv: (V', 2) float32 in [0, 1]; v grows downwards in the image (row = v · H).
        image: (H, W, 3) float32 sRGB in [0, 1].
        source_vertex: (V',) int64 index of each vertex in the input mesh.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    image: np.ndarray
    source_vertex: np.ndarray


def _numpy(a: np.ndarray | torch.Tensor, dtype: type) -> np.ndarray:
    return np.array(a.detach().cpu().numpy() if torch.is_tensor(a) else a, dtype=dtype)


def auto_texture_size(faces: int) -> int:
    """About 16 texels per face, as a power of two in [256, 4096]: a texture that resolves the
    mesh's own detail without costing more shader evaluations than it shows."""
    return int(min(4096, max(256, 1 << math.ceil(math.log2(math.sqrt(16 * max(faces, 1)))))))


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """xatlas charts packed at about `size` texels a side.

    Returns:
        (source_vertex (V',), faces (F, 3), uv (V', 2) in [0, 1], (width, height) of the image: a
        power-of-two square holding the atlas).
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(size * 0.9)  # xatlas may grow the atlas a little; leave room within `size`
    pack.padding = DILATION // 2 + 1
    atlas.generate(pack_options=pack)
    source, atlas_faces, uv = atlas[0]
    # A power-of-two square image (what mipmapping and older engines want): the atlas in its top-left.
    side = 1 << max(4, math.ceil(math.log2(max(atlas.width, atlas.height))))
    uv = uv * np.array([atlas.width / side, atlas.height / side], np.float32)
    log.info("texture atlas: %d charts in %d×%d texels of a %d² image", atlas.chart_count, atlas.width, atlas.height, side)
    return source.astype(np.int64), atlas_faces.astype(np.int64), uv.astype(np.float32), (side, side)


def texel_fragments(
    uv: np.ndarray, faces: np.ndarray, width: int, height: int, rasterizer: GLRasterizer
) -> tuple[torch.Tensor, torch.Tensor]:
    """(face id (H, W) int64, −1 where empty; barycentrics (H, W, 3)) of each texel centre.

    Both windings are rasterized, since the GL rasterizer culls back faces and a chart may be
    mirrored in UV space.
    """
    uv_t = torch.from_numpy(uv).to(torch.float64)
    clip = torch.stack([2 * uv_t[:, 0] - 1, 2 * uv_t[:, 1] - 1, torch.zeros_like(uv_t[:, 0]), torch.ones_like(uv_t[:, 0])], 1)
    f = torch.from_numpy(faces)
    both = torch.cat([f, f[:, [0, 2, 1]]])
    frags = rasterizer.rasterize(clip.float(), both, (height, width), layers=1)
    ids = frags.tri_id[0]
    bary = frags.bary[0].clone()
    flipped = ids >= len(faces)
    bary[flipped] = bary[flipped][:, [0, 2, 1]]
    return torch.where(flipped, ids - len(faces), ids), bary


def dilate(image: torch.Tensor, filled: torch.Tensor, texels: int = DILATION) -> torch.Tensor:
    """Grow colours into empty texels, `texels` rings deep (each the mean of its filled neighbours)."""
    img = image.permute(2, 0, 1)[None] * filled[None, None]
    mask = filled[None, None].to(image.dtype)
    kernel = torch.ones(1, 1, 3, 3, dtype=image.dtype)
    for _ in range(texels):
        total = F.conv2d(img, kernel.expand(img.shape[1], 1, 3, 3), padding=1, groups=img.shape[1])
        count = F.conv2d(mask, kernel, padding=1)
        grow = (mask == 0) & (count > 0)
        img = torch.where(grow, total / count.clamp(min=1), img)
        mask = torch.where(grow, torch.ones_like(mask), mask)
    return img[0].permute(1, 2, 0)


def bake_texture(
    shader: NeuralShader,
    vertices_world: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    normals: np.ndarray | torch.Tensor,
    normalization: Normalization,
    size: int | None = None,
    edits: FeatureEdits | None = None,
) -> TexturedMesh:
    """Charts, texel rasterization and the shader's colour per texel (ω = n, as for vertex colours).

    Args:
        shader, normalization, edits: as for `export.bake_vertex_colors`.
        vertices_world, faces, normals: the mesh (V, 3), (F, 3), (V, 3) unit vertex normals.
        size: the image's side in texels (a power of two at least this large holds the atlas);
            None: `auto_texture_size` of the face count.
    """
    from recon.export import shade_surface_points

    if size is not None and size < 16:
        raise ValueError(f"texture size must be at least 16 texels, got {size}")
    v, f, n = (_numpy(a, t) for a, t in ((vertices_world, np.float64), (faces, np.int64), (normals, np.float64)))
    source, atlas_faces, uv, (width, height) = uv_atlas(v, f, size or auto_texture_size(len(f)))
    rasterizer = GLRasterizer()
    try:
        face_id, bary = texel_fragments(uv, atlas_faces, width, height, rasterizer)
    finally:
        rasterizer.release()
    filled = face_id >= 0
    corners = torch.from_numpy(source[atlas_faces])[face_id[filled]]  # (T, 3) input vertex indices
    weights = bary[filled].to(torch.float64)[..., None]
    x = (torch.from_numpy(v)[corners] * weights).sum(1)
    nrm = (torch.from_numpy(n)[corners] * weights).sum(1)
    colours = shade_surface_points(shader, x, nrm, normalization, edits=edits)
    image = torch.zeros((height, width, 3), dtype=torch.float32)
    image[filled] = torch.from_numpy(colours)
    image = dilate(image, filled)
    log.info("baked %d texels (%.0f %% of the atlas)", int(filled.sum()), 100 * float(filled.float().mean()))
    return TexturedMesh(v[source], atlas_faces, uv, image.clamp(0, 1).numpy(), source)
