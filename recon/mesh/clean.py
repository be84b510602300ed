"""Repairs shared by marching cubes output, user meshes and remeshing input (numpy, CPU).

Each takes and returns `v` #V,3 float64 and `f` #F,3 int64 arrays; none loops over faces.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def merge_close_vertices(v: np.ndarray, f: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Weld vertices closer than `tol` (transitively) into their mean, so coincident copies share one index."""
    if tol <= 0 or len(v) < 2:
        return v, f
    pairs = cKDTree(v).query_pairs(tol, output_type="ndarray")  # #P,2
    if len(pairs) == 0:
        return v, f
    n = len(v)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, label = connected_components(graph, directed=False)  # label: #V
    size = np.bincount(label, minlength=count)[:, None]
    merged = np.zeros((count, 3))
    np.add.at(merged, label, v)
    return merged / size, label[f]


def drop_degenerate_faces(f: np.ndarray) -> np.ndarray:
    """Remove faces that repeat a vertex, keep one of same-winding duplicates, drop opposite-winding pairs.

    Opposite-winding duplicates enclose nothing (a fold or a zero-thickness fin); removing both
    keeps the surface closed and manifold.
    """
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    if len(f) == 0:
        return f
    parity = ((f[:, 0] > f[:, 1]).astype(int) + (f[:, 0] > f[:, 2]) + (f[:, 1] > f[:, 2])) % 2  # #F
    _, first, group, count = np.unique(_row_keys(np.sort(f, axis=1)), return_index=True, return_inverse=True, return_counts=True)
    odd = np.bincount(group, weights=parity, minlength=len(count))  # odd-winding faces per group
    mixed = (odd > 0) & (odd < count)  # #G: both windings present
    keep = np.zeros(len(f), dtype=bool)
    keep[first[~mixed]] = True
    return f[keep]


def remove_unreferenced(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber the faces."""
    used = np.zeros(len(v), dtype=bool)
    used[f.reshape(-1)] = True
    new_index = np.cumsum(used) - 1
    return v[used], new_index[f]


def _face_components(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The connected component of each face #F (components joined through shared vertices)."""
    rows = np.concatenate([f[:, 0], f[:, 1]])
    cols = np.concatenate([f[:, 1], f[:, 2]])
    _, label = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(v), len(v))), directed=False)
    return label[f[:, 0]]


def largest_component(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the connected component with the most faces (floaters and specks go)."""
    if len(f) == 0:
        return v, f
    face_label = _face_components(v, f)
    return remove_unreferenced(v, f[face_label == np.argmax(np.bincount(face_label))])


def drop_small_components(v: np.ndarray, f: np.ndarray, min_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected components whose area is below `min_share` of the whole (specks), keeping at least the largest."""
    if len(f) == 0:
        return v, f
    face_label = _face_components(v, f)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)  # #F
    per_component = np.bincount(face_label, weights=area)
    keep = per_component >= min_share * per_component.sum()
    keep[np.argmax(per_component)] = True
    return remove_unreferenced(v, f[keep[face_label]])


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    """Enclosed volume; negative when a closed mesh is inside out."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def orient_outward(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Faces wound so that a closed mesh has positive volume (CCW seen from outside)."""
    return f[:, ::-1].copy() if signed_volume(v, f) < 0 else f


def non_manifold_edge_count(f: np.ndarray) -> int:
    """Undirected edges used by more than two faces."""
    e = np.sort(np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2), axis=1)  # #F*3,2
    _, count = np.unique(_row_keys(e), return_counts=True)
    return int((count > 2).sum())


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of small non-negative ints #R,k (equal rows ↔ equal keys); 1-D unique is much faster."""
    base = int(rows.max()) + 1 if rows.size else 1
    if base ** rows.shape[1] >= 2**63:
        return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)  # huge meshes: slower, exact
    key = np.zeros(len(rows), dtype=np.int64)
    for k in range(rows.shape[1]):  # k ≤ 3 columns
        key = key * base + rows[:, k]
    return key
