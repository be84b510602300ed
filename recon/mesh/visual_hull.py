"""Initial meshes: the visual hull of the masks (NDS §3.3, appendix B), a sphere, or the user's file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import trimesh

from recon.mesh import clean
from recon.mesh.errors import EmptyHullError, MeshError
from recon.mesh.mesh import Mesh
from render.isosurface import Lattice, extract_isosurface

if TYPE_CHECKING:
    from recon.data.scene import View

log = logging.getLogger(__name__)


def visual_hull(
    views: Sequence[View],
    bbox: np.ndarray,
    resolution: int = 32,
    *,
    padding: float = 0.05,
    min_seen: float = 0.5,
    device: torch.device | str | None = None,
) -> Mesh:
    """The surface of the grid points inside every mask, in world coordinates, CCW outward.

    A grid point is kept if it projects into the images (in front of the camera) of at least
    `min_seen` of the views and, in every view whose image it projects into, the bilinearly
    sampled mask is ≥ 0.5. Views that do not see a point do not carve it, so objects cut off by
    some images survive; points barely seen at all go, or a bbox far from the object would keep
    whatever lies behind it in the few views that see it. The field passed to marching cubes is
    the minimum mask value over the views, so the surface lands between grid points where the
    silhouettes are, not on a staircase.

    Args:
        views: objects with `.mask` (H, W) float in [0, 1] and `.camera` (render.camera.Camera).
        bbox: (2, 3) world-space rows min, max; the hull is clipped to it (plus `padding`).
        resolution: grid points along the longest bbox side (NDS uses 32); spacing is isotropic.
        padding: grow the bbox by this fraction of its longest side on every side.
        min_seen: fraction of the views whose image a point must project into (at least one view).
        device: where the returned mesh lives (default CPU).

    Raises:
        EmptyHullError: no grid point lies inside every mask.
        MeshError: bad bbox or resolution.
    """
    if len(views) == 0:
        raise EmptyHullError("visual hull needs at least one view with a mask, got none")
    points, shape = _grid(bbox, resolution, padding)  # #N,3 x-fastest; (nx, ny, nz)
    occupancy = _carve(points, views, max(1, int(np.ceil(min_seen * len(views)))))  # #N in [0, 1]
    grid = occupancy.reshape(shape[::-1])  # (nz, ny, nx)
    grid[[0, -1]] = grid[:, [0, -1]] = grid[:, :, [0, -1]] = 0.0  # closes the surface where the bbox clips it
    if not (grid >= 0.5).any():
        raise EmptyHullError(
            f"visual hull is empty: no grid point lies inside every mask ({len(views)} views, "
            f"{resolution}³ grid over bbox {np.asarray(bbox).tolist()}): cameras or masks are "
            "inconsistent (wrong convention? inverted masks? bbox not around the object?)"
        )
    touching = _shell_fraction(grid >= 0.5)
    if touching > 0.5:
        log.warning(
            "visual hull fills %.0f%% of the bbox's outer layer: the bbox may be too small or the masks inverted",
            100 * touching,
        )
    # The project's one Marching Cubes (render.isosurface): x-first values, inside below the level.
    lattice = Lattice(shape, points[0], points[-1])
    surface = extract_isosurface(0.5 - grid.transpose(2, 1, 0), lattice, level=0.0, min_gap=0.0)
    v, f = surface.vertices, surface.faces
    spacing = float(points[1, 0] - points[0, 0])
    v, f = _tidy(np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64), tol=1e-6 * spacing)
    if len(f) == 0:
        raise EmptyHullError(
            "visual hull is empty: marching cubes found no surface (the inside is thinner than one grid cell; "
            f"raise the resolution above {resolution})"
        )
    mesh = trimesh.Trimesh(v, f, process=False)
    if not mesh.is_watertight:
        log.warning("visual hull is not watertight (%d faces); remeshing may fail", len(f))
    log.info("visual hull: %d vertices, %d faces at %s grid", len(v), len(f), "×".join(map(str, shape)))
    return Mesh.from_numpy(v, f, device)


def _grid(bbox: np.ndarray, resolution: int, padding: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Grid points #N,3 (x fastest, then y, then z) and the counts (nx, ny, nz)."""
    bbox = np.asarray(bbox, dtype=np.float64)
    if bbox.shape != (2, 3) or not np.isfinite(bbox).all() or (bbox[1] <= bbox[0]).any():
        raise MeshError(f"visual hull needs a finite (2, 3) bbox with min < max, got {bbox.tolist()}")
    if resolution < 4:
        raise MeshError(f"visual hull resolution must be at least 4, got {resolution}")
    lo, hi = bbox
    pad = padding * float(np.max(hi - lo))
    lo, hi = lo - pad, hi + pad
    spacing = float(np.max(hi - lo)) / (resolution - 1)
    counts = np.maximum(np.ceil((hi - lo) / spacing).astype(int) + 1, 4)  # (3,)
    centre = (lo + hi) / 2
    axes = [centre[k] + spacing * (np.arange(counts[k]) - (counts[k] - 1) / 2) for k in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")  # each (nz, ny, nx)
    points = np.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)], axis=1)  # #N,3
    return points, (int(counts[0]), int(counts[1]), int(counts[2]))


def _shell_fraction(inside: np.ndarray) -> float:
    """Fraction of the grid's second-outermost layer (the first that may be inside) that is inside."""
    core = inside[1:-1, 1:-1, 1:-1]
    shell = core.copy()
    shell[1:-1, 1:-1, 1:-1] = False
    total = core.size - max(core.shape[0] - 2, 0) * max(core.shape[1] - 2, 0) * max(core.shape[2] - 2, 0)
    return float(shell.sum()) / max(total, 1)


def _carve(points: np.ndarray, views: Sequence[View], min_seen: int) -> np.ndarray:
    """Minimum mask value over the views that see each point #N (0 where fewer than `min_seen` do)."""
    field = np.ones(len(points), dtype=np.float32)  # #N
    seen = np.zeros(len(points), dtype=np.int32)  # #N views whose image each point falls in
    for view in views:  # a loop over views; every point of a view at once
        active = np.flatnonzero(field > 0)  # points already carved to 0 stay 0
        if len(active) == 0:
            break
        mask = np.asarray(view.mask, dtype=np.float32)
        h, w = mask.shape
        uv, z = view.camera.project(points[active])  # #A,2, #A
        inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        idx = active[inside]
        field[idx] = np.minimum(field[idx], _bilinear(mask, uv[inside]))
        seen[idx] += 1
    field[seen < min_seen] = 0.0
    return field


def _bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample (H, W) `image` at pixel coordinates #N,2 (corner convention: centres at +0.5)."""
    h, w = image.shape
    x = np.clip(uv[:, 0] - 0.5, 0, w - 1)
    y = np.clip(uv[:, 1] - 0.5, 0, h - 1)
    x0 = np.minimum(x.astype(np.int64), w - 2) if w > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(y.astype(np.int64), h - 2) if h > 1 else np.zeros(len(y), np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _tidy(v: np.ndarray, f: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Weld coincident vertices, drop degenerate faces and specks, and wind faces outward."""
    v, f = clean.merge_close_vertices(v, f, tol)
    f = clean.drop_degenerate_faces(f)
    if len(f) == 0:
        return v[:0], f
    v, f = clean.largest_component(v, f)
    return v, clean.orient_outward(v, f)


def sphere(
    radius: float = 1.0,
    subdivisions: int = 3,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    device: torch.device | str | None = None,
) -> Mesh:
    """An icosphere (20·4^subdivisions faces), CCW outward: the initial mesh when there are no masks."""
    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh.from_numpy(ico.vertices + np.asarray(center, dtype=np.float64), ico.faces, device)


def read_trimesh(path: Path | str) -> trimesh.Trimesh:
    """A triangle mesh file as trimesh reads it, unprocessed (face order kept).

    Raises:
        MeshError: the file is missing, unreadable or holds no triangles (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such mesh file")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise MeshError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f"{path}: holds no triangles (a point cloud or an empty scene?)")
    return loaded


def load_mesh(path: Path | str, device: torch.device | str | None = None) -> Mesh:
    """A user's initial mesh (any format trimesh reads), cleaned and wound outward.

    Raises:
        MeshError: the file is missing, unreadable or holds no triangles (the message names it).
    """
    path = Path(path)
    loaded = read_trimesh(path)
    v = np.asarray(loaded.vertices, dtype=np.float64)
    if not np.isfinite(v).all():
        raise MeshError(f"{path}: vertices contain NaN or Inf")
    scale = float(np.max(v.max(axis=0) - v.min(axis=0)))
    v, f = clean.merge_close_vertices(v, np.asarray(loaded.faces, dtype=np.int64), 1e-7 * scale)
    f = clean.drop_degenerate_faces(f)
    if len(f) == 0:
        raise MeshError(f"{path}: every face is degenerate")
    v, f = clean.remove_unreferenced(v, f)
    tm = trimesh.Trimesh(v, f, process=False)
    if tm.is_watertight:
        f = clean.orient_outward(v, f)
    else:
        log.warning("%s: mesh is not watertight; it cannot change topology to close its holes", path)
    if clean.non_manifold_edge_count(f):
        log.warning("%s: mesh has non-manifold edges; remeshing it will fail", path)
    return Mesh.from_numpy(v, f, device)
