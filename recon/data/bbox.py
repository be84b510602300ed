"""Bounding box from masks and cameras, so that no user ever has to make one by hand.

The box is the extent of a coarse visual hull: grid points that project inside the silhouettes.
Optimisation maps the box to [-1, 1]³, so a box far too large wastes resolution and one too small
cuts the object; the silhouette hull is a cheap, conservative answer that needs no format knowledge.

Steps: a starting region around the point closest to the rays through the mask centroids, sized from
how large the masks look at that depth; a carve on a coarse grid, growing the region while the hull
touches its faces; one refining carve on the box found; the kept points' extent padded by a cell.

Carving is made robust to real data: masks are OR-pooled and dilated by a coarse pixel, points
outside an image are not carved by it (objects partly out of view), a few disagreeing views are
tolerated when there are many, and a point must land inside the masks of half the views to count.
Cameras and masks that cannot agree (an empty hull, or one explaining little of the masks) are
refused with a DatasetError that names the dataset and the usual causes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.data.scene import View
from recon.errors import DatasetError

log = logging.getLogger(__name__)

SEARCH_CELLS = 40  # grid points per axis while searching for the object
REFINE_CELLS = 48  # grid points per axis on the box found
MASK_SIDE = 200  # masks are OR-pooled to at most this many pixels on their longer side
MAX_GROWTH = 4  # how often the search region may grow when the hull touches its faces
MIN_SEEN = 0.5  # a hull point must fall inside at least this share of the masks…
TOLERATED = 0.05  # …and outside at most this share of the images that contain it
WARN_AGREEMENT = 0.8  # median share of mask pixels the hull's projection covers, below which we warn…
MIN_AGREEMENT = 0.5  # …and below which we refuse
AGREEMENT_POINTS = 20000  # hull points projected back for that check


@dataclass(frozen=True)
class _Silhouette:
    """One view reduced to what carving needs: its projection matrix and a coarse boolean mask."""

    P: np.ndarray  # (3, 4) K [R | t], full-resolution pixels
    mask: np.ndarray  # (h, w) bool, OR-pooled by `step`, dilated by one coarse pixel
    flat: np.ndarray  # the same mask, flattened, for lookups
    step: int  # full-resolution pixels per coarse mask pixel
    width: int
    height: int
    center: np.ndarray  # camera centre (3,)
    focal: float  # the smaller focal length, pixels
    box: np.ndarray | None  # the mask's pixel box (u0, v0, u1, v1), full resolution; None when empty
    centroid: np.ndarray | None  # the mask's centre of mass (u, v), full resolution

    @staticmethod
    def of(view: View) -> _Silhouette:
        cam = view.camera
        step = max(1, math.ceil(max(cam.width, cam.height) / MASK_SIDE))
        mask = _dilate(_downsample(np.asarray(view.mask) > 0.5, step))
        P = cam.K @ np.concatenate([cam.R, cam.t[:, None]], axis=1)
        focal = float(min(cam.K[0, 0], cam.K[1, 1]))
        rows, cols = np.nonzero(mask)
        box = centroid = None
        if rows.size:
            box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64) * step
            box = np.clip(box, 0, [cam.width, cam.height] * 2)
            centroid = (np.array([cols.mean(), rows.mean()]) + 0.5) * step
        return _Silhouette(
            P, mask, mask.reshape(-1), step, cam.width, cam.height, cam.center, focal, box, centroid
        )


def _downsample(mask: np.ndarray, step: int) -> np.ndarray:
    """Block-wise OR by `step`: a coarse pixel is object if any pixel it covers is (never loses object)."""
    if step == 1:
        return mask
    H, W = mask.shape
    padded = np.zeros((-(-H // step) * step, -(-W // step) * step), dtype=bool)
    padded[:H, :W] = mask
    rows = padded[0::step].copy()
    for i in range(1, step):  # a loop over the block size, not over pixels
        rows |= padded[i::step]
    out = rows[:, 0::step].copy()
    for i in range(1, step):
        out |= rows[:, i::step]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Dilate by one pixel (3×3): slack for calibration error and soft mask edges."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def estimate_bbox(views: Sequence[View], source: Path | str = "dataset") -> np.ndarray:
    """(2, 3) rows min, max: the padded extent of the masks' visual hull in world units.

    Args:
        views: calibrated views with masks (object = 1).
        source: the dataset, named in the error raised when cameras and masks cannot agree.
    """
    if not views:
        raise DatasetError(source, "cannot estimate a bounding box without views")
    sils = [_Silhouette.of(v) for v in views]
    sils = [sils[i] for i in _spread_order(len(sils))]
    lo, hi = _start_region(sils, source)

    for attempt in range(MAX_GROWTH + 1):
        kept, points, cell = _carve(sils, lo, hi, SEARCH_CELLS)
        if not kept.any():
            raise _disagree(source, len(sils))
        touch_lo = np.array([kept.take(0, axis=a).any() for a in range(3)])
        touch_hi = np.array([kept.take(-1, axis=a).any() for a in range(3)])
        if not (touch_lo.any() or touch_hi.any()):
            break
        if attempt == MAX_GROWTH:
            log.warning(
                "%s: the masks' visual hull still reaches the edge of a box %s after growing it %d times; "
                "masks that are mostly foreground or cameras that see little of the object make the box loose",
                source, np.round([lo, hi], 4).tolist(), MAX_GROWTH,
            )
            break
        size = hi - lo
        lo, hi = lo - touch_lo * size, hi + touch_hi * size

    lo, hi = points[kept].min(axis=0) - cell, points[kept].max(axis=0) + cell
    kept, points, cell = _carve(sils, lo, hi, REFINE_CELLS)
    if kept.any():  # a hull thinner than the coarse cells may be missed by the finer points
        lo, hi = points[kept].min(axis=0) - cell, points[kept].max(axis=0) + cell
        _check_agreement(sils, points[kept], source)
    return np.stack([lo, hi])


def _spread_order(n: int) -> list[int]:
    """Visit views far apart in their order first, so that carving culls points sooner."""
    stride = max(1, round(n**0.5))
    return [i for start in range(stride) for i in range(start, n, stride)]


def _start_region(sils: list[_Silhouette], source: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A cube around the point closest to the rays through the mask centroids, sized by the masks."""
    centers, dirs = [], []
    for s in sils:
        if s.centroid is None:
            continue
        d = np.linalg.solve(s.P[:, :3], np.append(s.centroid, 1.0))
        centers.append(s.center)
        dirs.append(d / np.linalg.norm(d))
    if not centers:
        raise DatasetError(source, "every mask is empty; cannot estimate a bounding box")
    C, D = np.array(centers), np.array(dirs)

    # Least squares for the point nearest all rays, pulled weakly towards a point ahead of the
    # cameras so that (near-)parallel rays still give an answer.
    spread = float(np.linalg.norm(C - C.mean(axis=0), axis=1).mean()) or 1.0
    prior = (C + D * spread).mean(axis=0)
    proj = np.eye(3)[None] - D[:, :, None] * D[:, None, :]
    weight = 1e-3 * len(C)
    A = proj.sum(axis=0) + weight * np.eye(3)
    b = np.einsum("nij,nj->i", proj, C) + weight * prior
    p0 = np.linalg.solve(A, b)

    radii = []
    for s in sils:
        x = s.P @ np.append(p0, 1.0)
        if s.box is None or x[2] <= 0:
            continue
        u, v = x[:2] / x[2]
        box = s.box
        reach = max(abs(box[0] - u), abs(box[2] - u), abs(box[1] - v), abs(box[3] - v))
        radii.append(reach * x[2] / s.focal)
    if not radii:
        raise DatasetError(
            source,
            "the rays through the mask centres meet behind the cameras; cameras and masks disagree "
            "(a camera→world pose read as world→camera, or OpenGL axes read as OpenCV?)",
        )
    half = 1.5 * float(np.median(radii))
    return p0 - half, p0 + half


def _grid(lo: np.ndarray, hi: np.ndarray, cells: int) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray]:
    """Points (N, 3) of a grid over [lo, hi] with `cells` points on the longest side and near-cubic cells."""
    size = hi - lo
    counts = np.maximum(2, np.round(size / size.max() * (cells - 1)).astype(int) + 1)
    axes = [np.linspace(lo[a], hi[a], counts[a]) for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return points, tuple(int(c) for c in counts), size / (counts - 1)


def _carve(
    sils: list[_Silhouette], lo: np.ndarray, hi: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which points of a grid over [lo, hi] lie in the hull: (kept (I, J, K), points (I, J, K, 3), spacing (3,))."""
    points, shape, cell = _grid(lo, hi, cells)
    n = len(sils)
    tolerated = int(TOLERATED * n)
    needed = max(1, math.ceil(MIN_SEEN * n))

    origin = (lo + hi) / 2  # project relative to the box centre: no cancellation far from the origin
    pts = np.ascontiguousarray((points - origin).T)  # (3, N): rows stay contiguous after projection
    index = np.arange(len(points))
    hits = np.zeros(len(points), dtype=np.int32)
    misses = np.zeros(len(points), dtype=np.int32)
    for k, s in enumerate(sils):
        x = s.P[:, :3] @ pts
        x += (s.P[:, :3] @ origin + s.P[:, 3])[:, None]
        front = x[2] > 0
        depth = np.where(front, x[2], np.inf)  # behind the camera: u = v = 0, and `front` says miss
        u = x[0] / depth
        v = x[1] / depth
        seen = front & (u >= 0) & (u < s.width) & (v >= 0) & (v < s.height)
        h, w = s.mask.shape
        iu = np.minimum((np.maximum(u, 0) * (1 / s.step)).astype(np.int64), w - 1)
        iv = np.minimum((np.maximum(v, 0) * (1 / s.step)).astype(np.int64), h - 1)
        inside = s.flat[iv * w + iu] & seen
        hits += inside
        misses += ~front | (seen & ~inside)
        # Drop points that can no longer pass, so that later views project fewer.
        alive = (misses <= tolerated) & (hits >= needed - (n - 1 - k))
        if alive.sum() < 0.75 * alive.size:
            pts, index, hits, misses = pts[:, alive], index[alive], hits[alive], misses[alive]
            if index.size == 0:
                break
    if index.size:
        index = index[(misses <= tolerated) & (hits >= needed)]
    kept = np.zeros(len(points), dtype=bool)
    kept[index] = True
    return kept.reshape(shape), points.reshape(*shape, 3), cell


def _check_agreement(sils: list[_Silhouette], hull: np.ndarray, source: Path | str) -> None:
    """Refuse a hull that explains too little of the masks (the signature of a wrong camera convention).

    A non-empty hull can still be nonsense: with poses in the wrong convention a few rays may meet by
    chance, leaving a small blob. The hull of consistent silhouettes projects back onto (nearly) all of
    each mask, so in the median view most mask pixels must be covered by the hull's projection.
    Stray foreground (background clutter, shadows) lowers this only in the views that have it.
    """
    if len(hull) > AGREEMENT_POINTS:  # interior points only repeat pixels; a fixed subset keeps it cheap
        hull = hull[np.random.default_rng(0).choice(len(hull), AGREEMENT_POINTS, replace=False)]
    origin = hull.mean(axis=0)
    pts = np.ascontiguousarray((hull - origin).T)
    recalls = []
    for s in sils:
        if s.box is None:
            continue
        # A resolution at which the mask spans ~ the refine grid, so projected points leave no holes.
        extent = max(s.box[2] - s.box[0], s.box[3] - s.box[1]) / s.step
        factor = max(1, math.ceil(extent / REFINE_CELLS))
        mask = _downsample(s.mask, factor)
        x = s.P[:, :3] @ pts
        x += (s.P[:, :3] @ origin + s.P[:, 3])[:, None]
        front = x[2] > 0
        scale = 1 / (s.step * factor)
        iu = np.floor(x[0, front] / x[2, front] * scale).astype(np.int64)
        iv = np.floor(x[1, front] / x[2, front] * scale).astype(np.int64)
        h, w = mask.shape
        ok = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
        splat = np.zeros_like(mask)
        splat[iv[ok], iu[ok]] = True
        recalls.append(float((_dilate(splat) & mask).sum()) / float(mask.sum()))
    agreement = float(np.median(recalls))
    log.debug("%s: median share of mask pixels the hull covers: %.3f", source, agreement)
    if agreement < MIN_AGREEMENT:
        raise DatasetError(
            source,
            f"the visual hull explains only {agreement:.0%} of the masks (median over views): the cameras "
            "and masks disagree. Check the camera convention (world→camera vs camera→world, OpenGL vs "
            "OpenCV axes) and that every mask belongs to its image",
        )
    if agreement < WARN_AGREEMENT:
        log.warning(
            "%s: the visual hull explains only %.0f%% of the masks (median over views); masks or cameras "
            "are inaccurate, and the bounding box may be too small",
            source, 100 * agreement,
        )


def _disagree(source: Path | str, n: int) -> DatasetError:
    return DatasetError(
        source,
        f"no point lies inside the masks of its views (visual hull of {n} views is empty): the cameras and "
        "masks disagree. Check the camera convention (world→camera vs camera→world, OpenGL vs OpenCV axes) "
        "and that masks are white on the object, not inverted",
    )
