"""Materials from features: remove the lighting trend, cluster, and express the result as cells.

Why not plain k-means of h: the shader's features encode some illumination as well as material
(NDS §4.3: "shadowed regions have slightly different features"). On a fixed surface the normal is
a function of position, so h(x) can absorb the n-dependent part of the shading, and one material's
features spread along a lit → unlit trail that k-means at k = #materials cuts in two (on the demo,
clay split into lit and unlit halves while the red fin joined the unlit half). That leak is a
smooth function of the normal, so it is regressed out first: least squares of h on the 9 real
spherical harmonics of n up to degree 2 (`normal_basis`), fitted over all samples, and the
residual r = h − trend(n) is clustered. A material's own offset survives the regression unless
its normals alone tell it apart from everything else.

Shading time has only h and the nearest-centroid rule (`render.viewer.features.nearest_material`),
so the result is expressed as *cells*: k-means of the raw h into `cells_for(k)` centroids, each
cell given the material most of its samples have. Membership everywhere is then
`cell_material[nearest cell centroid of h]`, identical here, in the viewer and when baking.

Automatic k: the k in 2..8 with the highest mean silhouette (Rousseeuw 1987) of the residuals,
on a seeded subsample of at most 2,000 samples; ties go to the smaller k. A silhouette needs two
clusters, so the default is never 1; for a single-material object pass k = 1.

k-means: k-means++ seeding, Lloyd iterations, best of `restarts` by inertia; float64 arithmetic
and a private seeded generator, so results are deterministic on the CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from render.viewer.features import nearest_material

log = logging.getLogger(__name__)

AUTO_K_RANGE = range(2, 9)
AUTO_K_SUBSAMPLE = 2_000
MIN_CELLS = 32  # cells = max(MIN_CELLS, 4·k): enough that few straddle two materials


def cells_for(k: int) -> int:
    """Number of raw-feature cells used to express k materials."""
    return max(MIN_CELLS, 4 * k)


@dataclass(frozen=True)
class KMeansResult:
    """centroids (K, F) float32, labels (N,) int64 (nearest centroid), inertia = Σ squared distances."""

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float


def _squared_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(N, K) squared Euclidean distances, clamped at 0 (the expansion can go slightly negative)."""
    return ((x * x).sum(-1, keepdim=True) - 2.0 * x @ c.T + (c * c).sum(-1)).clamp_min(0.0)


def _plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre drawn ∝ D² to the chosen ones."""
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    centres = [x[first]]
    nearest = _squared_distances(x, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        if not bool(total > 0):  # fewer distinct points than k: repeat one, Lloyd leaves it empty
            index = int(torch.randint(x.shape[0], (1,), generator=generator))
        else:
            index = int(torch.multinomial(nearest / total, 1, generator=generator))
        centres.append(x[index])
        nearest = torch.minimum(nearest, _squared_distances(x, x[index : index + 1])[:, 0])
    return torch.stack(centres)


def _lloyd(x: torch.Tensor, centres: torch.Tensor, iterations: int) -> tuple[torch.Tensor, float]:
    """Lloyd iterations until the assignment stops changing; empty clusters jump to the worst-fit point."""
    labels = None
    k = centres.shape[0]
    for _ in range(iterations):
        d = _squared_distances(x, centres)
        new = d.argmin(dim=1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp_min(1.0)[:, None])
        if bool(empty.any()):
            worst = d.gather(1, labels[:, None])[:, 0].argsort(descending=True)
            centres[empty] = x[worst[: int(empty.sum())]]
    d = _squared_distances(x, centres)
    return centres, float(d.min(dim=1).values.sum())


def kmeans(
    features: torch.Tensor, k: int, seed: int = 0, restarts: int = 2, iterations: int = 60
) -> KMeansResult:
    """Cluster features (N, F) into k groups: k-means++ seeding, Lloyd, best of `restarts` by inertia.

    Deterministic for a given seed on the CPU (float64 arithmetic, private generator).
    """
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"need features (N ≥ 1, F), got {tuple(features.shape)}")
    if not 1 <= k <= features.shape[0]:
        raise ValueError(f"k must be in 1..{features.shape[0]} (the number of samples), got {k}")
    x = features.detach().to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(int(seed))
    best: tuple[torch.Tensor, float] | None = None
    for _ in range(max(1, restarts)):
        centres, inertia = _lloyd(x, _plus_plus(x, k, generator), iterations)
        if best is None or inertia < best[1]:
            best = (centres, inertia)
    assert best is not None
    centroids = best[0].float()
    labels = nearest_material(features.detach().to("cpu", torch.float32), centroids)
    return KMeansResult(centroids, labels, best[1])


def normal_basis(normals: torch.Tensor) -> torch.Tensor:
    """(N, 9) real spherical harmonics of unit normals up to degree 2 (unnormalised constants)."""
    x, y, z = normals.double().unbind(-1)
    one = torch.ones_like(x)
    return torch.stack((one, x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1), dim=-1)


def remove_normal_trend(features: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """h minus its least-squares fit on `normal_basis(n)`: the lighting leak removed (float64)."""
    basis = normal_basis(normals)
    h = features.detach().double()
    coef = torch.linalg.lstsq(basis, h).solution
    return h - basis @ coef


def silhouette_score(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette s = (b − a) / max(a, b) over all points (Euclidean); singletons score 0.

    O(N²) memory: call it on a subsample.
    """
    x = features.detach().double().cpu()
    labels = labels.cpu()
    k = int(labels.max()) + 1
    if k < 2:
        return 0.0
    distance = _squared_distances(x, x).sqrt()
    onehot = torch.nn.functional.one_hot(labels, k).double()  # (N, K)
    counts = onehot.sum(0)
    sums = distance @ onehot  # (N, K): total distance to each cluster
    own = counts[labels]
    a = sums.gather(1, labels[:, None])[:, 0] / (own - 1).clamp_min(1.0)
    other = (sums / counts.clamp_min(1.0)).masked_fill(onehot.bool() | (counts == 0), float("inf"))
    b = other.min(dim=1).values
    s = torch.where(own > 1, (b - a) / torch.maximum(a, b).clamp_min(1e-30), torch.zeros_like(a))
    return float(s.mean())


def choose_k(
    features: torch.Tensor, seed: int = 0, candidates: range = AUTO_K_RANGE, subsample: int = AUTO_K_SUBSAMPLE
) -> tuple[int, dict[int, float]]:
    """The automatic k (rule in the module docstring) and the silhouette of every candidate."""
    generator = torch.Generator().manual_seed(int(seed))
    pick = torch.randperm(features.shape[0], generator=generator)[:subsample]
    x = features[pick]
    scores = {k: silhouette_score(x, kmeans(x, k, seed=seed).labels) for k in candidates if k <= x.shape[0]}
    if not scores:
        return 1, scores
    best = max(scores, key=lambda k: (scores[k], -k))
    log.info("automatic k = %d (silhouette %s)", best, ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    return best, scores


@dataclass(frozen=True)
class Clustering:
    """Materials as cells: centroids (C, F) of raw h, cell_material (C,), per-sample material (N,), silhouettes."""

    centroids: torch.Tensor
    cell_material: torch.Tensor
    labels: torch.Tensor
    silhouette: dict[int, float]


def cluster_materials(features: torch.Tensor, normals: torch.Tensor, k: int | None = None, seed: int = 0) -> Clustering:
    """Cluster surface features (N, F) with their normals (N, 3) into k materials (module docstring).

    Material ids here are arbitrary; `labels` are already the shading-time ones (via the cells).
    """
    residual = remove_normal_trend(features, normals)
    scores: dict[int, float] = {}
    if k is None:
        k, scores = choose_k(residual, seed=seed)
    material = kmeans(residual, k, seed=seed).labels
    cells = kmeans(features, min(cells_for(k), features.shape[0]), seed=seed)
    votes = torch.zeros(cells.centroids.shape[0], k, dtype=torch.float64)
    votes.index_put_((cells.labels, material), torch.ones(len(material), dtype=torch.float64), accumulate=True)
    cell_material = votes.argmax(dim=1)
    return Clustering(cells.centroids, cell_material, cell_material[cells.labels], scores)
