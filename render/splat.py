"""RtS depth-aware multi-layer splatting (Cole et al. 2021, §3.3), pure torch.

Each rasterized sample becomes a small Gaussian splat (σ = 0.5 px, 3×3 taps) whose *taps* sit on
the source pixel and its 8 neighbours, while its *weights* are a function of the differentiable
splat centre `pixel_xy`. In the forward pass `pixel_xy` is the source pixel centre, so the image is
a slight blur of the rasterized one; in the backward pass moving a splat moves colour between
pixels, which is what gives derivatives at silhouettes and occlusion boundaries.

Every splat tap lands in one of three buffers of the destination pixel, S⁺ (in front of its visible
surface), S⁰ (on it) or S⁻ (behind it), chosen by pairing the source's and destination's K depth
layers. Each buffer is normalised by max(1, Σ w·alpha) and the three are composited S⁻, S⁰, S⁺ with
premultiplied over.

Conventions: pixel (0, 0) is the top-left corner, pixel (i, j) has its centre at (j + 0.5, i + 0.5)
(render.camera). Layer 0 is the front-most (render.fragments).

Choices where the paper and the TF Graphics reference leave room:
* Σw counts each tap's weight times its sample's alpha (the reference scales tap weights by alpha),
  so empty samples add nothing and silhouettes keep Σw < 1 (the paper's reason for the max(1, ·)).
* W_p (Eq. 2) is summed over the taps actually used, the source pixel's 3×3 neighbourhood, so the
  weights stay smooth if a splat centre drifts past a pixel border (the reference uses floor(p)).
  At a pixel centre ∂W_p/∂p = 0 by symmetry, so forward values and gradients match the reference.
* The layer rule is stated as in the paper (Fig. 4); for depth-sorted layers it gives the same
  buffers as the reference's "smaller of the two best depth gaps" formulation (checked in tests).
  Depth is camera z, where the reference compares window-space z.
"""

from __future__ import annotations

import math

import torch

__all__ = ["splat", "splat_kernel_center_weight"]

# Assignment codes returned by `_layer_assignment`: which buffer a source layer's tap goes to.
FRONT = 1  # S⁺: the sample occludes the destination's visible surface
SURFACE = 0  # S⁰: the sample lies on the destination's visible surface
BEHIND = -1  # S⁻: the sample is occluded at the destination

# (di, dj) from a source pixel to each of its 3×3 destination pixels, row-major.
_OFFSETS: tuple[tuple[int, int], ...] = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))


def splat_kernel_center_weight(sigma: float = 0.5, eps: float = 0.05) -> float:
    """Weight a splat sitting exactly on its pixel centre gives to that pixel.

    Args:
        sigma: Gaussian standard deviation in pixels.
        eps: normalisation excess; a full 3×3 neighbourhood sums to 1 + eps.

    Returns:
        (1 + eps) / Σ_{3×3} exp(-|o|² / 2σ²); 0.6503 for the defaults.
    """
    total = sum(math.exp(-(di * di + dj * dj) / (2 * sigma * sigma)) for di, dj in _OFFSETS)
    return (1 + eps) / total


def _finite_depth(depth: torch.Tensor) -> torch.Tensor:
    """Replace +inf (empty) by a far plane beyond every finite depth, so |differences| never NaN."""
    depth = depth.detach()
    finite = torch.isfinite(depth)
    largest = torch.where(finite, depth.abs(), 0).max()  # 0 when all empty; no host sync
    # A multiple of the scene depth, not a huge constant: float32 must still tell far - z apart.
    return torch.where(finite, depth, 2 * largest + 1)


def _first_argmin(dist: torch.Tensor) -> torch.Tensor:
    """argmin over dim 0 keeping the first (front-most) index on ties; faster than argmin for small K."""
    best = dist[0]
    index = torch.zeros(dist.shape[1:], dtype=torch.int64, device=dist.device)
    for layer in range(1, dist.shape[0]):
        closer = dist[layer] < best  # strict: a tie keeps the front-most layer
        best = torch.minimum(best, dist[layer])
        index = index + closer * (layer - index)  # arithmetic: much faster than masked_fill on CPU
    return index


def _layer_assignment(src_depth: torch.Tensor, dst_depth: torch.Tensor) -> torch.Tensor:
    """Which accumulation buffer each source layer's tap goes to at a destination pixel.

    Layers are paired by depth. If the source's front layer is closest to a destination layer
    other than the front one, the source is occluded there and all its layers go behind (S⁻).
    Otherwise the source layer k* closest to the destination's front layer is on the visible
    surface (S⁰), layers in front of it (k < k*) occlude it (S⁺) and layers behind (k > k*) are
    occluded (S⁻). Ties go to the front-most layer, so equal depths, and any K = 1 input, give S⁰.

    Args:
        src_depth: (K, ...) float source depths, finite (see `_finite_depth`), front layer first.
        dst_depth: (K, ...) float destination depths of the same shape.

    Returns:
        (K, ...) int64 codes: FRONT (+1) for S⁺, SURFACE (0) for S⁰, BEHIND (-1) for S⁻.
    """
    # Is the source's front surface paired with a destination layer behind the visible one?
    occluded = _first_argmin((dst_depth - src_depth[:1]).abs()) != 0
    # Which source layer pairs with the destination's visible surface?
    k_star = _first_argmin((src_depth - dst_depth[:1]).abs())
    k = torch.arange(src_depth.shape[0], device=src_depth.device)
    k = k.view(-1, *([1] * (src_depth.dim() - 1)))
    code = (k < k_star).long() - (k > k_star).long()  # FRONT, SURFACE, BEHIND
    return code * ~occluded - occluded.long()  # occluded: all BEHIND


def _splat_weights(pixel_xy: torch.Tensor, sigma: float, eps: float) -> list[torch.Tensor]:
    """Weights of every splat at its 9 taps, in the source pixel's frame.

    Args:
        pixel_xy: (K, H, W, 2) splat centres in pixels.
        sigma, eps: kernel width and normalisation excess.

    Returns:
        9 tensors (K, H, W), offsets in `_OFFSETS` order; each splat's 9 weights sum to 1 + eps.
    """
    _, H, W, _ = pixel_xy.shape
    dtype, device = pixel_xy.dtype, pixel_xy.device
    cx = torch.arange(W, dtype=dtype, device=device) + 0.5
    cy = torch.arange(H, dtype=dtype, device=device).unsqueeze(-1) + 0.5
    # Splat offset from its own pixel centre: zero in the forward pass, carries the gradient.
    dx = pixel_xy[..., 0] - cx
    dy = pixel_xy[..., 1] - cy
    scale = -1.0 / (2 * sigma * sigma)
    gauss = [torch.exp(scale * ((dj - dx) ** 2 + (di - dy) ** 2)) for di, dj in _OFFSETS]
    # W_p: normalising over the splat's own taps keeps its total mass at 1 + eps wherever it moves.
    norm = (1 + eps) / sum(gauss)
    return [g * norm for g in gauss]


def splat(
    rgba: torch.Tensor,
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    *,
    sigma: float = 0.5,
    eps: float = 0.05,
) -> torch.Tensor:
    """Depth-aware multi-layer splatting of K layers of shaded samples into one image.

    All tensors on one device; rgba and pixel_xy of one floating dtype. Differentiable w.r.t.
    `rgba` and `pixel_xy`; `depth` is treated as a constant.

    Args:
        rgba: (K, H, W, C) premultiplied colours per layer sample, last channel alpha (coverage:
            1 where a sample exists, 0 where empty; shading gives rgb * alpha). Each buffer is
            normalised by max(1, Σ w·alpha), so empty samples add nothing to Σw (as in the TF
            Graphics reference: at a silhouette Σw < 1 and the edge stays soft).
        pixel_xy: (K, H, W, 2) splat centres (x, y) in pixels: the projection of each sample's
            interpolated 3-D position. In the forward pass equal to the pixel centre
            (j + 0.5, i + 0.5); pass the pixel centre for empty samples (must be finite).
        depth: (K, H, W) camera-space z per sample (positive), layers sorted front to back, +inf
            where empty (treated as a far plane behind everything). Not differentiated.
        sigma: Gaussian standard deviation in pixels (kernel taps are always 3×3).
        eps: a full neighbourhood of weights sums to 1 + eps, so interior pixels get normalised.

    Returns:
        (H, W, C) premultiplied image: S⁺ over (S⁰ over S⁻), each buffer
        Σ w·rgba / max(1, Σ w·alpha).

    Only the box of samples with a non-zero channel, grown by the kernel's one-pixel reach, is
    splatted (an object rarely fills its image: the demo's covers a quarter to a half of it);
    the rest of the image is exactly 0, as it would be, and the box holds the same values as a
    whole-image splat. Outside the box `rgba` gets a zero gradient: those samples are empty
    (rgba 0), and an empty sample's colour has no meaning.
    """
    if rgba.dim() != 4:
        raise ValueError(f"rgba must be (K, H, W, C), got {tuple(rgba.shape)}")
    K, H, W, C = rgba.shape
    if pixel_xy.shape != (K, H, W, 2):
        raise ValueError(f"pixel_xy must be {(K, H, W, 2)}, got {tuple(pixel_xy.shape)}")
    if depth.shape != (K, H, W):
        raise ValueError(f"depth must be {(K, H, W)}, got {tuple(depth.shape)}")
    box = _active_box(rgba)
    if box is None:
        return rgba.new_zeros(H, W, C) + 0 * rgba.sum() + 0 * pixel_xy.sum()  # keeps the graph
    top, bottom, left, right = box
    if (bottom - top) * (right - left) == H * W:
        return _splat(rgba, pixel_xy, depth, sigma, eps)
    window = (slice(None), slice(top, bottom), slice(left, right))
    offset = torch.tensor([left, top], dtype=pixel_xy.dtype, device=pixel_xy.device)
    inner = _splat(rgba[window], pixel_xy[window] - offset, depth[window], sigma, eps)
    return torch.nn.functional.pad(inner, (0, 0, left, W - right, top, H - bottom))


def _active_box(rgba: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), end-exclusive, of the samples with a non-zero channel grown by one pixel; None if none."""
    active = (rgba.detach() != 0).any(dim=-1).any(dim=0)  # (H, W)
    rows, cols = active.any(dim=1).nonzero(), active.any(dim=0).nonzero()
    if rows.numel() == 0:
        return None
    height, width = active.shape
    top, bottom = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)
    left, right = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, width)
    return top, bottom, left, right


def _splat(rgba: torch.Tensor, pixel_xy: torch.Tensor, depth: torch.Tensor, sigma: float, eps: float) -> torch.Tensor:
    """`splat` over the whole of its inputs (see there)."""
    K, H, W, C = rgba.shape
    pad = torch.nn.functional.pad
    weights = _splat_weights(pixel_xy, sigma, eps)  # 9 × (K, H, W), source frame
    z = _finite_depth(depth)
    # Destination (i, j) receives from source (i - di, j - dj): pad the source-frame tensors by
    # one pixel so all 9 shifted views exist. Outside sources weigh nothing, so whichever buffer
    # their depth picks receives zero.
    z_pad = pad(z, (1, 1, 1, 1))
    # Per-layer (C, H+2, W+2) tensors: slicing one small tensor per tap keeps each slice's
    # backward (a zero-filled copy of the sliced tensor) cheap.
    colours = pad(rgba.permute(0, 3, 1, 2).contiguous(), (1, 1, 1, 1)).unbind(0)

    # Buffers stacked as [S⁺, S⁰, S⁻] (index 1 - code); each tap lands in exactly one of them.
    acc = rgba.new_zeros(3, C, H, W)
    for (di, dj), w in zip(_OFFSETS, weights):
        rows, cols = slice(1 - di, 1 - di + H), slice(1 - dj, 1 - dj + W)
        buffer = 1 - _layer_assignment(z_pad[:, rows, cols], z)  # (K, H, W)
        for k, w_k in enumerate(pad(w, (1, 1, 1, 1)).unbind(0)):
            tap = w_k[rows, cols] * colours[k][:, rows, cols]  # (C, H, W)
            acc.scatter_add_(0, buffer[k].expand(1, C, H, W), tap.unsqueeze(0))

    # Normalise each buffer by max(1, Σ w·alpha) (its alpha channel), then over-composite.
    layers = acc / acc[:, -1:].clamp(min=1.0)
    front, surface, behind = layers.unbind(0)
    out = surface + (1 - surface[-1:]) * behind
    out = front + (1 - front[-1:]) * out
    return out.permute(1, 2, 0)
