"""Flat, vectorised functions over raw mesh tensors; the `Mesh` type's methods call these.

Conventions: vertices `v` are #V,3 float, faces `f` are #F,3 long, counter-clockwise seen
from outside, so that (v1 - v0) × (v2 - v0) points out of the surface:

        v2
        / \\
       /   \\        normal = (v1 - v0) × (v2 - v0)   (towards the viewer)
      v0---v1

Face edge k runs from corner k to corner k+1 (mod 3). Every function keeps its result on the
device its inputs came on and uses no Python loop over vertices or faces.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F_

from render.rows import gather_rows, index_add_rows

NORMAL_EPS = 1e-20  # normalising a zero-area face's normal gives a zero vector, not NaN


def face_normals(v: torch.Tensor, f: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Per-face normals #F,3; unnormalised ones have length 2·area (what area weighting wants).

    Args:
        v: #V,3 float vertices.
        f: #F,3 long faces.
        normalize: unit length (zero-area faces give a zero vector, not NaN).
    """
    n = edges_and_cross(v, f)[2]  # #F,3
    return F_.normalize(n, dim=-1, eps=NORMAL_EPS) if normalize else n


def edges_and_cross(v: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """#F,3 each: the edges from corner 0 to corners 1 and 2, and their cross product (length 2·area)."""
    v0, v1, v2 = (gather_rows(v, f[:, k]) for k in range(3))
    e0, e1 = v1 - v0, v2 - v0
    return e0, e1, torch.linalg.cross(e0, e1)


def face_areas(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Triangle areas #F."""
    return 0.5 * face_normals(v, f, normalize=False).norm(dim=-1)


def vertex_normals(v: torch.Tensor, f: torch.Tensor, face_cross: torch.Tensor | None = None) -> torch.Tensor:
    """Area-weighted unit vertex normals #V,3, differentiable w.r.t. `v`.

    Recomputed from the current vertices every step (never cached): the optimiser moves them.
    Vertices no face uses get a zero normal. `face_cross`: `face_normals(v, f, normalize=False)`
    when the caller has it already (an NDS step shares it with the normal term).
    """
    fn = face_normals(v, f, normalize=False) if face_cross is None else face_cross  # #F,3, length 2·area
    corners = f.t().reshape(-1)  # the three corners' vertices, corner 0's faces first
    vn = index_add_rows(v.shape[0], corners, fn.repeat(3, 1))
    return F_.normalize(vn, dim=-1, eps=NORMAL_EPS)


def edges(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected edges and the face → edge map.

    Args:
        f: #F,3 long faces.

    Returns:
        edges: #E,2 long, each row (a, b) with a < b, rows sorted.
        face_edges: #F,3 long, index into `edges` of face edge k (corner k → corner k+1).
    """
    n = int(f.max()) + 1 if f.numel() else 1
    a = f  # #F,3
    b = f.roll(-1, dims=1)  # #F,3, corner k+1
    key = torch.minimum(a, b) * n + torch.maximum(a, b)  # #F,3 undirected edge id
    unique, inverse = torch.unique(key.reshape(-1), return_inverse=True)  # #E, #F*3
    e = torch.stack([unique // n, unique % n], dim=1)  # #E,2
    return e, inverse.reshape(f.shape)


def edge_face_counts(face_edges: torch.Tensor, num_edges: int) -> torch.Tensor:
    """How many faces use each edge #E: 1 = boundary, 2 = manifold, more = non-manifold."""
    return torch.bincount(face_edges.reshape(-1), minlength=num_edges)


def face_adjacency(face_edges: torch.Tensor) -> torch.Tensor:
    """Pairs of faces that share an edge #P,2 (the set F̄ of NDS eq. 9).

    On an edge-manifold mesh each interior edge gives one pair; an edge shared by k > 2 faces
    gives k - 1 pairs (a chain), which keeps the normal term defined on broken meshes too.

    Args:
        face_edges: #F,3 long, from `edges`.
    """
    flat = face_edges.reshape(-1)  # #F*3
    order = torch.argsort(flat, stable=True)  # half-edges grouped by edge
    sorted_edges = flat[order]
    face_of = order // 3
    same = sorted_edges[1:] == sorted_edges[:-1]  # #F*3-1
    return torch.stack([face_of[:-1][same], face_of[1:][same]], dim=1)  # #P,2


def edge_lengths(v: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Lengths #E of edges `e` (#E,2 long)."""
    return (v[e[:, 0]] - v[e[:, 1]]).norm(dim=-1)


def uniform_laplacian(num_vertices: int, e: torch.Tensor) -> torch.Tensor:
    """Sparse #V,#V uniform graph Laplacian L = I − D⁻¹A (float32, CSR).

    (L V)_i = v_i − mean of v_i's neighbours, the differential coordinates δ_i of NDS eq. 8:
    minimising ‖δ_i‖² moves each vertex towards its neighbours' average. Rows of isolated
    vertices are zero, so they are left alone rather than pulled to the origin. Every row
    stores its diagonal (0 for an isolated vertex), so a row holds degree + 1 entries, which
    `losses.laplacian_loss` reads back. CSR: a product with it is ~10× faster on the CPU than
    with the same matrix as COO.

    Args:
        num_vertices: #V.
        e: #E,2 long unique undirected edges.
    """
    device = e.device
    i = torch.cat([e[:, 0], e[:, 1]])  # #2E
    j = torch.cat([e[:, 1], e[:, 0]])  # #2E
    degree = torch.bincount(i, minlength=num_vertices).to(torch.float32)  # #V
    diag = torch.arange(num_vertices, device=device)  # #V
    indices = torch.cat([torch.stack([i, j]), torch.stack([diag, diag])], dim=1)  # 2,#2E+#V
    values = torch.cat([-1.0 / degree[i], (degree > 0).to(torch.float32)])  # #2E+#V
    L = torch.sparse_coo_tensor(indices, values, (num_vertices, num_vertices), check_invariants=False)
    with warnings.catch_warnings():  # torch calls its CSR layout beta; the product used here is long-standing
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return L.coalesce().to_sparse_csr()  # indices are built in range above


def signed_volume(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Enclosed volume (scalar); positive when a closed mesh is CCW outward, negative when inside out."""
    tri = v[f].to(torch.float64)  # #F,3,3; float64: sums of many small terms
    triple = (tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2])).sum(dim=-1)  # #F
    return triple.sum() / 6.0
