"""Geometry regularisers of NDS §3.2.2 (eq. 7 and 9); image terms live with the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from recon.mesh import ops
from render.rows import gather_rows


def laplacian_loss(v: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Mean squared differential coordinates (1/n) Σ ‖(L V)_i‖² (eq. 7, without λ).

    Args:
        v: #V,3 float vertices.
        L: CSR #V,#V uniform Laplacian I − D⁻¹A as `ops.uniform_laplacian` builds it (every
            row stores its diagonal), or `Mesh.laplacian`.
    """
    return _LaplacianEnergy.apply(v, L)


class _LaplacianEnergy(torch.autograd.Function):
    """(1/n)‖LV‖² with its gradient (2/n)·Lᵀ·LV, where Lᵀ = D·L·D⁻¹ (L = D⁻¹ times the symmetric
    D − A): two products with L and no transposed copy. Autograd through `torch.sparse.mm` took
    4.6 ms forward and backward on a 14K-vertex mesh, this 0.2 ms (a tenth of a CPU step)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        delta = L @ v  # #V,3
        ctx.save_for_backward(delta)
        ctx.L = L
        return delta.pow(2).sum() / max(v.shape[0], 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (delta,) = ctx.saved_tensors
        degree = (ctx.L.crow_indices().diff() - 1).to(delta.dtype)[:, None]  # the diagonal is stored
        transposed = degree * (ctx.L @ (delta / degree.clamp(min=1)))  # Lᵀ·δ
        return grad * (2.0 / max(delta.shape[0], 1)) * transposed, None


def normal_consistency_loss(
    v: torch.Tensor, f: torch.Tensor, adjacency: torch.Tensor, face_cross: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over face pairs sharing an edge of (1 − n_i·n_j)² (eq. 9, without λ).

    Args:
        v: #V,3 float vertices.
        f: #F,3 long faces.
        adjacency: #P,2 long face pairs (`ops.face_adjacency`, or `Mesh.face_adjacency`).
        face_cross: `ops.face_normals(v, f, normalize=False)` when the caller has it already.
    """
    if adjacency.numel() == 0:
        return v.new_zeros(())
    n = ops.face_normals(v, f) if face_cross is None else F_.normalize(face_cross, dim=-1, eps=ops.NORMAL_EPS)  # #F,3 unit
    cos = (gather_rows(n, adjacency[:, 0]) * gather_rows(n, adjacency[:, 1])).sum(dim=-1)  # #P
    return (1.0 - cos).pow(2).mean()
