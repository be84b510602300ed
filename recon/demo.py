"""The bundled demo scene: a procedural object rendered into a calibrated NDS dataset on first use.

The recipe (resources/demo_scene.json) describes the object as signed-distance primitives combined
by smooth union / subtraction, the materials, a fixed world-space lighting, a camera ring and the
image size. `demo_dataset()` turns it into a folder in the NDS format (per view `name.png` RGBA,
alpha = mask, and `name_k.txt`, `name_r.txt`, `name_t.txt`; `bbox.txt`) plus the ground truth
(`gt_mesh.ply`, `gt_materials.npy`: per-face material index into the recipe's `materials`, and a
copy of the recipe). It is built once under the user's cache directory, in a folder named after a
hash of the recipe, so editing the recipe rebuilds it and the old folder is left alone.

The images come from the project's own rasterizer (render, `gl` backend) with Blinn-Phong shading
under fixed lights, so the appearance is a static function f(x, n, ω) of surface point, normal and
view direction: exactly what the neural shader learns. Supersampling gives masks soft edges.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import gpytoolbox
import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from recon.data.images import write_rgba
from render.camera import Camera

log = logging.getLogger(__name__)

# Bump when the builder's output changes for the same recipe (the folder name carries it).
CACHE_VERSION = "v1"
RECIPE_FILE = "demo_scene.json"

Recipe = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Recipe


def load_recipe(views: int | None = None, size: int | None = None) -> Recipe:
    """The shipped recipe, optionally with fewer views / smaller images (tests, quick looks)."""
    text = importlib_resources.files("resources").joinpath(RECIPE_FILE).read_text(encoding="utf-8")
    recipe = json.loads(text)
    if views is not None:
        recipe["cameras"]["count"] = int(views)
    if size is not None:
        recipe["image"]["width"] = recipe["image"]["height"] = int(size)
    return recipe


def recipe_hash(recipe: Recipe) -> str:
    """Short content hash of a recipe; names the cache folder so any change rebuilds."""
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------
# Geometry: signed distance functions (negative inside), evaluated on (N, 3) points in a
# primitive's local frame.


def _sphere(p: np.ndarray, prim: dict) -> np.ndarray:
    return np.linalg.norm(p, axis=1) - prim["radius"]


def _rounded_cylinder(p: np.ndarray, prim: dict) -> np.ndarray:
    """Cylinder along local y with rounded rims (radius, half_height, rounding)."""
    r = prim["rounding"]
    d = np.stack(
        [np.linalg.norm(p[:, [0, 2]], axis=1) - prim["radius"] + r, np.abs(p[:, 1]) - prim["half_height"] + r],
        axis=1,
    )
    return np.minimum(d.max(axis=1), 0) + np.linalg.norm(np.maximum(d, 0), axis=1) - r


def _torus(p: np.ndarray, prim: dict) -> np.ndarray:
    """Ring in the local xz plane round the local y axis (major_radius, minor_radius)."""
    q = np.stack([np.linalg.norm(p[:, [0, 2]], axis=1) - prim["major_radius"], p[:, 1]], axis=1)
    return np.linalg.norm(q, axis=1) - prim["minor_radius"]


def _rounded_box(p: np.ndarray, prim: dict) -> np.ndarray:
    """Box with the given half_extents (outer size) and rounded edges."""
    r = prim["rounding"]
    q = np.abs(p) - np.asarray(prim["half_extents"]) + r
    return np.minimum(q.max(axis=1), 0) + np.linalg.norm(np.maximum(q, 0), axis=1) - r


_SHAPES: dict[str, Callable[[np.ndarray, dict], np.ndarray]] = {
    "sphere": _sphere,
    "rounded_cylinder": _rounded_cylinder,
    "torus": _torus,
    "rounded_box": _rounded_box,
}


def _rotation(degrees: list[float]) -> np.ndarray:
    """Rotation matrix for XYZ Euler angles in degrees (applied x first)."""
    ax, ay, az = np.radians(degrees)
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def primitive_sdf(prim: dict, points: np.ndarray) -> np.ndarray:
    """Distance (N,) from world points (N, 3) to one recipe primitive, placed and rotated."""
    if prim["shape"] not in _SHAPES:
        raise ValueError(f"demo recipe: primitive {prim.get('name')!r} has unknown shape {prim['shape']!r}; known: {sorted(_SHAPES)}")
    rot = _rotation(prim.get("rotation_deg", [0.0, 0.0, 0.0]))
    local = (points - np.asarray(prim["center"])) @ rot  # = rotᵀ (x - c) per row
    return _SHAPES[prim["shape"]](local, prim)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: blends the two surfaces over a band of width k (k = 0: min)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def scene_sdf(recipe: Recipe, points: np.ndarray) -> np.ndarray:
    """Signed distance bound (N,) of the whole object: primitives combined in recipe order."""
    d = np.full(len(points), np.inf)
    for prim in recipe["primitives"]:
        di = primitive_sdf(prim, points)
        k = float(prim.get("blend", 0.0))
        if prim["op"] == "union":
            d = _smooth_min(d, di, k) if np.isfinite(d).all() else di
        elif prim["op"] == "subtract":
            d = -_smooth_min(-d, di, k)
        else:
            raise ValueError(f"demo recipe: primitive {prim.get('name')!r} has unknown op {prim['op']!r}; use union or subtract")
    return d


def _grid(recipe: Recipe) -> tuple[np.ndarray, int]:
    """Grid vertices (n³, 3) in the x-fastest order gpytoolbox.marching_cubes expects, and n."""
    spec = recipe["mesh"]
    n = int(spec["grid_resolution"])
    axes = [np.linspace(lo, hi, n) for lo, hi in zip(spec["grid_min"], spec["grid_max"])]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    return np.stack([x, y, z], axis=-1).reshape(-1, 3, order="F"), n


def _touches_boundary(volume: np.ndarray) -> bool:
    """Whether the inside (≤ 0) reaches any face of an (n, n, n) grid: marching cubes would cut it open."""
    faces = [volume[[0, -1]], volume[:, [0, -1]], volume[:, :, [0, -1]]]
    return any(bool((f <= 0).any()) for f in faces)


def build_mesh(recipe: Recipe) -> trimesh.Trimesh:
    """Marching cubes of the object's SDF, cleaned into one watertight, outward-oriented surface."""
    grid, n = _grid(recipe)
    values = scene_sdf(recipe, grid)
    if _touches_boundary(values.reshape(n, n, n, order="F")):
        raise ValueError("demo recipe: the object touches the mesh grid's boundary; enlarge mesh.grid_min/grid_max")
    verts, faces = gpytoolbox.marching_cubes(values, grid, n, n, n, 0.0)
    mesh = trimesh.Trimesh(verts, faces, process=True)  # merges the duplicated vertices
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        log.info("demo mesh: keeping the largest of %d connected parts", len(parts))
        mesh = max(parts, key=lambda m: len(m.faces))
    if mesh.volume < 0:
        mesh.invert()
    if not (mesh.is_watertight and mesh.is_winding_consistent):
        raise ValueError("demo recipe: marching cubes gave a mesh that is not watertight; thicken thin parts or refine the grid")
    return mesh


def face_materials(recipe: Recipe, mesh: trimesh.Trimesh) -> np.ndarray:
    """Per-face material index (F,) int64: the material of the primitive that dominates there.

    The union's surface lies where the smallest signed distance is zero, so the primitive with
    the smallest signed distance at a face centroid is the one that made that face. Primitives
    without a material (carving tools) do not compete: a carved surface lies inside the solid it
    was carved from, whose distance is then the most negative, so it keeps that solid's material.
    """
    names = [m["name"] for m in recipe["materials"]]
    owners = [p for p in recipe["primitives"] if p.get("material") is not None]
    unknown = {p["material"] for p in owners} - set(names)
    if unknown:
        raise ValueError(f"demo recipe: primitives use undefined materials {sorted(unknown)}")
    centroids = mesh.triangles_center
    distance = np.stack([primitive_sdf(p, centroids) for p in owners], axis=1)
    owner_material = np.array([names.index(p["material"]) for p in owners], dtype=np.int64)
    return owner_material[distance.argmin(axis=1)]


def bounding_box(mesh: trimesh.Trimesh, padding: float) -> np.ndarray:
    """(2, 3) rows min, max: the mesh's box grown by `padding` world units on every side."""
    return np.stack([mesh.bounds[0] - padding, mesh.bounds[1] + padding])


# ----------------------------------------------------------------------------------------------
# Cameras


def ring_cameras(recipe: Recipe) -> list[Camera]:
    """Cameras on a spiral round the object, looking at the target.

    Elevations spread evenly in sin(elevation) over the recipe's range (upper and lower hemisphere,
    so the visual hull is tight everywhere), azimuths advance by the golden angle and distances
    alternate between the two given values, so no two views are alike.
    """
    spec, image = recipe["cameras"], recipe["image"]
    n = int(spec["count"])
    i = np.arange(n)
    lo, hi = np.radians(spec["elevation_deg"])
    elevation = np.arcsin(np.sin(lo) + (np.sin(hi) - np.sin(lo)) * (i + 0.5) / n)
    azimuth = i * np.pi * (3 - np.sqrt(5))
    near, far = spec["distance"]
    distance = np.where(i % 2 == 0, near, far)
    up = np.asarray(recipe["up"], dtype=np.float64)
    up /= np.linalg.norm(up)
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    planar = np.cos(azimuth)[:, None] * e1 + np.sin(azimuth)[:, None] * e2
    directions = np.cos(elevation)[:, None] * planar + np.sin(elevation)[:, None] * up
    target = np.asarray(spec["target"], dtype=np.float64)
    eyes = target + distance[:, None] * directions
    return [Camera.look_at(eye, target, up, spec["fov_deg"], image["width"], image["height"]) for eye in eyes]


# ----------------------------------------------------------------------------------------------
# Shading


@dataclass(frozen=True)
class Shading:
    """Blinn-Phong materials and fixed world-space lights, as tensors.

    Attributes:
        albedo: (M, 3) diffuse colour per material.
        specular: (M,) strength of the white highlight.
        shininess: (M,) Blinn-Phong exponent.
        light_dirs: (L, 3) unit directions *towards* each directional light.
        light_intensity: (L,) intensity of each light.
        ambient: constant ambient term.
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    shininess: torch.Tensor
    light_dirs: torch.Tensor
    light_intensity: torch.Tensor
    ambient: float

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Shading:
        mats, lighting = recipe["materials"], recipe["lighting"]
        dirs = torch.tensor([light["direction"] for light in lighting["lights"]], dtype=torch.float32)
        return cls(
            albedo=torch.tensor([m["albedo"] for m in mats], dtype=torch.float32),
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
    return (shading.albedo[material] * diffuse[:, None] + specular[:, None]).clamp(0, 1)


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


# ----------------------------------------------------------------------------------------------
# Writing the dataset and caching it


def write_view(folder: Path, name: str, image: np.ndarray, mask: np.ndarray, camera: Camera) -> None:
    """One view in the NDS layout: RGBA PNG (alpha = mask) and K, R, t as full-precision text."""
    write_rgba(folder / f"{name}.png", image, mask)
    for suffix, value in (("k", camera.K), ("r", camera.R), ("t", camera.t)):
        np.savetxt(folder / f"{name}_{suffix}.txt", value, fmt="%.17g")


def build(recipe: Recipe, out: Path) -> None:
    """Build the whole demo dataset described by `recipe` into the folder `out` (created if needed)."""
    from render import make_rasterizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mesh = build_mesh(recipe)
    materials = face_materials(recipe, mesh)
    bbox = bounding_box(mesh, float(recipe["mesh"]["bbox_padding"]))
    log.info("demo mesh: %d vertices, %d faces (%.1f s)", len(mesh.vertices), len(mesh.faces), time.perf_counter() - start)
    mesh.export(out / "gt_mesh.ply")
    np.save(out / "gt_materials.npy", materials, allow_pickle=False)
    np.savetxt(out / "bbox.txt", bbox, fmt="%.17g")
    (out / RECIPE_FILE).write_text(json.dumps(recipe, indent=2), encoding="utf-8")

    cameras = ring_cameras(recipe)
    surface, shading = Surface.from_mesh(mesh, materials), Shading.from_recipe(recipe)
    supersample = int(recipe["image"].get("supersample", 1))
    with make_rasterizer("gl") as rasterizer:  # gl everywhere: the same images on every machine
        for i, camera in enumerate(cameras):
            image, mask = render_view(rasterizer, surface, camera, shading, bbox, supersample)
            write_view(out, f"view_{i:03d}", image, mask, camera)
            if (i + 1) % 10 == 0 or i + 1 == len(cameras):
                log.info("demo: rendered %d/%d views", i + 1, len(cameras))
    log.info("demo dataset built in %.1f s", time.perf_counter() - start)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/reconstruct, or ~/.cache/reconstruct."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reconstruct"


def demo_dataset(cache_dir: Path | None = None, rebuild: bool = False, recipe: Recipe | None = None) -> Path:
    """The demo dataset's folder, built on first use and reused afterwards.

    Args:
        cache_dir: where dataset folders live; default `default_cache_dir()`.
        rebuild: build again even when a finished folder exists.
        recipe: a recipe dict (default: the shipped one, `load_recipe()`); its hash names the folder.

    Safe with concurrent callers: each builds into its own temporary folder beside the target and
    renames it into place; whoever finishes second uses the first one's folder.
    """
    recipe = load_recipe() if recipe is None else copy.deepcopy(recipe)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"demo-{CACHE_VERSION}-{recipe_hash(recipe)}"
    if target.is_dir() and not rebuild:
        log.debug("demo dataset cached at %s", target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    log.info("building the demo dataset in %s (first use; takes a little while)", target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=root))
    try:
        build(recipe, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the dataset is ordinary user data
        _publish(staging, target, replace=rebuild)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_abandoned(root)
    return target


def _remove_abandoned(root: Path, older_than_s: float = 24 * 3600) -> None:
    """Delete staging folders left by builds that were killed (a day old: surely not running)."""
    now = time.time()
    for folder in root.glob(".demo-*.building-*"):
        try:
            if now - folder.stat().st_mtime > older_than_s:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # another caller removed it meanwhile
            pass


def _publish(staging: Path, target: Path, replace: bool) -> None:
    """Rename a finished folder into place; keep a competitor's if it got there first (unless replacing)."""
    if replace and target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        try:
            target.rename(retired)
        except FileNotFoundError:
            pass
        shutil.rmtree(retired, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        log.info("another process finished the demo dataset first; using %s", target)

