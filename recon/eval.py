"""How good is a result: Chamfer distances against a reference surface, and image metrics.

Chamfer (as in DTU's evaluation): both surfaces are sampled uniformly by area, and each
sample's distance to the other surface is averaged:

- accuracy: reconstruction → reference (is what we built really there?),
- completeness: reference → reconstruction (is all of the reference covered?),
- chamfer: their mean.

Distances go from each sample to the nearest point *on the other surface's triangles*
(gpytoolbox's AABB-tree squared_distance), so identical surfaces measure 0 up to rounding.
Point-to-point distances between two sets of N samples over area A are biased by about
0.5·√(A/N) — on the demo pot at N = 100 000 that is ~0.18 % of the bounding-box diagonal, over
half of the 0.3 % the demo aims for — so they are used only where there is no surface: from
the reconstruction to a reference given as a point cloud (e.g. DTU's scans, used unsampled),
through scipy's cKDTree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gpytoolbox
import numpy as np
import torch
from scipy.spatial import cKDTree

ArrayLike = np.ndarray | torch.Tensor

REFERENCE_MESH = "gt_mesh.ply"  # a dataset that ships its true surface keeps it beside its views


def reference_mesh(dataset: Path) -> Path | None:
    """The true surface a dataset ships (`gt_mesh.ply` in its folder, or beside a dataset file), if any."""
    folder = dataset if dataset.is_dir() else dataset.parent
    path = folder / REFERENCE_MESH
    return path if path.is_file() else None


def _numpy(a: Any, dtype: type = np.float64) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of a trimesh-like object (`.vertices`, `.faces`) or a (V, F) pair."""
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        v, f = mesh.vertices, mesh.faces
    else:
        v, f = mesh
    v, f = _numpy(v), _numpy(f, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"need vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    return v, f


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniformly distributed over the surface area (faces chosen ∝ area, then uniform barycentrics)."""
    tri = vertices[faces]  # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cdf = np.cumsum(area)
    if len(cdf) == 0 or not cdf[-1] > 0:
        raise ValueError("cannot sample a surface with zero area")
    # side="right" never picks a zero-area face (its cdf interval is empty).
    idx = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(cdf) - 1)
    u, v = rng.random((2, n))
    su = np.sqrt(u)  # (1-√u, √u(1-v), √u·v) is uniform on the triangle
    w = np.stack((1.0 - su, su * (1.0 - v), su * v), axis=1)
    return np.einsum("nk,nkd->nd", w, tri[idx])


def _points_or_samples(
    obj: Any, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(points, bbox corners, (V, F) or None) of a mesh (sampled) or an (N, 3) point array (as is)."""
    if hasattr(obj, "vertices") and not hasattr(obj, "faces"):  # trimesh.PointCloud
        obj = obj.vertices
    if isinstance(obj, (np.ndarray, torch.Tensor)) and obj.ndim == 2 and obj.shape[1] == 3:
        pts = _numpy(obj)
        if len(pts) == 0:
            raise ValueError("reference point cloud is empty")
        return pts, np.stack((pts.min(0), pts.max(0))), None
    v, f = mesh_arrays(obj)
    used = v[np.unique(f)]
    return sample_surface(v, f, n, rng), np.stack((used.min(0), used.max(0))), (v, f)


def surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Distance (N,) of each point to the nearest point on the triangles (AABB tree, exact)."""
    squared = gpytoolbox.squared_distance(points, vertices, faces, use_cpp=True)[0]
    return np.sqrt(np.maximum(squared, 0.0))


def _distances(points: np.ndarray, surface: tuple[np.ndarray, np.ndarray] | None, cloud: np.ndarray) -> np.ndarray:
    """Distance of each point to the triangles of `surface`, or to the nearest of `cloud` without one."""
    if surface is None:
        return cKDTree(cloud).query(points, workers=-1)[0]
    return surface_distance(points, *surface)


def chamfer(mesh_a: Any, mesh_b_or_points: Any, n_samples: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Chamfer-L1 between a reconstruction and a reference, in world units and relative.

    Args:
        mesh_a: the reconstruction: a trimesh.Trimesh (or anything with `.vertices`, `.faces`)
            or a (vertices, faces) pair.
        mesh_b_or_points: the reference: a mesh as above, or an (N, 3) point cloud.
        n_samples: samples drawn on each mesh.
        seed: seeds the sampling (the two meshes get independent streams).

    Returns:
        accuracy, completeness, chamfer (world units); accuracy_rel, completeness_rel,
        chamfer_rel (fractions of the reference's bounding-box diagonal); diagonal;
        n_samples, n_reference (point counts used). Distances are point-to-triangle (see the
        module docstring); only accuracy against a point-cloud reference is point-to-point.
    """
    rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    pts_a, _, surface_a = _points_or_samples(mesh_a, n_samples, rng_a)
    pts_b, box_b, surface_b = _points_or_samples(mesh_b_or_points, n_samples, rng_b)
    diagonal = float(np.linalg.norm(box_b[1] - box_b[0]))
    accuracy = float(_distances(pts_a, surface_b, pts_b).mean())
    completeness = float(_distances(pts_b, surface_a, pts_a).mean())
    cham = 0.5 * (accuracy + completeness)
    rel = (lambda d: d / diagonal) if diagonal > 0 else (lambda d: float("nan"))
    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer": cham,
        "accuracy_rel": rel(accuracy),
        "completeness_rel": rel(completeness),
        "chamfer_rel": rel(cham),
        "diagonal": diagonal,
        "n_samples": len(pts_a),
        "n_reference": len(pts_b),
    }


# ----------------------------------------------------------------------------- images


def topology(mesh: Any) -> dict[str, Any]:
    """Connected components, Euler characteristic, genus and watertightness of a triangle mesh.

    The genus is what Chamfer cannot show: a filled hole or a bridged gap costs little distance.
    It is (2·components − χ) / 2, meaningful for a closed (watertight) surface; None otherwise.
    Vertices are taken as shared by index (as marching cubes and the run's mesh.ply have them).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    v, f = mesh_arrays(mesh)
    used = np.unique(f)
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique_edges, uses = np.unique(edges, axis=0, return_counts=True)
    euler = len(used) - len(unique_edges) + len(f)
    graph = coo_matrix((np.ones(len(unique_edges)), (unique_edges[:, 0], unique_edges[:, 1])), shape=(len(v), len(v)))
    _, labels = connected_components(graph, directed=False)
    components = len(np.unique(labels[used])) if len(used) else 0
    watertight = bool(len(f)) and bool((uses == 2).all())
    genus = (2 * components - euler) // 2 if watertight else None
    return {"components": components, "euler": int(euler), "genus": genus, "watertight": watertight}


def psnr(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, peak]; inf when they are identical.

    Args:
        a, b: (H, W) or (H, W, C) images of the same shape.
        mask: optional (H, W) (or image-shaped) weights in [0, 1]; only covered pixels count.
    """
    x, y = _numpy(a), _numpy(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    err = (x - y) ** 2
    if mask is None:
        mse = float(err.mean())
    else:
        m = _numpy(mask)
        if m.ndim == x.ndim - 1:
            m = m[..., None]
        m = np.broadcast_to(m, x.shape)
        if not m.sum() > 0:
            raise ValueError("psnr: the mask covers no pixel")
        mse = float((err * m).sum() / m.sum())
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None, window: int = 11, sigma: float = 1.5, peak: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004) with an 11×11, σ = 1.5 Gaussian window.

    Local means, variances and covariance come from a separable Gaussian filter (two 1-D
    convolutions per statistic, all channels at once); only windows wholly inside the image
    are used (no padding), K1 = 0.01, K2 = 0.03, and channels are averaged. With a mask, the
    mean is weighted by the mask at each window's centre.

    Args:
        a, b: (H, W) or (H, W, C) images in [0, peak], H and W at least `window`.
    """
    x, y = torch.as_tensor(_numpy(a)), torch.as_tensor(_numpy(b))
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    h, w, ch = x.shape
    if min(h, w) < window:
        raise ValueError(f"ssim needs images of at least {window}×{window} pixels, got {h}×{w}")
    g = _gaussian_window(window, sigma).float()
    kx = g.view(1, 1, 1, window).repeat(5 * ch, 1, 1, 1)
    ky = g.view(1, 1, window, 1).repeat(5 * ch, 1, 1, 1)
    # Filtering runs in float32 (float64 convolutions are ~10× slower on the CPU). Variances are
    # E[x²] - E[x]², which cancels; shifting both images by their common per-channel mean
    # first (variances do not change) keeps the rounding error well below C2 = 9e-4.
    shift = 0.5 * (x.mean(dim=(0, 1)) + y.mean(dim=(0, 1)))
    x = (x - shift).permute(2, 0, 1)[None].float()  # (1, C, H, W)
    y = (y - shift).permute(2, 0, 1)[None].float()
    stats = torch.cat((x, y, x * x, y * y, x * y), dim=1)
    f = torch.nn.functional.conv2d(torch.nn.functional.conv2d(stats, kx, groups=5 * ch), ky, groups=5 * ch)
    mx, my, mxx, myy, mxy = f.double().split(ch, dim=1)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    s = shift.view(1, ch, 1, 1)
    mx, my = mx + s, my + s  # back to the images' own means for the luminance term
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    smap = smap.mean(dim=1)[0]  # (H - window + 1, W - window + 1)
    if mask is None:
        return float(smap.mean())
    r = window // 2
    m = torch.as_tensor(_numpy(mask))
    m = m[..., 0] if m.ndim == 3 else m
    m = m[r : r + smap.shape[0], r : r + smap.shape[1]]
    if not m.sum() > 0:
        raise ValueError("ssim: the mask covers no window centre")
    return float((smap * m).sum() / m.sum())


def silhouette_iou(pred_mask: ArrayLike, gt_mask: ArrayLike, threshold: float = 0.5) -> float:
    """Intersection over union of two masks binarised at `threshold`; 1.0 when both are empty."""
    p, g = _numpy(pred_mask) > threshold, _numpy(gt_mask) > threshold
    if p.shape != g.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {g.shape}")
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, g).sum() / union)
