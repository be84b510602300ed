"""RtS splatting on the CPU in one pass per direction (numba), equal to `render.splat`'s torch reference.

The torch reference scatters each of the 9 taps of each of the K layers separately and pairs the
depth layers once per tap: ~200 small tensor operations forward and as many backward, each a full
sweep over the image. Here the forward pass *gathers*: every destination pixel visits its 3×3
sources once, pairs their layers with its own and accumulates the three buffers in registers.
The backward pass first turns the output gradient into gradients of each destination's three
buffers, then every source gathers from its 9 destinations. Each output element is written by one
thread, so the result is deterministic for any thread count (no atomics).

Same maths, conventions and choices as `render.splat` (read its module docstring); the only
difference is the order of the float32 sums. Float32 CPU tensors only; `render.splat.splat`
chooses this path itself when numba is installed.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

__all__ = ["splat_fused"]

_JIT = {"parallel": True, "cache": True, "nogil": True}


@numba.njit(**_JIT)
def _weights(pxy: np.ndarray, scale: float, total: float) -> np.ndarray:
    """(K, H, W, 9) normalised Gaussian weights of every splat at its 9 taps (row-major offsets)."""
    K, H, W, _ = pxy.shape
    out = np.empty((K, H, W, 9), dtype=np.float32)
    for i in prange(H):
        for k in range(K):
            for j in range(W):
                dx = pxy[k, i, j, 0] - (j + 0.5)
                dy = pxy[k, i, j, 1] - (i + 0.5)
                s = 0.0
                for t in range(9):
                    g = np.exp(scale * ((t % 3 - 1 - dx) ** 2 + (t // 3 - 1 - dy) ** 2))
                    out[k, i, j, t] = g
                    s += g
                for t in range(9):
                    out[k, i, j, t] = out[k, i, j, t] * (total / s)
    return out


@numba.njit(inline="always")
def _buffers(z: np.ndarray, si: int, sj: int, di: int, dj: int, codes: np.ndarray) -> None:
    """Buffer index (0 S⁺, 1 S⁰, 2 S⁻) of each layer of source (si, sj) at destination (di, dj).

    `render.splat._layer_assignment` for one pixel pair: ties go to the front-most layer.
    """
    K = z.shape[0]
    front = z[0, si, sj]
    occluded = False
    best = abs(z[0, di, dj] - front)
    for layer in range(1, K):
        d = abs(z[layer, di, dj] - front)
        if d < best:
            best = d
            occluded = True
    if occluded:
        for k in range(K):
            codes[k] = 2
        return
    visible = z[0, di, dj]
    k_star = 0
    best = abs(z[0, si, sj] - visible)
    for k in range(1, K):
        d = abs(z[k, si, sj] - visible)
        if d < best:
            best = d
            k_star = k
    for k in range(K):
        codes[k] = 0 if k < k_star else (1 if k == k_star else 2)


@numba.njit(**_JIT)
def _forward(rgba: np.ndarray, w: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, C) image and the (H, W, 3, C) un-normalised buffers it came from."""
    K, H, W, C = rgba.shape
    acc = np.zeros((H, W, 3, C), dtype=np.float32)
    out = np.empty((H, W, C), dtype=np.float32)
    for i in prange(H):
        codes = np.empty(K, dtype=np.int64)
        layer = np.empty((3, C), dtype=np.float32)
        for j in range(W):
            for t in range(9):
                si, sj = i - (t // 3 - 1), j - (t % 3 - 1)  # the source whose tap t lands here
                if si < 0 or si >= H or sj < 0 or sj >= W:
                    continue
                _buffers(z, si, sj, i, j, codes)
                for k in range(K):
                    wt = w[k, si, sj, t]
                    b = codes[k]
                    for c in range(C):
                        acc[i, j, b, c] += wt * rgba[k, si, sj, c]
            for b in range(3):
                n = max(1.0, acc[i, j, b, C - 1])
                for c in range(C):
                    layer[b, c] = acc[i, j, b, c] / n
            a_surface, a_front = layer[1, C - 1], layer[0, C - 1]
            for c in range(C):
                under = layer[1, c] + (1 - a_surface) * layer[2, c]
                out[i, j, c] = layer[0, c] + (1 - a_front) * under
    return out, acc


@numba.njit(**_JIT)
def _buffer_gradients(grad: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """(H, W, 3, C) ∂L/∂(un-normalised buffer) from ∂L/∂image, through the over-compositing and
    the max(1, Σ w·alpha) normalisation (whose gradient passes where Σ w·alpha ≥ 1, as torch's clamp)."""
    H, W, _, C = acc.shape
    out = np.empty((H, W, 3, C), dtype=np.float32)
    for i in prange(H):
        layer = np.empty((3, C), dtype=np.float32)
        g = np.empty((3, C), dtype=np.float32)
        for j in range(W):
            for b in range(3):
                n = max(1.0, acc[i, j, b, C - 1])
                for c in range(C):
                    layer[b, c] = acc[i, j, b, c] / n
            a_front, a_surface = layer[0, C - 1], layer[1, C - 1]
            front_a = 0.0  # ∂L/∂(front alpha) through (1 − a_front)·under
            surface_a = 0.0
            for c in range(C):
                gc = grad[i, j, c]
                under = layer[1, c] + (1 - a_surface) * layer[2, c]
                front_a -= gc * under
                g_under = (1 - a_front) * gc
                g[0, c] = gc
                g[1, c] = g_under
                g[2, c] = (1 - a_surface) * g_under
                surface_a -= g_under * layer[2, c]
            g[0, C - 1] += front_a
            g[1, C - 1] += surface_a
            for b in range(3):
                a = acc[i, j, b, C - 1]
                n = max(1.0, a)
                through_norm = 0.0
                for c in range(C):
                    out[i, j, b, c] = g[b, c] / n
                    through_norm -= g[b, c] * acc[i, j, b, c] / (n * n)
                if a >= 1.0:
                    out[i, j, b, C - 1] += through_norm
    return out


@numba.njit(**_JIT)
def _backward(
    rgba: np.ndarray, pxy: np.ndarray, w: np.ndarray, z: np.ndarray, g_acc: np.ndarray, scale: float, total: float
) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂rgba (K, H, W, C) and ∂L/∂pixel_xy (K, H, W, 2): every source gathers from its 9 destinations."""
    K, H, W, C = rgba.shape
    g_rgba = np.zeros((K, H, W, C), dtype=np.float32)
    g_pxy = np.zeros((K, H, W, 2), dtype=np.float32)
    for i in prange(H):
        codes = np.empty(K, dtype=np.int64)
        g_w = np.zeros((K, 9), dtype=np.float32)
        for j in range(W):
            g_w[:] = 0.0
            for t in range(9):
                di, dj = i + (t // 3 - 1), j + (t % 3 - 1)  # where this source's tap t lands
                if di < 0 or di >= H or dj < 0 or dj >= W:
                    continue
                _buffers(z, i, j, di, dj, codes)
                for k in range(K):
                    b = codes[k]
                    wt = w[k, i, j, t]
                    s = 0.0
                    for c in range(C):
                        ga = g_acc[di, dj, b, c]
                        g_rgba[k, i, j, c] += wt * ga
                        s += rgba[k, i, j, c] * ga
                    g_w[k, t] = s
            for k in range(K):
                # w_t = g_t·N/Σg  ⇒  ∂L/∂g_t = (N/Σg)(∂L/∂w_t − Σ_u ∂L/∂w_u·w_u / N)
                mixed = 0.0
                for t in range(9):
                    mixed += g_w[k, t] * w[k, i, j, t]
                # and ∂g_t/∂dx = −2·scale·g_t·(o_x − dx), so ∂L/∂g_t·∂g_t/∂dx needs only w_t.
                dx = pxy[k, i, j, 0] - (j + 0.5)
                dy = pxy[k, i, j, 1] - (i + 0.5)
                gx = 0.0
                gy = 0.0
                for t in range(9):
                    g_gauss = w[k, i, j, t] * (g_w[k, t] - mixed / total) * (-2 * scale)
                    gx += g_gauss * (t % 3 - 1 - dx)
                    gy += g_gauss * (t // 3 - 1 - dy)
                g_pxy[k, i, j, 0] = gx
                g_pxy[k, i, j, 1] = gy
    return g_rgba, g_pxy


class _FusedSplat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rgba, pixel_xy, z, sigma: float, eps: float):  # type: ignore[override]
        scale, total = -1.0 / (2 * sigma * sigma), 1.0 + eps
        r, p, d = (t.detach().contiguous().numpy() for t in (rgba, pixel_xy, z))
        w = _weights(p, scale, total)
        out, acc = _forward(r, w, d)
        ctx.arrays = (r, p, w, d, acc)
        ctx.constants = (scale, total)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        r, p, w, d, acc = ctx.arrays
        g_acc = _buffer_gradients(grad.detach().to(torch.float32).contiguous().numpy(), acc)
        g_rgba, g_pxy = _backward(r, p, w, d, g_acc, *ctx.constants)
        return torch.from_numpy(g_rgba), torch.from_numpy(g_pxy), None, None, None


def splat_fused(rgba: torch.Tensor, pixel_xy: torch.Tensor, z: torch.Tensor, sigma: float, eps: float) -> torch.Tensor:
    """`render.splat.splat` for float32 CPU tensors, with `z` already finite (`_finite_depth`)."""
    return _FusedSplat.apply(rgba, pixel_xy, z, sigma, eps)
