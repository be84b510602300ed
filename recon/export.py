"""What a run hands to other tools: meshes (PLY, OBJ, GLB) with baked vertex colours, and run records.

Meshes are written in world coordinates. Colours come in as sRGB in [0, 1] (what the neural
shader outputs: it was fit to the photos' pixel values) and are stored as 8-bit per channel:

- PLY: `red green blue alpha` uchar vertex properties, sRGB (the de-facto PLY convention).
- OBJ: `v x y z r g b` with r, g, b floats in [0, 1], sRGB (trimesh's and MeshLab's extension).
- GLB: COLOR_0 as normalised unsigned bytes. glTF defines COLOR_0 as *linear*, so the sRGB
  colours are converted with the exact sRGB transfer function before quantising (mid-grey
  0.5 → 0.214). The mesh gets a material with `KHR_materials_unlit` (the shader's colours
  already contain the lighting) and, for viewers without that extension, metallic 0 /
  roughness 1 rather than glTF's default fully metallic material. 8-bit linear storage bands
  slightly in very dark shades; that is glTF's usual trade-off.

Every file is written atomically (temporary file + `os.replace`) and its folder created.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import platform
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh

from recon.atomic import write_bytes_atomic, write_text_atomic
from recon.errors import FileError
from recon.shader import NeuralShader, Normalization
from recon.texture import TexturedMesh
from render.viewer.features import FeatureEdits, apply_feature_edits

log = logging.getLogger(__name__)

BAKE_CHUNK = 65_536  # points per shader call when baking: ~70 MB of activations at the default sizes


class ExportError(FileError):
    """A file cannot be exported: `path` is the target and `message` says why."""


# ----------------------------------------------------------------------------- colours


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB electro-optical transfer function (IEC 61966-2-1), elementwise on [0, 1]."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_rgba8(colors: np.ndarray) -> np.ndarray:
    """(V, 3) floats in [0, 1] → (V, 4) uint8 with opaque alpha."""
    rgb = np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.concatenate((rgb, np.full((len(rgb), 1), 255, np.uint8)), axis=1)


# ----------------------------------------------------------------------------- exporters


def _trimesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> trimesh.Trimesh:
    # process=False keeps vertex order and count exactly as given (no merging, no reordering).
    return trimesh.Trimesh(
        vertices=vertices,
        faces=faces,
        vertex_colors=None if colors is None else _to_rgba8(colors),
        process=False,
    )


def _export_ply(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> bytes:
    return trimesh.exchange.ply.export_ply(_trimesh(vertices, faces, colors), encoding="binary")


def _export_obj(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> bytes:
    text = trimesh.exchange.obj.export_obj(
        _trimesh(vertices, faces, colors), include_normals=False, include_color=True, include_texture=False
    )
    return text.encode("utf-8")


def _glb_chunks(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a GLB into its JSON and BIN chunks (glTF 2.0 §4.4)."""
    magic, _version, _length = struct.unpack_from("<4sII", blob, 0)
    if magic != b"glTF":
        raise ValueError("not a GLB blob")
    json_len, json_type = struct.unpack_from("<I4s", blob, 12)
    if json_type != b"JSON":
        raise ValueError("GLB does not start with a JSON chunk")
    tree = json.loads(blob[20 : 20 + json_len])
    rest = 20 + json_len
    binary = b""
    if rest < len(blob):
        bin_len, _bin_type = struct.unpack_from("<I4s", blob, rest)
        binary = blob[rest + 8 : rest + 8 + bin_len]
    return tree, binary


def _glb_pack(tree: dict[str, Any], binary: bytes) -> bytes:
    """Inverse of `_glb_chunks`: chunks padded to 4 bytes (JSON with spaces, BIN with zeros)."""
    text = json.dumps(tree, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    if binary:
        binary += b"\0" * (-len(binary) % 4)
        body += struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _buffer_view_targets(tree: dict[str, Any]) -> dict[str, Any]:
    """Set each vertex and index bufferView's `target`, which trimesh leaves out (the glTF
    validator's BUFFER_VIEW_TARGET_MISSING: some loaders guess the buffer kind without it)."""
    accessors, views = tree.get("accessors", []), tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            uses = [(a, _ARRAY_BUFFER) for a in primitive.get("attributes", {}).values()]
            if "indices" in primitive:
                uses.append((primitive["indices"], _ELEMENT_ARRAY_BUFFER))
            for accessor, target in uses:
                view = accessors[accessor].get("bufferView")
                if view is not None:
                    views[view]["target"] = target
    return tree


def _export_glb(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> bytes:
    linear = None if colors is None else srgb_to_linear(colors)
    blob = trimesh.exchange.gltf.export_glb(_trimesh(vertices, faces, linear), include_normals=False)
    # trimesh gives colour-only meshes no material (→ glTF's default: white, fully metallic).
    tree, binary = _glb_chunks(blob)
    material: dict[str, Any] = {
        "name": "baked" if colors is not None else "default",
        "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0},
        "doubleSided": False,
    }
    if colors is not None:
        material["extensions"] = {"KHR_materials_unlit": {}}
        used = tree.setdefault("extensionsUsed", [])
        if "KHR_materials_unlit" not in used:
            used.append("KHR_materials_unlit")
    materials = tree.setdefault("materials", [])
    materials.append(material)
    for mesh in tree.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            primitive.setdefault("material", len(materials) - 1)
    return _glb_pack(_buffer_view_targets(tree), binary)


MeshExporter = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], bytes]

EXPORTERS: dict[str, MeshExporter] = {
    "ply": _export_ply,
    "obj": _export_obj,
    "glb": _export_glb,
}


def export_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    path: Path | str,
    colors: np.ndarray | None = None,
    file_type: str | None = None,
) -> Path:
    """Write a triangle mesh, optionally with per-vertex colours; the format follows the suffix.

    Args:
        vertices: (V, 3) float, world coordinates.
        faces: (F, 3) int vertex indices, counter-clockwise seen from outside.
        path: target file; its folder is created.
        colors: optional (V, 3) float sRGB in [0, 1] (values outside are clipped).
        file_type: a key of `EXPORTERS`, overriding the suffix.

    Returns:
        The path written.

    Raises:
        ExportError: unknown format, or arrays of the wrong shape.
    """
    path = Path(path)
    kind = (file_type or path.suffix.lstrip(".")).lower()
    if kind not in EXPORTERS:
        raise ExportError(path, f"unknown mesh format {kind!r}; known formats: {', '.join(sorted(EXPORTERS))}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ExportError(path, f"need vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ExportError(path, f"face indices outside 0..{len(v) - 1}")
    c = None
    if colors is not None:
        c = np.asarray(colors, dtype=np.float64)
        if c.shape != v.shape:
            raise ExportError(path, f"colors must be (V, 3) = {v.shape}, got {c.shape}")
    blob = EXPORTERS[kind](v, f, c)
    write_bytes_atomic(path, blob)
    log.info("exported %d vertices, %d faces to %s", len(v), len(f), path)
    return path


# ----------------------------------------------------------------------------- baking


def _as_double(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """CPU float64 tensor of an array or tensor, detached."""
    if torch.is_tensor(a):
        return a.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.array(a, dtype=np.float64))  # a copy: inputs may be read-only


def shade_surface_points(
    shader: NeuralShader,
    points_world: np.ndarray | torch.Tensor,
    normals: np.ndarray | torch.Tensor,
    normalization: Normalization,
    view: str | np.ndarray | torch.Tensor = "normal",
    edits: FeatureEdits | None = None,
) -> np.ndarray:
    """The shader's colour at surface points, seen from one view each: vertices or texels.

    The shader is view dependent; a baked colour must pick one view. The default `"normal"`
    looks straight at each surface point (ω = n), the view that sees the point best and the
    one most photos of it are close to. Alternatively pass a fixed unit direction (3,) or one
    per point (N, 3), pointing from the surface towards the viewer.

    Args:
        shader: the trained shader (its device and dtype are used).
        points_world: (N, 3) world positions.
        normals: (N, 3) unit normals (renormalised here).
        normalization: (centre, scale) with x_n = (x - centre) · scale.
        view: "normal", or view directions as above.
        edits: material edits applied between h and c (recon.materials.feature_edits), so the
            baked colours show the edited appearance; None bakes the shader as trained.

    Returns:
        (N, 3) float32 sRGB in [0, 1].
    """
    param = next(shader.parameters())
    device, dtype = param.device, param.dtype
    centre, scale = normalization
    x, n = _as_double(points_world), _as_double(normals)
    if x.ndim != 2 or x.shape[1] != 3 or n.shape != x.shape:
        raise ValueError(f"need points and normals of shape (N, 3), got {tuple(x.shape)} and {tuple(n.shape)}")
    # Normalise in float64 before casting, so large world coordinates keep their precision.
    x = (x - _as_double(centre)) * float(scale)
    n = torch.nn.functional.normalize(n, dim=-1)
    if isinstance(view, str):
        if view != "normal":
            raise ValueError(f"view must be 'normal' or direction(s), got {view!r}")
        omega = n
    else:
        omega = torch.nn.functional.normalize(_as_double(view).reshape(-1, 3), dim=-1)
        if omega.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"view directions must be (3,) or (N, 3) = {tuple(x.shape)}, got {tuple(omega.shape)}")
        omega = omega.expand_as(x)

    out = torch.empty((x.shape[0], 3), dtype=torch.float32)
    was_training = shader.training
    shader.eval()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], BAKE_CHUNK):
                sl = slice(start, start + BAKE_CHUNK)
                xs = x[sl].to(device, dtype)
                h = apply_feature_edits(shader.features(xs), xs, edits)
                rgb = shader.color(h, n[sl].to(device, dtype), omega[sl].to(device, dtype))
                out[sl] = rgb.float().cpu()
    finally:
        shader.train(was_training)
    return out.numpy()


# One colour per vertex: the shader at the vertices with their normals, (V, 3) float32 sRGB.
bake_vertex_colors = shade_surface_points


# ----------------------------------------------------------------------------- textured meshes

TEXTURED_FORMATS = ("glb", "obj")


def _textured_trimesh(mesh: TexturedMesh, name: str) -> trimesh.Trimesh:
    from PIL import Image

    image = Image.fromarray(np.round(mesh.image * 255).astype(np.uint8))
    # trimesh's UVs have v upwards (OpenGL); ours grow down the image, as glTF's and PNG's rows do.
    uv = np.column_stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]])
    material = trimesh.visual.material.PBRMaterial(
        name=name, baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0, doubleSided=False
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, visual=visual, process=False)


def _unlit(tree: dict[str, Any]) -> dict[str, Any]:
    """Mark every material unlit (the baked colours already hold the lighting)."""
    for material in tree.get("materials", []):
        material.setdefault("extensions", {})["KHR_materials_unlit"] = {}
    used = tree.setdefault("extensionsUsed", [])
    if "KHR_materials_unlit" not in used:
        used.append("KHR_materials_unlit")
    return tree


def export_textured_mesh(mesh: TexturedMesh, path: Path | str, file_type: str | None = None) -> list[Path]:
    """Write a textured mesh: GLB (texture embedded, unlit material) or OBJ + MTL + PNG beside it.

    Returns:
        The files written, the mesh first.

    Raises:
        ExportError: a format without textures.
    """
    path = Path(path)
    kind = (file_type or path.suffix.lstrip(".")).lower()
    if kind not in TEXTURED_FORMATS:
        raise ExportError(path, f"textures need one of {', '.join(TEXTURED_FORMATS)}, not {kind!r} (PLY takes vertex colours)")
    tm = _textured_trimesh(mesh, path.stem)
    if kind == "glb":
        tree, binary = _glb_chunks(trimesh.exchange.gltf.export_glb(tm, include_normals=False))
        write_bytes_atomic(path, _glb_pack(_buffer_view_targets(_unlit(tree)), binary))
        written = [path]
    else:
        text, files = trimesh.exchange.obj.export_obj(
            tm, include_normals=False, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl"
        )
        write_bytes_atomic(path, text.encode("utf-8"))
        written = [path]
        for name, data in files.items():
            written.append(write_bytes_atomic(path.parent / name, data))
    log.info("exported %d faces with a %d×%d texture to %s", len(mesh.faces), mesh.image.shape[1], mesh.image.shape[0], path)
    return written


def export_baked(
    shader: NeuralShader,
    vertices_world: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    normals: np.ndarray | torch.Tensor,
    normalization: Normalization,
    path: Path | str,
    file_type: str | None = None,
    texture: bool | None = None,
    texture_size: int | None = None,
    edits: FeatureEdits | None = None,
) -> list[Path]:
    """The shader's appearance baked into a mesh file, as every front end exports it.

    `texture=None` picks what the format's readers show: a texture atlas for GLB and OBJ (trimesh,
    Blender and game engines ignore vertex colours beside a material), vertex colours for PLY.
    `texture_size=None` sizes the atlas from the face count (`texture.auto_texture_size`).

    Returns:
        The files written, the mesh first.
    """
    path = Path(path)
    kind = (file_type or path.suffix.lstrip(".")).lower()
    if kind not in EXPORTERS:
        raise ExportError(path, f"unknown mesh format {kind!r}; known formats: {', '.join(sorted(EXPORTERS))}")
    if texture is None:
        texture = kind in TEXTURED_FORMATS
    if texture:
        from recon.texture import bake_texture

        baked = bake_texture(shader, vertices_world, faces, normals, normalization, texture_size, edits)
        return export_textured_mesh(baked, path, kind)
    colors = bake_vertex_colors(shader, vertices_world, normals, normalization, edits=edits)
    v = _as_double(vertices_world).numpy()
    return [export_mesh(v, _as_double(faces).long().numpy(), path, colors=colors, file_type=kind)]


# ----------------------------------------------------------------------------- run records


def _jsonable(obj: Any) -> Any:
    """Recursively turn numpy/torch values, paths and tuples into JSON types.

    Non-finite floats become the strings "inf", "-inf", "nan" (strict JSON has no such
    numbers; `float(s)` reads them back), e.g. the PSNR of two identical images.
    """
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    raise TypeError(f"cannot write a {type(obj).__name__} to the run record")


def write_run_record(path: Path | str, record: Mapping[str, Any]) -> Path:
    """Write `record` as indented, strict JSON, atomically; numpy/torch values are converted.

    Raises:
        TypeError: a value has no JSON form.
    """
    text = json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions that decide whether a run can be reproduced: interpreter, OS, key libraries, ours."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "reconstruct": _dist_version("reconstruct"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "numpy": np.__version__,
        "trimesh": trimesh.__version__,
        "scipy": _dist_version("scipy"),
        "safetensors": _dist_version("safetensors"),
    }
