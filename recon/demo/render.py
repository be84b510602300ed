"""Drawing the demo object: Blinn-Phong materials under fixed lights, rendered by the project's rasterizer.

The appearance is a static function f(x, n, ω) of surface point, normal and view direction:
exactly what the neural shader learns. Supersampling and area-averaging give the masks soft edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from recon.demo.scene import Recipe
from render.camera import Camera


# ----------------------------------------------------------------------------------------------
# Shading


@dataclass(frozen=True)
class Shading:
    """Blinn-Phong materials and fixed world-space lights, as tensors.

    Attributes:
        albedo: (M, 3) diffuse colour per material.
        pattern_period, pattern_contrast: (M,) a material's optional solid checkerboard (recipe
            `"pattern": {"period": P, "contrast": C}`): cubes of side P in world space alternate
            between the albedo and the albedo × (1 − C). Contrast 0 = plain. A texture that the
            shader's h(x) has to hold, which the plain glazes never ask of it.
        specular: (M,) strength of the white highlight.
        shininess: (M,) Blinn-Phong exponent.
        light_dirs: (L, 3) unit directions *towards* each directional light.
        light_intensity: (L,) intensity of each light.
        ambient: constant ambient term.
    """

    albedo: torch.Tensor
    pattern_period: torch.Tensor
    pattern_contrast: torch.Tensor
    specular: torch.Tensor
    shininess: torch.Tensor
    light_dirs: torch.Tensor
    light_intensity: torch.Tensor
    ambient: float

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Shading:
        mats, lighting = recipe["materials"], recipe["lighting"]
        patterns = [(m.get("pattern", {}).get("period", 1.0), m.get("pattern", {}).get("contrast", 0.0)) for m in mats]
        for m, (period, contrast) in zip(mats, patterns):
            if not (period > 0 and 0 <= contrast <= 1):
                raise ValueError(f"demo recipe: material {m['name']!r} has pattern {m['pattern']}; needs period > 0 and 0 <= contrast <= 1")
        dirs = torch.tensor([light["direction"] for light in lighting["lights"]], dtype=torch.float32)
        return cls(
            albedo=torch.tensor([m["albedo"] for m in mats], dtype=torch.float32),
            pattern_period=torch.tensor([period for period, _ in patterns], dtype=torch.float32),
            pattern_contrast=torch.tensor([contrast for _, contrast in patterns], dtype=torch.float32),
            specular=torch.tensor([m["specular"] for m in mats], dtype=torch.float32),
            shininess=torch.tensor([m["shininess"] for m in mats], dtype=torch.float32),
            light_dirs=F.normalize(dirs, dim=1),
            light_intensity=torch.tensor([light["intensity"] for light in lighting["lights"]], dtype=torch.float32),
            ambient=float(lighting["ambient"]),
        )


def shade(shading: Shading, position: torch.Tensor, normal: torch.Tensor, eye: torch.Tensor, material: torch.Tensor) -> torch.Tensor:
    """Blinn-Phong colour (N, 3) in [0, 1] of surface samples seen from `eye`.

    Args:
        position: (N, 3) world points; normal: (N, 3) outward normals (need not be unit);
        eye: (3,) camera centre; material: (N,) int64 index into the shading tables.
    """
    n = F.normalize(normal, dim=1)
    v = F.normalize(eye[None] - position, dim=1)
    n_dot_l = (n @ shading.light_dirs.T).clamp(min=0)  # (N, L)
    half = F.normalize(shading.light_dirs[None] + v[:, None], dim=2)  # (N, L, 3)
    n_dot_h = (n[:, None] * half).sum(dim=2).clamp(min=0)
    highlight = n_dot_h ** shading.shininess[material][:, None] * (n_dot_l > 0)
    diffuse = shading.ambient + n_dot_l @ shading.light_intensity
    specular = shading.specular[material] * (highlight @ shading.light_intensity)
    cells = torch.floor(position / shading.pattern_period[material][:, None]).sum(dim=1)
    dark = torch.remainder(cells, 2) * shading.pattern_contrast[material]
    albedo = shading.albedo[material] * (1 - dark)[:, None]
    return (albedo * diffuse[:, None] + specular[:, None]).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# Rendering with the project's rasterizer


@dataclass(frozen=True)
class Surface:
    """The ground-truth mesh as tensors for rendering: float32 verts/normals (V, 3), int64 faces (F, 3), materials (F,)."""

    verts: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor
    materials: torch.Tensor

    @classmethod
    def from_mesh(cls, mesh: trimesh.Trimesh, materials: np.ndarray) -> Surface:
        return cls(
            verts=torch.tensor(np.array(mesh.vertices), dtype=torch.float32),
            faces=torch.tensor(np.array(mesh.faces), dtype=torch.int64),
            normals=torch.tensor(np.array(mesh.vertex_normals), dtype=torch.float32),
            materials=torch.tensor(materials, dtype=torch.int64),
        )


def box_corners(bbox: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a (2, 3) min/max box."""
    idx = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), axis=-1).reshape(-1, 3)
    return bbox[idx, [0, 1, 2]]


def render_view(rasterizer: Any, surface: Surface, camera: Camera, shading: Shading, bbox: np.ndarray, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) straight-alpha RGB and (H, W) soft mask of one view, both float32 in [0, 1].

    Rendered at `supersample`× the camera's size and area-averaged, so edge pixels get partial
    coverage like a photo's; colour is averaged over the covered sub-samples only.
    """
    from render import interpolate, rasterize, to_clip

    big = camera.scaled(supersample)
    near, far = big.near_far(box_corners(bbox))
    clip = torch.as_tensor(big.clip_matrix(near, far), dtype=torch.float32)
    pos = to_clip(surface.verts, clip).contiguous()
    frags = rasterize(rasterizer, pos, surface.faces, (big.height, big.width), layers=1)
    covered = frags.tri_id[0] >= 0
    gbuf = interpolate(torch.cat([surface.verts, surface.normals], dim=1), surface.faces, frags)[0][covered]
    eye = torch.as_tensor(camera.center, dtype=torch.float32)
    colour = torch.zeros(big.height, big.width, 3)
    colour[covered] = shade(shading, gbuf[:, :3], gbuf[:, 3:], eye, surface.materials[frags.tri_id[0][covered]])
    return _area_downsample(colour, covered.float(), supersample)


def _area_downsample(colour: torch.Tensor, coverage: torch.Tensor, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter (H·f, W·f) premultiplied colour and coverage to (H, W); un-premultiply the colour."""
    stacked = torch.cat([colour, coverage[..., None]], dim=2).permute(2, 0, 1)[None]
    pooled = F.avg_pool2d(stacked, factor)[0].permute(1, 2, 0)
    alpha = pooled[..., 3]
    rgb = pooled[..., :3] / alpha.clamp(min=1e-6)[..., None]
    return rgb.clamp(0, 1).numpy(), alpha.numpy()
