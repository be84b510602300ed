"""Local relaxation of a remeshed surface where it crosses itself."""

from __future__ import annotations

import torch
from scipy.spatial import cKDTree

from recon.mesh.checks import self_intersecting_pairs
from recon.mesh.mesh import Mesh
from render.rows import gather_rows, index_add_rows

RELAX_ROUNDS = 8
# Faces of the old surface searched for a vertex's same-facing nearest point (by centroid).
CANDIDATE_FACES = 48


def relax_crossings(mesh: Mesh, rounds: int = RELAX_ROUNDS, source: Mesh | None = None) -> tuple[Mesh, int]:
    """Move the vertices of crossing faces to their neighbours' mean until nothing crosses.

    Botsch–Kobbelt remeshing projects each new vertex onto the nearest point of the old surface;
    where two sheets nearly touch (a thin part, a fold) that can be the other sheet, and a face
    or two of the new mesh then cross it. Such a vertex lies off its own ring, so umbrella
    smoothing puts it back (lego and the dino: 1 pair, gone after one round). Each round smooths
    the vertices of the faces crossing at that moment once; the rest of the surface is untouched.
    Where the sheets are closer than an edge a few rounds may not part them (the dino's last
    remesh: 3 pairs gone after 4 rounds, 2 after 6); widening the patch each round did worse.

    With `source` (the surface that was remeshed) each mean is put back onto the nearest point
    of a `source` face that faces the vertex's way (its ring's normal), so a patch that went
    through to the other sheet as a whole, where the ring's mean is on the wrong sheet too,
    lands on its own sheet instead of being smoothed over it.

    Returns:
        the relaxed mesh (the same object when nothing crossed) and the pairs still crossing.
    """
    pairs = self_intersecting_pairs(mesh.vertices, mesh.faces)
    if len(pairs) == 0:
        return mesh, 0
    vertices, faces, edges = mesh.vertices.detach().clone(), mesh.faces, mesh.edges
    count = vertices.shape[0]
    ends, others = torch.cat([edges[:, 0], edges[:, 1]]), torch.cat([edges[:, 1], edges[:, 0]])  # each edge both ways
    degree = torch.bincount(ends, minlength=count).to(vertices.dtype)
    onto = None if source is None else _SameFacingProjection(source)
    for _ in range(rounds):
        patch = torch.zeros(count, dtype=torch.bool, device=vertices.device)
        patch[faces[torch.from_numpy(pairs).to(faces.device)].reshape(-1)] = True
        means = index_add_rows(count, ends, gather_rows(vertices, others)) / degree[:, None]
        if onto is not None:
            normals = mesh.vertex_normals(vertices)
            ring_normals = index_add_rows(count, ends, gather_rows(normals, others))
            index = torch.nonzero(patch).squeeze(1)
            means = means.index_copy(0, index, onto(means[index], ring_normals[index]))
        vertices = torch.where(patch[:, None], means, vertices)
        pairs = self_intersecting_pairs(vertices, faces)
        if len(pairs) == 0:
            break
    return mesh.with_vertices(vertices), len(pairs)


class _SameFacingProjection:
    """Nearest points on a surface among its faces that face a given way (a k-d tree of centroids)."""

    def __init__(self, surface: Mesh) -> None:
        self.corners = surface.vertices.detach()[surface.faces]  # F, 3, 3
        self.normals = surface.face_normals(surface.vertices.detach())
        self.tree = cKDTree(self.corners.mean(dim=1).cpu().numpy())

    def __call__(self, points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """(P, 3) points moved to their nearest point on a face whose normal has a positive dot
        with theirs; a point with no such face among its nearest candidates stays."""
        k = min(CANDIDATE_FACES, len(self.corners))
        _, nearest = self.tree.query(points.cpu().numpy(), k=k)
        candidates = torch.as_tensor(nearest, device=points.device).reshape(len(points), k)
        tri = self.corners.to(points.dtype)[candidates]  # P, k, 3, 3
        closest = closest_points_on_triangles(points[:, None].expand(-1, k, -1), tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
        distance = (closest - points[:, None]).norm(dim=-1)
        facing = (self.normals.to(points.dtype)[candidates] * normals[:, None]).sum(dim=-1) > 0
        distance = distance.masked_fill(~facing, float("inf"))
        best = distance.argmin(dim=1, keepdim=True)
        found = torch.isfinite(distance.gather(1, best)).squeeze(1)
        chosen = closest.gather(1, best[..., None].expand(-1, -1, 3)).squeeze(1)
        return torch.where(found[:, None], chosen, points)


def closest_points_on_triangles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The point of triangle (a, b, c) nearest to p, all (..., 3): Ericson's Voronoi-region
    tests (Real-Time Collision Detection §5.1.5), every region evaluated and the right one picked."""
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    tiny = torch.finfo(p.dtype).tiny

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return (num / torch.where(den.abs() > tiny, den, torch.full_like(den, tiny)))[..., None]

    total = va + vb + vc
    out = a + ab * ratio(vb, total) + ac * ratio(vc, total)  # inside the face
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out = torch.where(on_ab[..., None], a + ab * ratio(d1, d1 - d3), out)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out = torch.where(on_ac[..., None], a + ac * ratio(d2, d2 - d6), out)
    on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    out = torch.where(on_bc[..., None], b + (c - b) * ratio(d4 - d3, (d4 - d3) + (d5 - d6)), out)
    out = torch.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    out = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    return torch.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)
