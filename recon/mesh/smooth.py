"""Smooth vertex steps: the (I + λL) reparameterisation of Nicolet et al. 2021 ("Large Steps").

Plain gradient descent on vertex positions moves each vertex by its own gradient, so a vertex deep
inside a concavity that the visual hull filled in moves only as fast as its (weak, noisy) shading
gradient allows, while the Laplacian term holds it to its neighbours. Nicolet et al. optimise
u = (I + λL)·x instead: a gradient step on u becomes the step (I + λL)⁻¹·Δu on x, i.e. every
update is diffused over a neighbourhood of about √λ edges. Low frequencies (a whole region
sinking into a bowl) pass unattenuated, high frequencies (noise, tangles) are damped, so large
steps stay smooth.

Here the session keeps its base mesh and optimises a free parameter w with offsets
x − x₀ = (I + λL)⁻¹·w, which is the same parameterisation shifted by a constant. L = D − A is the
symmetric combinatorial graph Laplacian, so I + λL is symmetric positive definite; it is factored
once per mesh (scipy SuperLU) and every forward and backward pass is a pair of triangular solves.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu


def combinatorial_laplacian(num_vertices: int, edges: np.ndarray) -> sp.csc_matrix:
    """Sparse #V,#V L = D − A of the undirected edge list #E,2 (symmetric, rows sum to 0)."""
    i = np.concatenate([edges[:, 0], edges[:, 1]])
    j = np.concatenate([edges[:, 1], edges[:, 0]])
    adjacency = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices)).tocsr()
    degree = sp.diags(np.asarray(adjacency.sum(axis=1)).ravel())
    return (degree - adjacency).tocsc()


class _Solve(torch.autograd.Function):
    """x = M⁻¹·u with M symmetric, so the backward pass is the same solve: ∂/∂u = M⁻¹·∂/∂x."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, smoother: SmoothParameterization) -> torch.Tensor:  # noqa: D102
        ctx.smoother = smoother
        return smoother.offsets(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return ctx.smoother.solve(grad), None


class SmoothParameterization:
    """Maps a free parameter w (#V,3) to vertex offsets (I + λL)⁻¹·w, differentiably.

    Args:
        num_vertices: #V.
        edges: #E,2 long unique undirected edges of the mesh (its connectivity is fixed).
        lam: λ ≥ 0; the smoothing reaches about √λ edges. 0 gives the identity (no solve).
    """

    def __init__(self, num_vertices: int, edges: torch.Tensor, lam: float) -> None:
        if lam < 0:
            raise ValueError(f"λ must be ≥ 0, got {lam}")
        self.lam = float(lam)
        self.num_vertices = num_vertices
        self._lu = None
        self._cache: tuple[int, int, torch.Tensor] | None = None  # (id, version of w, offsets)
        if self.lam > 0:
            L = combinatorial_laplacian(num_vertices, edges.detach().cpu().numpy())
            self._lu = splu((sp.identity(num_vertices, format="csc") + self.lam * L).tocsc())

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """(I + λL)⁻¹·b for b #V,k on any device (solved in float64 on the CPU)."""
        if self._lu is None:
            return b.clone()
        x = self._lu.solve(b.detach().cpu().double().numpy())
        return torch.from_numpy(x).to(device=b.device, dtype=b.dtype)

    def offsets(self, w: torch.Tensor) -> torch.Tensor:
        """(I + λL)⁻¹·w without gradients, remembered until w changes in place (an optimiser step).

        A step needs the offsets for its loss, its checks and the next step's loss; the solve is
        the costly part, so it is done once per value of w. Tensor versions count in-place writes.
        """
        key = (id(w), w._version)
        if self._cache is None or self._cache[:2] != key:
            self._cache = (*key, self.solve(w))
        return self._cache[2]

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """Offsets (I + λL)⁻¹·w, with gradients flowing back to w."""
        if self._lu is None:
            return w
        return _Solve.apply(w, self)
