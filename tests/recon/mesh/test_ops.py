"""ops: normals point out, edges/adjacency count right, the Laplacian is I − D⁻¹A."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from recon.mesh import ops


def test_tetrahedron_face_normals_point_outward(meshes):
    m = meshes.tetrahedron()
    n = ops.face_normals(m.vertices, m.faces)  # #F,3
    centroids = m.vertices[m.faces].mean(dim=1)
    assert torch.allclose(n.norm(dim=1), torch.ones(4))
    assert (torch.nn.functional.cosine_similarity(n, centroids) > 0.999).all()
    assert float(ops.signed_volume(m.vertices, m.faces)) > 0
    assert torch.allclose(ops.face_areas(m.vertices, m.faces), torch.full((4,), 2 * np.sqrt(3)))


def test_unnormalised_face_normal_is_twice_the_area(meshes):
    m = meshes.two_triangles()
    n = ops.face_normals(m.vertices, m.faces, normalize=False)
    assert torch.allclose(n, torch.tensor([[0.0, 0, 1], [0, 0, 1]]))


def test_cube_normals_are_axis_aligned_and_outward(meshes):
    m = meshes.cube()
    n = ops.face_normals(m.vertices, m.faces)
    centroids = m.vertices[m.faces].mean(dim=1)
    assert torch.allclose(n.abs().max(dim=1).values, torch.ones(12))
    assert ((n * centroids).sum(dim=1) > 0).all()
    assert float(ops.signed_volume(m.vertices, m.faces)) == np.float64(8.0)


def test_edges_and_adjacency_of_two_triangles(meshes):
    m = meshes.two_triangles()
    e, fe = ops.edges(m.faces)
    assert e.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    # face edge k goes from corner k to corner k+1
    for face, row in zip(m.faces.tolist(), fe.tolist()):
        for k in range(3):
            assert sorted(e[row[k]].tolist()) == sorted([face[k], face[(k + 1) % 3]])
    assert ops.edge_face_counts(fe, len(e)).tolist() == [1, 1, 2, 1, 1]
    assert ops.face_adjacency(fe).tolist() == [[0, 1]]


def test_closed_meshes_have_one_adjacent_pair_per_edge(meshes):
    for m in (meshes.tetrahedron(), meshes.cube(), meshes.icosphere(2)):
        e, fe = ops.edges(m.faces)
        assert len(e) == 3 * m.num_faces // 2
        assert (ops.edge_face_counts(fe, len(e)) == 2).all()
        adj = ops.face_adjacency(fe)
        assert len(adj) == len(e)
        shared = (m.faces[adj[:, 0]][:, :, None] == m.faces[adj[:, 1]][:, None, :]).sum(dim=(1, 2))
        assert (shared == 2).all()  # every pair shares exactly one edge


def test_laplacian_of_tetrahedron_is_i_minus_mean_of_neighbours(meshes):
    m = meshes.tetrahedron()
    L = ops.uniform_laplacian(4, ops.edges(m.faces)[0]).to_dense()
    expected = torch.eye(4) - (torch.ones(4, 4) - torch.eye(4)) / 3
    assert torch.allclose(L, expected)


def test_laplacian_rows_sum_to_zero_and_isolated_vertex_row_is_zero(meshes):
    m = meshes.icosphere(1)
    e = ops.edges(m.faces)[0]
    L = ops.uniform_laplacian(m.num_vertices + 1, e).to_dense()  # one extra, unused vertex
    assert torch.allclose(L.sum(dim=1), torch.zeros(m.num_vertices + 1), atol=1e-6)
    assert (L[-1] == 0).all()


def test_laplacian_of_flat_regular_grid_vanishes_inside(meshes):
    n = 6
    m = meshes.flat_grid(n)
    L = ops.uniform_laplacian(m.num_vertices, ops.edges(m.faces)[0])
    delta = (L @ m.vertices).reshape(n, n, 3)
    assert delta[1:-1, 1:-1].abs().max() < 1e-6
    assert delta[0].abs().max() > 1e-3  # the boundary is pulled inwards


def test_vertex_normals_match_trimesh_on_icosphere(meshes):
    m = meshes.icosphere(3)
    ours = ops.vertex_normals(m.vertices, m.faces)
    theirs = torch.tensor(np.array(m.to_trimesh().vertex_normals), dtype=torch.float32)
    assert torch.allclose(ours.norm(dim=1), torch.ones(m.num_vertices))
    assert (torch.nn.functional.cosine_similarity(ours, theirs) > 0.9999).all()


def test_vertex_normals_are_area_weighted_and_differentiable(meshes):
    m = meshes.tetrahedron()
    v = m.vertices.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.vertex_normals(x, m.faces), (v,))
    # a vertex shared by a big and a small face leans towards the big one
    v2 = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, -3]])
    f2 = torch.tensor([[0, 1, 2], [0, 3, 1]])  # normals +z (area 0.5) and −y (area 1.5)
    n0 = ops.vertex_normals(v2, f2)[0]
    fn = ops.face_normals(v2, f2)
    assert float(n0 @ fn[1]) > float(n0 @ fn[0])


def test_edge_lengths_and_mean_match_trimesh(meshes):
    m = meshes.icosphere(2)
    ours = ops.edge_lengths(m.vertices, ops.edges(m.faces)[0]).mean()
    theirs = trimesh.creation.icosphere(2).edges_unique_length.mean()
    assert abs(float(ours) - theirs) < 1e-5
