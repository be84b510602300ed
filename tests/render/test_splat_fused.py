"""The fused CPU splat equals the torch reference in values and gradients, on scenes that reach every buffer."""

from __future__ import annotations

import pytest
import torch

from render.splat import splat

numba = pytest.importorskip("numba", reason="the fused splat needs numba (a core dependency; not installed here)")


def _scene(K: int, H: int, W: int, seed: int, jitter: float = 0.3, empty: float = 0.3) -> tuple[torch.Tensor, ...]:
    """Random layered samples: holes (empty samples), occlusion edges (depth jumps) and moved splat centres."""
    g = torch.Generator().manual_seed(seed)
    alpha = (torch.rand(K, H, W, generator=g) > empty).float()
    rgba = torch.cat([torch.rand(K, H, W, 3, generator=g) * alpha[..., None], alpha[..., None]], -1)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    xy = torch.stack([xs, ys], -1).expand(K, H, W, 2) + jitter * torch.randn(K, H, W, 2, generator=g)
    # Two surfaces at different depths in blocks, so neighbours disagree on which layer is visible.
    base = 1 + 2 * (torch.rand(1, H // 4 + 1, W // 4 + 1, generator=g) > 0.5).float()
    base = base.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, :H, :W]
    depth = torch.sort(base + torch.rand(K, H, W, generator=g), dim=0).values
    depth = torch.where(alpha > 0, depth, torch.full_like(depth, float("inf"))).sort(0).values
    return rgba, xy, depth


def _run(impl: str, rgba: torch.Tensor, xy: torch.Tensor, depth: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    r, p = rgba.clone().requires_grad_(True), xy.clone().requires_grad_(True)
    out = splat(r, p, depth, impl=impl)
    (out * grad).sum().backward()
    return out.detach(), r.grad, p.grad


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_equals_reference(K: int, seed: int) -> None:
    rgba, xy, depth = _scene(K, 23, 31, seed)
    grad = torch.randn(23, 31, 4, generator=torch.Generator().manual_seed(seed + 10))
    reference = _run("torch", rgba, xy, depth, grad)
    fused = _run("fused", rgba, xy, depth, grad)
    for name, a, b in zip(("image", "∂rgba", "∂pixel_xy"), reference, fused):
        assert torch.allclose(a, b, atol=2e-6, rtol=1e-5), f"{name}: max difference {(a - b).abs().max():.3g}"
    assert fused[2].abs().max() > 0.1  # silhouettes and occlusions give the centres real gradients


def test_fused_saturated_buffers_and_one_channel() -> None:
    """Dense scenes (every normalisation clamps at 1) and a silhouette-only (C = 1) splat."""
    rgba, xy, depth = _scene(2, 17, 19, seed=3, empty=0.0)
    grad = torch.randn(17, 19, 4, generator=torch.Generator().manual_seed(4))
    for a, b in zip(_run("torch", rgba, xy, depth, grad), _run("fused", rgba, xy, depth, grad)):
        assert torch.allclose(a, b, atol=2e-6, rtol=1e-5)
    alpha = rgba[..., 3:]
    for a, b in zip(_run("torch", alpha, xy, depth, grad[..., :1]), _run("fused", alpha, xy, depth, grad[..., :1])):
        assert torch.allclose(a, b, atol=2e-6, rtol=1e-5)


def test_fused_is_deterministic_across_thread_counts() -> None:
    rgba, xy, depth = _scene(2, 40, 36, seed=5)
    grad = torch.randn(40, 36, 4, generator=torch.Generator().manual_seed(6))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _run("fused", rgba, xy, depth, grad)
        numba.set_num_threads(threads)
        many = _run("fused", rgba, xy, depth, grad)
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(single, many):
        assert torch.equal(a, b)


def test_auto_uses_fused_only_for_float32_cpu() -> None:
    rgba, xy, depth = _scene(2, 8, 8, seed=7)
    assert splat(rgba, xy, depth).grad_fn is None  # nothing requires grad: plain tensor either way
    r = rgba.clone().requires_grad_(True)
    assert type(splat(r, xy, depth).grad_fn).__name__ == "_FusedSplatBackward"
    r64 = rgba.double().requires_grad_(True)
    assert type(splat(r64, xy.double(), depth.double()).grad_fn).__name__ != "_FusedSplatBackward"
    with pytest.raises(ValueError, match="float32 CPU"):
        splat(r64, xy.double(), depth.double(), impl="fused")
    with pytest.raises(ValueError, match="impl"):
        splat(rgba, xy, depth, impl="numba")
