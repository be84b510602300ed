"""How well a reconstruction carves concavities: what Chamfer averages away.

A concavity that no silhouette shows (a bowl, a milled slot) starts filled in the visual hull and
only shading can carve it; a method that leaves it partly filled loses little Chamfer, since the
filled part is a small share of the surface. Two measures, both against a reference mesh:

- `far_surface`: the share of the reference surface farther than a threshold (1 % of its
  bounding-box diagonal) from the reconstruction, how much of that share has the reconstruction
  *outside* the true surface (the reference point lies inside the reconstructed solid: material
  left where the reference has none, i.e. a concavity left filled), and the share of the
  completeness error those far points hold;
- `cavity_depth`: for one carving tool (a function saying which points lie on the surface it
  carved), how deep the reconstruction is carved straight down along the up axis, relative to the
  reference's depth, over the columns where looking down one sees the carved floor;
- `error_by_region`: which region of the surface (a function naming each point's region: for
  the demo, the recipe primitive whose surface it lies on) holds what share of the Chamfer error,
  and on which side of the true surface the reconstruction lies there on average.

Meshes are (vertices, faces) pairs or anything with `.vertices` and `.faces`. The inside test is
the generalised winding number (gpytoolbox), which tolerates small holes in a reconstruction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gpytoolbox
import numpy as np

from recon.eval import mesh_arrays, sample_surface, surface_distance

OnTool = Callable[[np.ndarray], np.ndarray]  # (N, 3) points → (N,) bool: on the surface this tool carved
RegionOf = Callable[[np.ndarray], np.ndarray]  # (N, 3) points → (N,) int: index of the region each lies on


def _diagonal(vertices: np.ndarray, faces: np.ndarray) -> float:
    used = vertices[np.unique(faces)]
    return float(np.linalg.norm(used.max(0) - used.min(0)))


def far_surface(reconstruction: Any, reference: Any, threshold_rel: float = 0.01, n_samples: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Where the reference surface is far from the reconstruction, and on which side.

    Returns:
        far_fraction: share of the reference's area farther than `threshold_rel` × its diagonal;
        far_outside_share: share of that far area lying inside the reconstructed solid (the
            reconstruction bulges outside the true surface there: a concavity left filled);
        far_error_share: share of the completeness error (mean reference → reconstruction
            distance) that the far points hold;
        near_median_rel: median distance of the other points, as a fraction of the diagonal;
        threshold_rel, diagonal, n_samples.
    """
    rv, rf = mesh_arrays(reconstruction)
    gv, gf = mesh_arrays(reference)
    diagonal = _diagonal(gv, gf)
    points = sample_surface(gv, gf, n_samples, np.random.default_rng(seed))
    distance = surface_distance(points, rv, rf)
    far = distance > threshold_rel * diagonal
    outside = float((gpytoolbox.fast_winding_number(points[far], rv, rf) > 0.5).mean()) if far.any() else 0.0
    total = float(distance.sum())
    return {
        "far_fraction": float(far.mean()),
        "far_outside_share": outside,
        "far_error_share": float(distance[far].sum() / total) if total > 0 else 0.0,
        "near_median_rel": float(np.median(distance[~far]) / diagonal) if (~far).any() else float("nan"),
        "threshold_rel": threshold_rel,
        "diagonal": diagonal,
        "n_samples": n_samples,
    }


def _plane_basis(up: np.ndarray) -> np.ndarray:
    """(2, 3) unit vectors spanning the plane perpendicular to `up`."""
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(up, e1)])


def _surface_heights(vertices: np.ndarray, faces: np.ndarray, columns: np.ndarray, up: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Height (N,) along unit `up` of the first surface met looking straight down each column.

    `columns` (N, 3) are points whose position across `up` names the column; rays start at height
    `top` (above everything). A column that meets no surface gets `bottom`: nothing is left in it.
    """
    origins = columns + (top - columns @ up)[:, None] * up
    t, _, _ = gpytoolbox.ray_mesh_intersect(origins, np.broadcast_to(-up, origins.shape).copy(), vertices, faces)
    t = np.asarray(t, dtype=np.float64)
    return np.where(np.isfinite(t), top - t, bottom)


def cavity_depth(
    reconstruction: Any,
    reference: Any,
    on_tool: OnTool,
    up: np.ndarray,
    rim_band: float,
    spacing_rel: float = 0.002,
    n_samples: int = 100_000,
    seed: int = 0,
) -> dict[str, float]:
    """How deep the reconstruction carves one cavity, against the reference's depth.

    The rim is the highest reference point on the tool's surface (`on_tool`), the floor where a
    column looking down along `up` first meets the reference on the tool's surface lower than
    `rim_band` below the rim (so the flat top beside a slot's edge, within the tool's tolerance,
    is not floor), and the depth runs from the rim to the lowest floor point. Columns lie on a grid
    of `spacing_rel` × the reference's diagonal over the tool's surface seen from above;
    `n_samples` reference samples (seeded by `seed`) find that surface and its rim.

    Returns:
        depth: the reference's depth, world units;
        carved: depth reached by the reconstruction's lowest point over the floor, as a fraction
            of the reference's (1 = as deep, below 1 = left shallower, above 1 = dug too deep);
        mean_fill: mean height of the reconstruction above the reference over the floor's
            columns, as a fraction of the depth (0 = carved everywhere, 1 = filled to the rim);
        columns: number of floor columns.

    Raises:
        ValueError: when the tool touches no part of the reference's surface, or none lower than
            the rim band seen from above.
    """
    rv, rf = mesh_arrays(reconstruction)
    gv, gf = mesh_arrays(reference)
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    diagonal = _diagonal(gv, gf)
    tool_surface = sample_surface(gv, gf, n_samples, np.random.default_rng(seed))
    tool_surface = tool_surface[on_tool(tool_surface)]
    if len(tool_surface) == 0:
        raise ValueError("cavity_depth: the tool touches no part of the reference surface")
    rim = float((tool_surface @ up).max())
    basis = _plane_basis(up)
    across = tool_surface @ basis.T  # (N, 2) positions across the up axis
    step = spacing_rel * diagonal
    u, v = (np.arange(lo, hi + step, step) for lo, hi in zip(across.min(0), across.max(0)))
    grid = np.stack(np.meshgrid(u, v, indexing="ij"), axis=-1).reshape(-1, 2) @ basis
    heights = np.concatenate([gv @ up, rv @ up])
    top, bottom = float(heights.max()) + 0.1 * diagonal, float((gv @ up).min())
    truth = _surface_heights(gv, gf, grid, up, top, bottom)
    hits = grid + (truth - grid @ up)[:, None] * up
    on_floor = on_tool(hits) & (truth > bottom) & (truth < rim - rim_band)
    if not on_floor.any():
        raise ValueError("cavity_depth: no column looking down meets the tool's surface below its rim band on the reference")
    truth = truth[on_floor]
    depth = rim - float(truth.min())  # > rim_band: every floor column lies below the band
    built = _surface_heights(rv, rf, grid[on_floor], up, top, bottom)
    return {
        "depth": depth,
        "carved": (rim - float(built.min())) / depth,
        "mean_fill": float((built - truth).mean()) / depth,
        "columns": int(on_floor.sum()),
    }


def error_by_region(
    reconstruction: Any, reference: Any, region_of: RegionOf, regions: int, n_samples: int = 100_000, seed: int = 0
) -> list[dict[str, float]]:
    """Where the Chamfer error lies, region by region, and on which side of the true surface.

    Chamfer's two means are split by the region of the true surface each sample belongs to
    (`region_of`): a reference sample carries its distance to the reconstruction (completeness)
    into its own region, a reconstruction sample its distance to the reference (accuracy) into the
    region of its nearest point there, so a lid left over a slot counts against the slot. A region
    can hold a share of the error far above its share of the area (a hole left shut), or lie
    outside the true surface everywhere (faces pushed outwards), which the total hides.

    Returns:
        one dict per region index 0 … `regions` − 1: share (of the summed distances of both
        directions; the shares add up to 1, or are all 0 for a perfect reconstruction), area
        (share of the reference's samples), offset_rel (mean signed distance of the
        reconstruction's samples there, + where it lies outside the true solid, as a fraction of
        the reference's diagonal; NaN where no reconstruction sample is nearest the region).
    """
    rv, rf = mesh_arrays(reconstruction)
    gv, gf = mesh_arrays(reference)
    diagonal = _diagonal(gv, gf)
    rng_built, rng_true = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    built, true = sample_surface(rv, rf, n_samples, rng_built), sample_surface(gv, gf, n_samples, rng_true)
    squared, face, barycentric = gpytoolbox.squared_distance(built, gv, gf, use_cpp=True)
    to_true = np.sqrt(np.maximum(squared, 0.0))
    nearest = np.einsum("nk,nkd->nd", barycentric, gv[gf[face]])
    to_built = surface_distance(true, rv, rf)
    outside = gpytoolbox.fast_winding_number(built, gv, gf) < 0.5
    signed = np.where(outside, to_true, -to_true)
    built_region, true_region = region_of(nearest), region_of(true)
    total = float(to_true.sum() + to_built.sum())
    figures = []
    for region in range(regions):
        mine_built, mine_true = built_region == region, true_region == region
        error = float(to_true[mine_built].sum() + to_built[mine_true].sum())
        figures.append({
            "share": error / total if total > 0 else 0.0,
            "area": float(mine_true.mean()),
            "offset_rel": float(signed[mine_built].mean()) / diagonal if mine_built.any() else float("nan"),
        })
    return figures
