"""check_mesh catches injected NaN, flipped, degenerate, non-manifold and self-intersecting faces."""

from __future__ import annotations

import torch

from recon.mesh import check_mesh, self_intersecting_pairs


def test_healthy_mesh_has_no_problems(meshes):
    m = meshes.icosphere(3)
    assert check_mesh(m.vertices, m.faces, m.face_normals(), face_edges=m.face_edges, self_intersections=True) == []


def test_nan_is_caught(meshes):
    m = meshes.icosphere(2)
    v = m.vertices.clone()
    v[5, 0] = float("nan")
    v[7, 2] = float("inf")
    problems = check_mesh(v, m.faces)
    assert len(problems) == 1 and "2 vertices are NaN or Inf" in problems[0]


def test_flipped_face_is_caught(meshes):
    m = meshes.icosphere(2)
    reference = m.face_normals()
    f = m.faces.clone()
    f[10] = f[10].flip(0)
    assert any("1 faces flipped" in p for p in check_mesh(m.vertices, f, reference, max_flipped=0))
    assert check_mesh(m.vertices, f, reference) == []  # a few flips are tolerated by default
    f[:10] = f[:10].flip(1)
    assert any("11 faces flipped" in p for p in check_mesh(m.vertices, f, reference))


def test_vertex_dragged_across_an_edge_flips_a_face(meshes):
    m = meshes.icosphere(2)
    reference = m.face_normals()
    v = m.vertices.clone()
    a, b, c = m.faces[0].tolist()
    v[a] = v[b] + v[c] - v[a]  # a slides across edge b–c: face 0 folds over
    assert any("flipped" in p for p in check_mesh(v, m.faces, reference, max_flipped=0))


def test_degenerate_face_is_caught(meshes):
    m = meshes.icosphere(1)  # 80 faces: one bad face is above the 1 % default
    v = m.vertices.clone()
    a, b, c = m.faces[0]
    v[c] = 0.5 * (v[a] + v[b])  # a cap: zero area, no short edge
    problems = check_mesh(v, m.faces)
    assert any("degenerate" in p for p in problems)
    v2 = m.vertices.clone()
    v2[c] = v2[a]  # a needle: two corners coincide
    assert any("degenerate" in p for p in check_mesh(v2, m.faces))


def test_non_manifold_edge_is_caught(meshes):
    m = meshes.tetrahedron()
    v = torch.cat([m.vertices, torch.tensor([[3.0, 3.0, 3.0]])])
    f = torch.cat([m.faces, torch.tensor([[0, 1, 4]])])
    assert any("1 non-manifold" in p for p in check_mesh(v, f))


def test_self_intersection_is_caught(meshes):
    a = meshes.tetrahedron()
    f = torch.cat([a.faces, a.faces + 4])  # two tetrahedra in one mesh
    overlapping = torch.cat([a.vertices, a.vertices * 0.8 + torch.tensor([0.9, 0.2, 0.1])])
    assert len(self_intersecting_pairs(overlapping, f)) > 0
    assert any("intersect" in p for p in check_mesh(overlapping, f, self_intersections=True))
    apart = torch.cat([a.vertices, a.vertices + 5.0])
    assert len(self_intersecting_pairs(apart, f)) == 0


def test_vertex_pushed_through_the_far_side_intersects(meshes):
    m = meshes.icosphere(2)
    v = m.vertices.clone()
    v[0] = -1.3 * v[0]  # through the sphere and out of the opposite side
    assert len(self_intersecting_pairs(v, m.faces)) > 0


def test_faces_of_every_size_are_paired_as_every_pair_would_be(meshes):
    """Faces sorted into radius classes: the same crossings as testing all pairs, on a mesh mixing
    small faces with a few large ones (two overlapping fine spheres crossed by two big flat faces)."""
    import numpy as np

    from recon.mesh.checks import _triangles_cross

    sphere = meshes.icosphere(2)
    small = len(sphere.faces)
    big = torch.tensor([[-1.5, -1.5, 0.1], [1.5, -1.5, 0.1], [0.0, 1.5, 0.1], [-1.2, 0.3, -1.2], [1.2, 0.3, -1.2], [0.0, 0.3, 1.2]])
    vertices = torch.cat([sphere.vertices, sphere.vertices * 0.9 + torch.tensor([0.5, 0.1, 0.0]), big]).double()
    n = 2 * len(sphere.vertices)
    faces = torch.cat([sphere.faces, sphere.faces + len(sphere.vertices), torch.tensor([[n, n + 1, n + 2], [n + 3, n + 4, n + 5]])])
    found = {tuple(p) for p in self_intersecting_pairs(vertices, faces).tolist()}
    f = faces.numpy()
    i, j = np.triu_indices(len(f), k=1)
    disjoint = ~(f[i][:, :, None] == f[j][:, None, :]).any(axis=(1, 2))
    i, j = i[disjoint], j[disjoint]
    tri = vertices.numpy()[f]
    hit = _triangles_cross(tri[i], tri[j])
    expected = {(int(a), int(b)) for a, b in zip(i[hit], j[hit])}
    assert found == expected
    assert any(b >= 2 * small for _, b in expected) and any(b < 2 * small for _, b in expected)  # big and small


def test_triangle_pairs_cross_as_edge_through_triangle_geometry_says():
    """The narrow phase against a plain reference: an edge's crossing point with the other's plane,
    inside that triangle by its barycentric coordinates. Random pairs, many crossing, many apart."""
    import numpy as np

    from recon.mesh.checks import _triangles_cross

    rng = np.random.default_rng(0)
    n = 4000
    t1 = rng.normal(size=(n, 3, 3))
    t2 = rng.normal(size=(n, 3, 3)) * rng.uniform(0.2, 1.5, size=(n, 1, 1)) + rng.uniform(-0.8, 0.8, size=(n, 1, 3))

    def edge_through(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        a, b, c = t[:, 0], t[:, 1], t[:, 2]
        normal = np.cross(b - a, c - a)
        hit = np.zeros(len(s), dtype=bool)
        for k in range(3):
            p, q = s[:, k], s[:, (k + 1) % 3]
            dp, dq = ((p - a) * normal).sum(1), ((q - a) * normal).sum(1)
            crosses = dp * dq < 0
            x = p + (q - p) * (dp / np.where(crosses, dp - dq, 1.0))[:, None]
            area = (normal * normal).sum(1)
            u = (np.cross(c - b, x - b) * normal).sum(1) / area  # barycentric weights of a, b, c
            v = (np.cross(a - c, x - c) * normal).sum(1) / area
            hit |= crosses & (u > 0) & (v > 0) & (1 - u - v > 0)
        return hit

    expected = edge_through(t1, t2) | edge_through(t2, t1)
    assert 0.1 * n < expected.sum() < 0.9 * n  # both kinds are well represented
    assert np.array_equal(_triangles_cross(t1, t2), expected)
