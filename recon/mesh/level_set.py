"""Marching cubes of an implicit field with coarse-to-fine refinement near the surface (MISE-like).

    v, f = extract_level_set(field, box_min, box_max, level=0.0, resolution=16, refinements=2)

The field is any torch callable points (M, 3) → values (M,), "inside" where value > level (an
occupancy logit, level 0 for τ = 0.5). Like Occupancy Networks' MISE: the field is evaluated on a
coarse grid of `resolution`³ cells; each refinement halves the cell size, evaluates the field only
at the new grid points inside (or one cell around) cells whose corners straddle the level, and
fills every other point by trilinear interpolation of the coarser grid. An interpolated cell has
all its corners on one side of the level (trilinear weights are a convex combination), so it
holds no surface and marching cubes puts triangles only where the field was evaluated. A thin
part that falls between coarse grid points is missed, as with MISE; raise `resolution` for it.

The grid's outer layer is forced outside, so the mesh is closed where the box clips the object.
Faces are counter-clockwise seen from outside (the project's convention). Marching cubes itself is
`render.isosurface.extract_isosurface`, the one implementation the RtS isosurfaces use too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from render.isosurface import Lattice, extract_isosurface

Field = Callable[[torch.Tensor], torch.Tensor]

#: Points per field call.
EXTRACT_CHUNK = 65536


def _grid_points(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """(n³, 3) grid points, x fastest; array index [k, j, i] = (z, y, x)."""
    axes = [np.linspace(lo[d], hi[d], n) for d in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


@torch.no_grad()
def _evaluate(field: Field, points: np.ndarray, dtype: torch.dtype, device: torch.device) -> np.ndarray:
    out = []
    for i in range(0, len(points), EXTRACT_CHUNK):
        p = torch.as_tensor(points[i : i + EXTRACT_CHUNK], dtype=dtype, device=device)
        v = field(p)
        out.append(v.reshape(len(p)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _surface_cells(values: np.ndarray, level: float) -> np.ndarray:
    """(n-1)³ bool: cells whose 8 corners are not all on one side of the level."""
    inside = values > level
    k, j, i = (s - 1 for s in inside.shape)
    corners = [inside[a : a + k, b : b + j, c : c + i] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    any_in = np.logical_or.reduce(corners)
    all_in = np.logical_and.reduce(corners)
    return any_in & ~all_in


def _dilate(cells: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(cells.astype(np.float32))[None, None]
    return (F.max_pool3d(t, 3, stride=1, padding=1)[0, 0] > 0).numpy()


def extract_level_set(
    field: Field,
    box_min: Sequence[float],
    box_max: Sequence[float],
    level: float = 0.0,
    resolution: int = 32,
    refinements: int = 2,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of {p : field(p) = level} inside a cube-like box.

    Args:
        field: points (M, 3) → values (M,) or (M, 1); inside where > level.
        box_min, box_max: the box's corners (3,), min < max on every axis.
        level: the surface's value.
        resolution: cells per axis of the coarse grid (≥ 2).
        refinements: times the grid is halved near the surface (the final grid has
            resolution·2^refinements cells per axis).
        device, dtype: where the field is evaluated.

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64, counter-clockwise from outside; both empty
        when the field has no surface in the box.
    """
    lo = np.asarray(box_min, dtype=np.float64)
    hi = np.asarray(box_max, dtype=np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or not (hi > lo).all():
        raise ValueError(
            f"extract_level_set: box_min and box_max must be 3 numbers with min < max, got {lo.tolist()} and {hi.tolist()}"
        )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"extract_level_set: resolution must be an integer >= 2, got {resolution!r}")
    if isinstance(refinements, bool) or not isinstance(refinements, int) or refinements < 0:
        raise ValueError(f"extract_level_set: refinements must be an integer >= 0, got {refinements!r}")
    device = torch.device(device)

    n = resolution + 1
    values = _evaluate(field, _grid_points(lo, hi, n), dtype, device).reshape(n, n, n)
    for _ in range(refinements):
        active = _dilate(_surface_cells(values, level))  # coarse cells, (n-1)³
        m = 2 * (n - 1) + 1
        coarse = torch.from_numpy(values)[None, None]
        fine = F.interpolate(coarse, size=(m, m, m), mode="trilinear", align_corners=True)[0, 0].numpy()
        # fine points touched by an active coarse cell: coarse cell c covers fine points 2c .. 2c+2
        need = np.zeros((m, m, m), dtype=bool)
        ks, js, is_ = np.nonzero(active)
        for dk in range(3):
            for dj in range(3):
                for di in range(3):
                    need[2 * ks + dk, 2 * js + dj, 2 * is_ + di] = True
        idx = np.flatnonzero(need)
        if len(idx):
            pts = _grid_points(lo, hi, m)[idx]
            fine.reshape(-1)[idx] = _evaluate(field, pts, dtype, device)
        values, n = fine, m

    values = values.copy()
    outside = min(level - 1.0, float(values.min()) - 1.0)
    values[[0, -1]] = values[:, [0, -1]] = values[:, :, [0, -1]] = outside
    if not (values > level).any():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    # The project's one marching cubes (render.isosurface, shared with RtS isosurfaces): it wants
    # x-first [i, j, k] values, inside below the level, so the grid is transposed and negated.
    # min_gap = 0 keeps every face: the closed level set gives a watertight mesh.
    lattice = Lattice((n, n, n), tuple(lo), tuple(hi))
    surface = extract_isosurface(-values.transpose(2, 1, 0), lattice, level=-level, min_gap=0.0)
    used = np.unique(surface.faces)
    remap = np.full(len(surface.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return surface.vertices[used], remap[surface.faces]
