"""Input checks and empty outputs shared by the rasterizer backends (one set of rules for both)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from render.fragments import Fragments


def check_raster_inputs(
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    resolution: Sequence[int],
    layers: int,
    check_indices: bool = True,
) -> tuple[int, int]:
    """Raise ValueError with a clear message when `rasterize` inputs are malformed.

    Both backends call this so that a bad mesh fails the same way on CPU and GPU instead of
    producing garbage (GL reads out of bounds silently) or an opaque CUDA error.

    Args:
        check_indices: check that tri lies in [0, V); a backend that already checked this very
            face tensor (e.g. when its upload is cached) passes False and checks `max < V` itself.

    Returns:
        (H, W) as Python ints.
    """
    if not isinstance(pos_clip, torch.Tensor) or not isinstance(tri, torch.Tensor):
        raise ValueError("pos_clip and tri must be torch tensors")
    if pos_clip.ndim != 2 or pos_clip.shape[1] != 4:
        raise ValueError(f"pos_clip must have shape (V, 4), got {tuple(pos_clip.shape)}")
    if pos_clip.dtype != torch.float32:
        raise ValueError(f"pos_clip must be float32, got {pos_clip.dtype} (call .float())")
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"tri must have shape (F, 3), got {tuple(tri.shape)}")
    if tri.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tri must be int64 (or int32), got {tri.dtype}")
    if tri.device != pos_clip.device:
        raise ValueError(f"pos_clip ({pos_clip.device}) and tri ({tri.device}) must be on the same device")
    try:
        height, width = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (H, W), got {resolution!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution must be positive, got {(height, width)}")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers must be an int >= 1, got {layers!r}")
    if tri.shape[0] > 0:
        # aminmax propagates NaN and exposes ±inf, at a fraction of isfinite().all()'s cost.
        if pos_clip.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(pos_clip))).all()):
            raise ValueError("pos_clip contains NaN or infinite values")
        if check_indices:
            check_index_range(tri, pos_clip.shape[0])
    return height, width


def check_index_range(tri: torch.Tensor, n_vertices: int) -> tuple[int, int]:
    """Raise ValueError unless every index lies in [0, n_vertices); returns (min, max)."""
    lo, hi = (int(v) for v in torch.aminmax(tri))
    if lo < 0 or hi >= n_vertices:
        raise ValueError(f"tri indices must lie in [0, {n_vertices}), got [{lo}, {hi}]")
    return lo, hi


def empty_fragments(layers: int, height: int, width: int, device: torch.device) -> Fragments:
    """Fragments with every pixel of every layer empty (id -1, bary 0, depth +inf)."""
    return Fragments(
        tri_id=torch.full((layers, height, width), -1, dtype=torch.int64, device=device),
        bary=torch.zeros((layers, height, width, 3), dtype=torch.float32, device=device),
        depth=torch.full((layers, height, width), float("inf"), dtype=torch.float32, device=device),
    )
