"""Isotropic remeshing to per-vertex edge lengths: Botsch–Kobbelt's loop driven by a size field.

gpytoolbox's `remesh_botsch` takes one edge length for the whole surface, so NDS's remeshing
refines a flat face as finely as a crease. Continuous remeshing (Palfinger 2022) sizes each
vertex's edges instead; here the size comes from the surface's curvature (`size_field`) and the
loop is Botsch & Kobbelt's (2004): split long edges, collapse short ones, flip towards valence 6,
relax tangentially, project onto the input surface, ten times. Each operation acts on a set of
edges no two of which touch the same one-ring, so all of a pass is one vectorised update.

Conventions as in `recon.mesh.ops`: faces counter-clockwise seen from outside, face edge k runs
from corner k to corner k + 1. Closed meshes keep their genus; boundary vertices stay fixed.
"""

from __future__ import annotations

import gpytoolbox
import numpy as np
import torch

from recon.mesh import ops

SPLIT = 4 / 3  # edges longer than this × their target are split (Botsch & Kobbelt)
COLLAPSE = 4 / 5  # and shorter than this × their target collapsed
FLIP_CREASE_COS = 0.5  # an edge whose faces meet at more than 60° is a crease and is never flipped
COLLAPSE_FOLD_COS = 0.2  # a collapse may not turn any face it moves by more than ~78°
GRADING_ROUNDS = 64  # at most; each spreads the limit by one ring
RELAX = 0.5  # share of the way to the neighbours' mean a tangential relaxation moves a vertex


def size_field(
    v: torch.Tensor, f: torch.Tensor, tolerance: float, shortest: float, longest: float, gradation: float = 0.5
) -> torch.Tensor:
    """Per-vertex target edge lengths #V: as long as the curvature allows, within [shortest, longest].

    A chord of length h across an arc of curvature κ lies h²κ/8 from it, so h = √(8·tolerance/κ)
    keeps the flat triangles within `tolerance` of the curved surface they stand for. κ at a
    vertex is the largest normal change per length along its edges (a crease, where the normal
    turns within one edge, counts as the curvature of an arc that edge long). Bumps lower than
    `tolerance` ask for edges longer than their width, so noise does not refine the mesh. The
    sizes are then graded (|h_u − h_v| ≤ gradation·|x_u − x_v|), so that a fine region is ringed
    by well-shaped triangles instead of meeting a coarse one at once.

    Args:
        v: #V,3 float vertices; f: #F,3 long faces.
        tolerance: the chord error allowed, in the vertices' units.
        shortest, longest: the range of the result.
        gradation: the largest change of size per unit of distance.
    """
    n = ops.vertex_normals(v, f)
    e = ops.edges(f)[0]
    length = ops.edge_lengths(v, e).clamp_min(torch.finfo(v.dtype).tiny)
    turn = (n[e[:, 0]] - n[e[:, 1]]).norm(dim=-1) / length  # #E, ≈ curvature along the edge
    curvature = torch.zeros(len(v), dtype=v.dtype, device=v.device)
    curvature.scatter_reduce_(0, e.reshape(-1), turn.repeat_interleave(2), reduce="amax")
    h = (8 * tolerance / curvature.clamp_min(torch.finfo(v.dtype).tiny)).sqrt().clamp(shortest, longest)
    ends, others = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
    step = gradation * length.repeat(2)
    for _ in range(GRADING_ROUNDS):
        graded = h.scatter_reduce(0, ends, h[others] + step, reduce="amin")
        if torch.equal(graded, h):
            break
        h = graded
    return h


def remesh_to_sizes(
    v: torch.Tensor, f: torch.Tensor, sizes: torch.Tensor, iterations: int = 10, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Botsch–Kobbelt remeshing of (v, f) towards the per-vertex edge lengths `sizes`.

    New vertices are projected onto the input surface after every pass and take their target
    length from the input's sizes there (barycentric), so the size field stays where it was
    computed however the mesh moves over it.

    Args:
        v: #V,3 float64 vertices; f: #F,3 long faces (edge-manifold).
        sizes: #V target edge lengths at the input's vertices.
        iterations: passes of split, collapse, flip, relax, project.
        seed: the order in which competing collapses and flips are tried.

    Returns:
        the new vertices (#V',3 float64) and faces (#F',3 long).
    """
    source_v, source_f, source_sizes = v.cpu().numpy(), f.cpu().numpy().astype(np.int32), sizes.cpu().numpy()
    generator = torch.Generator().manual_seed(seed)
    s = sizes.to(v.dtype)
    for _ in range(iterations):
        v, f, s = split_long_edges(v, f, s)
        v, f, s = collapse_short_edges(v, f, s, generator)
        f = flip_edges(v, f, generator)
        v = relax_tangentially(v, f)
        v, s = _project(v, source_v, source_f, source_sizes)
    return v, f


def split_long_edges(v: torch.Tensor, f: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every edge longer than SPLIT × its target gets its midpoint; each face is cut into 2, 3 or 4.

    Corner k of a face is replaced by the midpoint of its edge k where that edge is split (the
    face that shrinks), and each split edge k adds the face (corner k, midpoint k, the shrunk
    face's corner k − 1):

            c2                      c2
           /  \\                    /  \\
          /    \\                 m2 -- m1        one split: [c0, m1, c2] + [c1, m1, c0]
         /      \\               /  \\  /  \\     three splits: the middle [m0, m1, m2] and a
        c0------c1            c0----m0----c1       corner face at each of c0, c1, c2
    """
    e, fe = ops.edges(f)
    target = 0.5 * (s[e[:, 0]] + s[e[:, 1]])
    split = ops.edge_lengths(v, e) > SPLIT * target
    count = int(split.sum())
    if count == 0:
        return v, f, s
    new = torch.full((len(e),), -1, dtype=torch.long, device=f.device)
    new[split] = torch.arange(len(v), len(v) + count, device=f.device)
    v = torch.cat([v, 0.5 * (v[e[split, 0]] + v[e[split, 1]])])
    s = torch.cat([s, target[split]])
    mid = new[fe]  # #F,3: the midpoint of face edge k, or -1
    cut = mid >= 0
    shrunk = torch.where(cut, mid, f)
    corner_faces = torch.stack([f, mid, shrunk.roll(1, dims=1)], dim=2)  # #F, k, 3
    return v, torch.cat([shrunk, corner_faces[cut]]), s


def collapse_short_edges(
    v: torch.Tensor, f: torch.Tensor, s: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges shorter than COLLAPSE × their target, each merged into its midpoint where that is safe.

    Safe means: the two ends share exactly two neighbours (the link condition: no pinched or
    non-manifold result), each of those keeps at least three, no edge at the midpoint becomes
    longer than SPLIT × its target (which would be split straight back), no face it moves turns
    over, and no end is on a boundary. Only edges no two of which share a one-ring are merged
    in one pass (`_independent`), so their checks hold together.
    """
    e, fe = ops.edges(f)
    target = 0.5 * (s[e[:, 0]] + s[e[:, 1]])
    frozen = _boundary_vertices(e, fe, len(v))
    short = (ops.edge_lengths(v, e) < COLLAPSE * target) & ~frozen[e].any(dim=1)
    chosen = _independent(e, short, e, len(v), generator)
    if len(chosen) == 0:
        return v, f, s
    a, b = e[chosen, 0], e[chosen, 1]
    middle, middle_size = 0.5 * (v[a] + v[b]), 0.5 * (s[a] + s[b])
    owner = torch.full((len(v),), -1, dtype=torch.long, device=f.device)
    owner[a] = owner[b] = torch.arange(len(chosen), device=f.device)
    valence = torch.bincount(e.reshape(-1), minlength=len(v))

    # each half-edge (end → w) of a chosen edge's ends, w not the other end
    src, dst = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
    k = owner[src]
    keep = (k >= 0) & (owner[dst] != k)
    src, dst, k = src[keep], dst[keep], k[keep]
    other = torch.where(src == a[k], b[k], a[k])
    shared = _has_edge(e, len(v), other, dst) & (src == a[k])  # w is a neighbour of both ends (counted once)
    common = torch.bincount(k[shared], minlength=len(chosen))
    thin = torch.zeros(len(chosen), dtype=torch.bool, device=f.device)
    thin.index_put_((k[shared],), valence[dst[shared]] <= 3, accumulate=True)
    too_long = torch.zeros(len(chosen), dtype=torch.bool, device=f.device)
    stretched = (middle[k] - v[dst]).norm(dim=-1) > SPLIT * 0.5 * (middle_size[k] + s[dst])
    too_long.index_put_((k,), stretched, accumulate=True)

    # faces that keep one end, with that end moved to the middle, must not turn over
    corner_owner = owner[f]  # #F,3
    moved = corner_owner >= 0
    touched = moved.any(dim=1) & ~(moved.sum(dim=1) > 1)  # faces with both ends vanish
    tf = f[touched]
    which = corner_owner[touched].amax(dim=1)
    after = torch.where(moved[touched][:, :, None], middle[which][:, None, :], v[tf])
    before_n = ops.face_normals(v, tf)
    after_n = ops.face_normals(after.reshape(-1, 3), torch.arange(3 * len(tf), device=f.device).reshape(-1, 3))
    turned = (before_n * after_n).sum(dim=1) < COLLAPSE_FOLD_COS
    folds = torch.zeros(len(chosen), dtype=torch.bool, device=f.device)
    folds.index_put_((which,), turned, accumulate=True)

    ok = (common == 2) & ~thin & ~too_long & ~folds
    a, b = a[ok], b[ok]
    v, s = v.clone(), s.clone()
    v[a], s[a] = middle[ok], middle_size[ok]
    into = torch.arange(len(v), device=f.device)
    into[b] = a
    f = into[f]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    return _compact(v, f, s)


def flip_edges(v: torch.Tensor, f: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip interior edges where that brings the four vertices' valences closer to 6.

    An edge x → y of face [x, y, c], with [y, x, d] on its other side, becomes c – d: the faces
    [x, d, c] and [d, y, c]. Not flipped: creases (faces meeting at more than 60°), flips whose
    new faces would face away from the old pair, or that would duplicate an edge or leave a
    vertex with fewer than three. Flips in one pass share no vertex.
    """
    e, fe = ops.edges(f)
    half_edge = fe.reshape(-1)
    counts = torch.bincount(half_edge, minlength=len(e))
    order = torch.argsort(half_edge, stable=True)
    first = torch.cumsum(counts, 0) - counts
    interior = (counts == 2).nonzero().squeeze(1)
    h1, h2 = order[first[interior]], order[first[interior] + 1]  # half-edges (face * 3 + k)
    f1, f2 = h1 // 3, h2 // 3
    x, y = f.reshape(-1)[h1], f[f1, (h1 % 3 + 1) % 3]
    c, d = f[f1, (h1 % 3 + 2) % 3], f[f2, (h2 % 3 + 2) % 3]
    valence = torch.bincount(e.reshape(-1), minlength=len(v))
    gain = 2 + valence[c] + valence[d] - valence[x] - valence[y]  # ½ × change of Σ (valence − 6)²
    n1, n2 = ops.face_normals(v, f[f1]), ops.face_normals(v, f[f2])
    new1 = ops.face_normals(v, torch.stack([x, d, c], dim=1))
    new2 = ops.face_normals(v, torch.stack([d, y, c], dim=1))
    old = n1 + n2
    wanted = (
        (gain < 0)
        & (c != d)
        & (valence[x] > 3)
        & (valence[y] > 3)
        & ((n1 * n2).sum(dim=1) > FLIP_CREASE_COS)
        & ((new1 * old).sum(dim=1) > 0)
        & ((new2 * old).sum(dim=1) > 0)
        & ~_has_edge(e, len(v), c, d)
    )
    quads = torch.stack([x, y, c, d], dim=1)
    chosen = _independent(quads, wanted, e, len(v), generator, spread=False)
    if len(chosen) == 0:
        return f
    f = f.clone()
    f[f1[chosen]] = torch.stack([x, d, c], dim=1)[chosen]
    f[f2[chosen]] = torch.stack([d, y, c], dim=1)[chosen]
    return f


def relax_tangentially(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Each interior vertex RELAX of the way to its neighbours' mean, within its tangent plane."""
    e, fe = ops.edges(f)
    ends, others = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
    degree = torch.bincount(ends, minlength=len(v)).clamp_min(1).to(v.dtype)
    mean = torch.zeros_like(v).index_add_(0, ends, v[others]) / degree[:, None]
    n = ops.vertex_normals(v, f)
    move = mean - v
    move = move - (move * n).sum(dim=1, keepdim=True) * n
    move[_boundary_vertices(e, fe, len(v))] = 0
    return v + RELAX * move


def _project(
    v: torch.Tensor, source_v: np.ndarray, source_f: np.ndarray, source_sizes: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """The points of the input surface nearest to `v`, and the size field there."""
    _, face, weights = gpytoolbox.squared_distance(v.cpu().numpy(), source_v, source_f, use_cpp=True)
    corners = source_f[np.asarray(face, dtype=np.int64)]  # #V,3
    points = np.einsum("vk,vkd->vd", weights, source_v[corners])
    sizes = np.einsum("vk,vk->v", weights, source_sizes[corners])
    return torch.from_numpy(points).to(v), torch.from_numpy(sizes).to(v)


def _independent(
    groups: torch.Tensor,
    wanted: torch.Tensor,
    e: torch.Tensor,
    num_vertices: int,
    generator: torch.Generator,
    spread: bool = True,
) -> torch.Tensor:
    """Indices of wanted rows of `groups` (#G,k vertex ids) no two of which touch each other's
    vertices — with `spread`, each other's one-rings — chosen in a random order.

    Each vertex takes the highest random rank of the wanted groups at it (with `spread`, then of
    its neighbours too); a group is chosen where it holds the highest rank at all its vertices.
    """
    rank = torch.full((len(groups),), -1, dtype=torch.long)
    index = wanted.nonzero().squeeze(1)
    rank[index] = torch.randperm(len(index), generator=generator)
    rank = rank.to(groups.device)
    k = groups.shape[1]
    best = torch.full((num_vertices,), -1, dtype=torch.long, device=groups.device)
    best.scatter_reduce_(0, groups.reshape(-1), rank.repeat_interleave(k), reduce="amax")
    if spread:
        ends, others = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
        best = best.scatter_reduce(0, ends, best[others], reduce="amax")
    return (wanted & (rank == best[groups].amax(dim=1))).nonzero().squeeze(1)


def _has_edge(e: torch.Tensor, num_vertices: int, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Whether (p, q) is an edge of `e` (rows sorted by a·V + b with a < b, as `ops.edges` gives)."""
    keys = e[:, 0] * num_vertices + e[:, 1]
    query = torch.minimum(p, q) * num_vertices + torch.maximum(p, q)
    at = torch.searchsorted(keys, query).clamp_max(len(keys) - 1)
    return keys[at] == query


def _boundary_vertices(e: torch.Tensor, fe: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """#V bool: on an edge that only one face uses."""
    boundary = torch.zeros(num_vertices, dtype=torch.bool, device=e.device)
    boundary[e[ops.edge_face_counts(fe, len(e)) == 1].reshape(-1)] = True
    return boundary


def _compact(v: torch.Tensor, f: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop vertices no face uses and renumber the faces."""
    used = torch.zeros(len(v), dtype=torch.bool, device=v.device)
    used[f.reshape(-1)] = True
    new = torch.cumsum(used, 0) - 1
    return v[used], new[f], s[used]
