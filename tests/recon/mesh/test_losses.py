"""NDS regularisers: known values on hand-built meshes, gradients where (and only where) expected."""

from __future__ import annotations

import math

import torch

from recon.mesh import laplacian_loss, normal_consistency_loss, ops


def test_laplacian_loss_of_regular_tetrahedron(meshes):
    # δ_i = v_i − mean(others) = v_i + v_i/3 (vertices sum to 0), so ‖δ_i‖² = 16/9·3
    m = meshes.tetrahedron()
    assert math.isclose(float(laplacian_loss(m.vertices, m.laplacian)), 16 / 3, rel_tol=1e-6)


def test_laplacian_loss_gradient_flattens_a_bump(meshes):
    n = 7
    m = meshes.flat_grid(n)
    v = m.vertices.clone()
    centre = (n // 2) * n + n // 2
    v[centre, 2] = 0.2
    v.requires_grad_()
    loss = laplacian_loss(v, m.laplacian)
    loss.backward()
    assert float(loss.detach()) > 0
    assert float(v.grad[centre, 2]) > 0  # descent pushes the bump down
    far = [0, n - 1]  # corners: more than two rings away from the bump
    assert float(v.grad[far, 2].abs().max()) == 0


def test_laplacian_loss_gradient_matches_the_dense_product_with_an_isolated_vertex(meshes):
    m = meshes.icosphere(1)
    L = ops.uniform_laplacian(m.num_vertices + 1, m.edges)  # one extra, unused vertex
    v = torch.cat([m.vertices, torch.tensor([[5.0, 5.0, 5.0]])]) + 0.05 * torch.randn(m.num_vertices + 1, 3)
    fast = v.clone().requires_grad_()
    laplacian_loss(fast, L).backward()
    dense = v.clone().requires_grad_()
    (L.to_dense() @ dense).pow(2).sum(dim=-1).mean().backward()
    assert torch.allclose(fast.grad, dense.grad, atol=1e-7)
    assert float(fast.grad[-1].abs().max()) == 0  # nothing pulls the isolated vertex


def test_normal_consistency_of_flat_pair_is_zero_with_zero_gradient(meshes):
    m = meshes.two_triangles()
    v = m.vertices.clone().requires_grad_()
    loss = normal_consistency_loss(v, m.faces, m.face_adjacency)
    loss.backward()
    assert float(loss.detach()) == 0
    assert float(v.grad.abs().max()) < 1e-7


def test_normal_consistency_of_right_angle_fold_is_one(meshes):
    m = meshes.two_triangles()
    v = m.vertices.clone()
    v[3] = torch.tensor([0.5, 0.5, 0.0]) + torch.tensor([0.0, 0.0, 1.0]) * (0.5 * math.sqrt(2))
    # vertex 3 rotated about edge 1–2 by 90°: normals now perpendicular
    v.requires_grad_()
    loss = normal_consistency_loss(v, m.faces, m.face_adjacency)
    loss.backward()
    assert math.isclose(float(loss), 1.0, abs_tol=1e-5)
    assert float(v.grad[3].norm()) > 1e-3  # the free vertex is pulled back towards flat
    assert float(v.grad[0].norm()) > 1e-3


def test_normal_consistency_on_closed_meshes(meshes):
    cube = meshes.cube()
    # 6 pairs across the squares' diagonals (cos 1, no loss), 12 across the cube's edges (cos 0, loss 1)
    assert math.isclose(float(normal_consistency_loss(cube.vertices, cube.faces, cube.face_adjacency)), 12 / 18, rel_tol=1e-6)
    sphere = meshes.icosphere(3)
    assert float(normal_consistency_loss(sphere.vertices, sphere.faces, sphere.face_adjacency)) < 1e-3


def test_losses_are_differentiable_in_double(meshes):
    m = meshes.icosphere(0)
    v = (m.vertices.double() + 0.05 * torch.randn(m.num_vertices, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: normal_consistency_loss(x, m.faces, m.face_adjacency), (v,))
    L = m.laplacian.double()
    assert torch.autograd.gradcheck(lambda x: laplacian_loss(x, L), (v,))
