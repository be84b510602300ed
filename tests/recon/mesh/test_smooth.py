"""Large-Steps parameterisation: x = (I + λL)⁻¹·w, exact against dense algebra, cached per value of w."""

from __future__ import annotations

import pytest
import torch

from recon.mesh import sphere
from recon.mesh.smooth import SmoothParameterization, combinatorial_laplacian


def dense_system(mesh, lam: float) -> torch.Tensor:
    L = torch.from_numpy(combinatorial_laplacian(mesh.num_vertices, mesh.edges.numpy()).toarray())
    return torch.eye(mesh.num_vertices, dtype=torch.float64) + lam * L


def test_laplacian_is_symmetric_with_zero_row_sums():
    mesh = sphere(radius=1.0, subdivisions=1)
    L = combinatorial_laplacian(mesh.num_vertices, mesh.edges.numpy()).toarray()
    assert (L == L.T).all() and abs(L.sum(axis=1)).max() == 0
    assert (L.diagonal() >= 5).all()  # every icosphere vertex has 5 or 6 neighbours


def test_forward_and_backward_are_the_solve():
    mesh = sphere(radius=1.0, subdivisions=1)
    smoother = SmoothParameterization(mesh.num_vertices, mesh.edges, 4.0)
    M = dense_system(mesh, 4.0)
    w = torch.randn(mesh.num_vertices, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(mesh.num_vertices, 3, dtype=torch.float64)
    x = smoother(w)
    (x * g).sum().backward()
    torch.testing.assert_close(x.detach(), torch.linalg.solve(M, w.detach()))
    torch.testing.assert_close(w.grad, torch.linalg.solve(M, g))  # M is symmetric


def test_low_frequencies_pass_and_high_frequencies_are_damped():
    mesh = sphere(radius=1.0, subdivisions=2)
    smoother = SmoothParameterization(mesh.num_vertices, mesh.edges, 10.0)
    shift = torch.ones(mesh.num_vertices, 3, dtype=torch.float64)
    torch.testing.assert_close(smoother.solve(shift), shift)  # L·1 = 0: a rigid move is unchanged
    noise = torch.randn(mesh.num_vertices, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    noise -= noise.mean(dim=0)
    assert smoother.solve(noise).norm() < 0.2 * noise.norm()


def test_zero_lambda_is_the_identity_and_the_cache_follows_in_place_steps():
    mesh = sphere(radius=1.0, subdivisions=1)
    w = torch.zeros(mesh.num_vertices, 3, requires_grad=True)
    assert SmoothParameterization(mesh.num_vertices, mesh.edges, 0.0)(w) is w
    smoother = SmoothParameterization(mesh.num_vertices, mesh.edges, 2.0)
    before = smoother(w).detach().clone()
    optimizer = torch.optim.Adam([w], lr=0.1)
    w.grad = torch.ones_like(w)
    optimizer.step()  # an in-place update: the cached solve must not be reused
    after = smoother(w).detach()
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, smoother.solve(w.detach()))
    with pytest.raises(ValueError):
        SmoothParameterization(mesh.num_vertices, mesh.edges, -1.0)
