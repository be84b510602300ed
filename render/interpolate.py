"""Evaluation step of rasterize-then-splat: vertex attributes → G-buffer with fixed barycentrics."""

from __future__ import annotations

import torch

from render.fragments import Fragments
from render.rows import gather_rows


def interpolate(attr: torch.Tensor, tri: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Interpolate per-vertex attributes at every fragment; differentiable w.r.t. `attr`.

    The fragments are a fixed sampling pattern (no gradient flows into them); gradients reach
    the vertices through the interpolated values, as RtS §3.1 prescribes. Only covered pixels
    are gathered and weighted, so memory scales with the number of samples, not K·H·W·3·C.

    Args:
        attr: (V, C) floating-point vertex attributes (positions, normals, ...), any device.
        tri: (F, 3) int64 (or int32) faces, the same ones given to `rasterize`; same device.
        frags: Fragments from `rasterize` for those faces; same device as `attr`.

    Returns:
        (K, H, W, C) tensor of `attr`'s dtype and device: Σ_i bary_i · attr[tri[tri_id, i]]
        where covered, 0 where empty.
    """
    layers, height, width = frags.tri_id.shape
    sample, values = interpolate_covered(attr, tri, frags)
    out = attr.new_zeros((layers * height * width, attr.shape[1]))
    out = out.index_copy(0, sample, values)
    return out.reshape(layers, height, width, attr.shape[1])


def interpolate_covered(attr: torch.Tensor, tri: torch.Tensor, frags: Fragments) -> tuple[torch.Tensor, torch.Tensor]:
    """`interpolate` at the covered samples only: their flat indices into K·H·W (ascending), (N,),
    and their values, (N, C). What the renderer's G-buffer is built from."""
    if attr.ndim != 2:
        raise ValueError(f"attr must have shape (V, C), got {tuple(attr.shape)}")
    if not attr.is_floating_point():
        raise ValueError(f"attr must be floating point, got {attr.dtype}")
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tri must be an (F, 3) int64 tensor, got {tuple(tri.shape)} {tri.dtype}")
    if not (attr.device == tri.device == frags.tri_id.device):
        raise ValueError(
            f"attr ({attr.device}), tri ({tri.device}) and fragments ({frags.tri_id.device}) "
            "must be on the same device"
        )
    ids = frags.tri_id.reshape(-1)
    sample = torch.nonzero(ids >= 0).squeeze(1)  # flat indices of covered pixels
    corners = tri[ids[sample]].long()  # (N, 3) vertex indices
    weights = frags.bary.reshape(-1, 3)[sample].to(attr.dtype)  # (N, 3)
    values = (  # gather_rows, not attr[...]: a fast backward on the CPU (render.rows)
        gather_rows(attr, corners[:, 0]) * weights[:, 0:1]
        + gather_rows(attr, corners[:, 1]) * weights[:, 1:2]
        + gather_rows(attr, corners[:, 2]) * weights[:, 2:3]
    )
    return sample, values
