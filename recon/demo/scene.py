"""The demo object from its recipe: signed-distance primitives, the ground-truth mesh and materials, the cameras.

A recipe (resources/demo_scene.json, the pot; resources/part_scene.json, a machined part) describes
the object as signed-distance primitives combined by smooth union / subtraction, the materials, a
fixed world-space lighting, a camera ring and the image size. Everything here is a pure function of the recipe; `recon.demo.render` draws it and
`recon.demo.dataset` writes and caches the dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from importlib import resources as importlib_resources
from typing import Any

import gpytoolbox
import numpy as np
import trimesh

from render.camera import Camera
from resources import DEFAULT_DEMO_SCENE, DEMO_SCENES

log = logging.getLogger(__name__)

RECIPE_FILE = "demo_scene.json"  # the pot's recipe, and the name of the recipe's copy in every demo dataset
TRUE_MATERIALS = "gt_materials.npy"  # a demo dataset's per-face material of its true mesh (`recon.eval.REFERENCE_MESH`)

Recipe = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Recipe


def load_recipe(views: int | None = None, size: int | None = None, scene: str = DEFAULT_DEMO_SCENE) -> Recipe:
    """A shipped recipe (`resources.DEMO_SCENES`), optionally with fewer views / smaller images (tests, quick looks)."""
    if scene not in DEMO_SCENES:
        raise ValueError(f"no bundled demo scene {scene!r}; known: {sorted(DEMO_SCENES)}")
    text = importlib_resources.files("resources").joinpath(DEMO_SCENES[scene]).read_text(encoding="utf-8")
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
