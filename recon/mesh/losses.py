"""Geometry regularisers of NDS §3.2.2 (eq. 7 and 9); image terms live with the methods."""

from __future__ import annotations

import torch

from recon.mesh import ops


def laplacian_loss(v: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Mean squared differential coordinates (1/n) Σ ‖(L V)_i‖² (eq. 7, without λ).

    Args:
        v: #V,3 float vertices.
        L: sparse #V,#V Laplacian I − D⁻¹A (`ops.uniform_laplacian`, or `Mesh.laplacian`).
    """
    delta = torch.sparse.mm(L, v)  # #V,3
    return delta.pow(2).sum(dim=-1).mean()


def normal_consistency_loss(v: torch.Tensor, f: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """Mean over face pairs sharing an edge of (1 − n_i·n_j)² (eq. 9, without λ).

    Args:
        v: #V,3 float vertices.
        f: #F,3 long faces.
        adjacency: #P,2 long face pairs (`ops.face_adjacency`, or `Mesh.face_adjacency`).
    """
    if adjacency.numel() == 0:
        return v.new_zeros(())
    n = ops.face_normals(v, f)  # #F,3 unit
    cos = (n[adjacency[:, 0]] * n[adjacency[:, 1]]).sum(dim=-1)  # #P
    return (1.0 - cos).pow(2).mean()
