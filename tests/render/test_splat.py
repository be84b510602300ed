"""RtS splatting (render.splat): kernel, layer assignment, compositing, gradients. Pure torch, fast.

Small scenes are hand-built so that the expected composite can be written out from the kernel
weights: c = weight of a splat at its own pixel (0.6503), s = c·e⁻² at a side neighbour,
d = c·e⁻⁴ at a diagonal neighbour.
"""

from __future__ import annotations

import math

import pytest
import torch

from render.splat import (
    BEHIND,
    FRONT,
    SURFACE,
    _layer_assignment,
    splat,
    splat_kernel_center_weight,
    splat_samples,
    splatted_coverage,
)

INF = float("inf")
C0 = splat_kernel_center_weight()  # own pixel
S1 = C0 * math.exp(-2.0)  # side neighbour (1 px)
D1 = C0 * math.exp(-4.0)  # diagonal neighbour (√2 px)

RED = (1.0, 0.0, 0.0, 1.0)
GREEN = (0.0, 1.0, 0.0, 1.0)
BLUE = (0.0, 0.0, 1.0, 1.0)
EMPTY = (0.0, 0.0, 0.0, 0.0)


def _centres(K: int, H: int, W: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(K, H, W, 2) pixel centres (j + 0.5, i + 0.5): splat positions in the forward pass."""
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=dtype) + 0.5, torch.arange(W, dtype=dtype) + 0.5, indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1).expand(K, H, W, 2).clone()


def _scene(samples: list[list[tuple[tuple[float, ...], float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1×W row of pixels from per-pixel [(rgba, depth) per layer], front layer first.

    Returns:
        rgba (K, 1, W, 4) and depth (K, 1, W).
    """
    rgba = torch.tensor([[[c for c, _ in px] for px in samples]]).permute(2, 0, 1, 3).contiguous()
    depth = torch.tensor([[[z for _, z in px] for px in samples]]).permute(2, 0, 1).contiguous()
    return rgba, depth


def _rgba(*values: float) -> torch.Tensor:
    return torch.tensor(values)


# ---------------------------------------------------------------- kernel and normalisation


def test_center_weight_constant() -> None:
    assert splat_kernel_center_weight() == pytest.approx(1.05 / 1.6146, abs=1e-4)
    assert splat_kernel_center_weight() == pytest.approx(0.6503, abs=1e-4)


@pytest.mark.parametrize("K", [1, 2])
def test_single_splat_kernel(K: int) -> None:
    H = W = 5
    rgba = torch.zeros(K, H, W, 4)
    rgba[0, 2, 2] = torch.tensor(RED)
    depth = torch.full((K, H, W), INF)
    depth[0, 2, 2] = 3.0
    alpha = splat(rgba, _centres(K, H, W), depth)[..., 3]

    expected = torch.zeros(H, W)
    expected[1:4, 1:4] = torch.tensor([[D1, S1, D1], [S1, C0, S1], [D1, S1, D1]])
    torch.testing.assert_close(alpha, expected, atol=1e-6, rtol=0)
    assert alpha[2, 2].item() == pytest.approx(0.6503, abs=1e-4)
    assert alpha.sum().item() == pytest.approx(1.05, abs=1e-6)


@pytest.mark.parametrize("shift", [(0.2, -0.3), (-0.45, 0.1), (0.49, 0.49)])
def test_shifted_splat_keeps_mass_and_support(shift: tuple[float, float]) -> None:
    H = W = 5
    rgba = torch.zeros(1, H, W, 4)
    rgba[0, 2, 2] = torch.tensor(GREEN)
    depth = torch.full((1, H, W), INF)
    depth[0, 2, 2] = 1.0
    xy = _centres(1, H, W)
    xy[0, 2, 2] += torch.tensor(shift)
    alpha = splat(rgba, xy, depth)[..., 3]

    assert alpha.sum().item() == pytest.approx(1.05, abs=1e-6)  # W_p renormalises the moved splat
    outside = alpha.clone()
    outside[1:4, 1:4] = 0
    assert outside.abs().max().item() == 0.0  # taps stay on the source pixel's 3×3 neighbourhood
    # The mass moves the way the splat did.
    cols = torch.arange(W, dtype=torch.float32) + 0.5
    rows = torch.arange(H, dtype=torch.float32) + 0.5
    cx = (alpha.sum(0) * cols).sum() / alpha.sum()
    cy = (alpha.sum(1) * rows).sum() / alpha.sum()
    assert math.copysign(1, cx.item() - 2.5) == math.copysign(1, shift[0])
    assert math.copysign(1, cy.item() - 2.5) == math.copysign(1, shift[1])


@pytest.mark.parametrize("K", [1, 2])
def test_flat_interior_reproduces_colour(K: int) -> None:
    H, W = 6, 7
    colour = torch.tensor([0.2, 0.5, 0.7, 1.0])
    rgba = torch.zeros(K, H, W, 4)
    rgba[0] = colour
    depth = torch.full((K, H, W), INF)
    depth[0] = 2.0
    out = splat(rgba, _centres(K, H, W), depth)
    # Interior: Σw = 1.05 > 1, so normalisation gives the colour back exactly.
    torch.testing.assert_close(out[1:-1, 1:-1], colour.expand(H - 2, W - 2, 4), atol=1e-6, rtol=0)
    # At the image border the missing taps leave Σw = 1.05 - s - 2d < 1 (as at a silhouette).
    assert out[0, 3, 3].item() == pytest.approx(1.05 - S1 - 2 * D1, abs=1e-6)


def test_single_layer_scene_same_with_k1_and_k2() -> None:
    """With nothing behind the front layer, depth-aware splatting changes nothing."""
    torch.manual_seed(0)
    H, W = 8, 9
    covered = torch.rand(H, W) > 0.4
    rgba1 = torch.rand(1, H, W, 4)
    rgba1[..., 3] = 1
    rgba1 = rgba1 * covered[..., None]
    depth1 = torch.where(covered, 1 + torch.rand(H, W), INF)[None]
    rgba2 = torch.cat([rgba1, torch.zeros_like(rgba1)])
    depth2 = torch.cat([depth1, torch.full_like(depth1, INF)])
    torch.testing.assert_close(
        splat(rgba1, _centres(1, H, W), depth1), splat(rgba2, _centres(2, H, W), depth2)
    )


# ---------------------------------------------------------------- layer assignment


def _codes(src: list[float], dst: list[float]) -> list[int]:
    src_t = torch.tensor(src).view(-1, 1)
    dst_t = torch.tensor(dst).view(-1, 1)
    return _layer_assignment(src_t, dst_t).view(-1).tolist()


FAR = 100.0  # what `splat` makes of +inf


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ([2.0], [2.0], [SURFACE]),  # K = 1: always the surface buffer
        ([2.0], [7.0], [SURFACE]),
        ([7.0], [2.0], [SURFACE]),
        ([2.0, 5.0], [2.0, 5.0], [SURFACE, BEHIND]),  # same surfaces
        ([2.0, 2.0], [2.0, 2.0], [SURFACE, BEHIND]),  # equal depths: ties go to the front
        ([1.0, 2.0], [2.0, FAR], [FRONT, SURFACE]),  # source's front occludes the destination
        ([2.0, FAR], [FAR, FAR], [FRONT, SURFACE]),  # silhouette over the background
        ([2.0, FAR], [1.0, 2.0], [BEHIND, BEHIND]),  # source occluded at the destination
        ([FAR, FAR], [2.0, FAR], [BEHIND, BEHIND]),  # background behind a surface
        ([FAR, FAR], [FAR, FAR], [SURFACE, BEHIND]),  # background onto background
        ([3.0, FAR], [1.0, 5.0], [SURFACE, BEHIND]),  # |3-1| = |3-5|: tie → front pairing
        ([1.0, 2.0, 3.0], [2.0, 3.0, FAR], [FRONT, SURFACE, BEHIND]),
        ([1.0, 1.5, 3.0], [3.0, FAR, FAR], [FRONT, FRONT, SURFACE]),
    ],
)
def test_layer_assignment(src: list[float], dst: list[float], expected: list[int]) -> None:
    assert _codes(src, dst) == expected


# ---------------------------------------------------------------- occlusion through outputs


def test_equal_depths_go_to_surface_buffer() -> None:
    """Two pixels of one surface: both splats normalised together in S⁰ (K = 2)."""
    rgba, depth = _scene([[(RED, 2.0), (EMPTY, INF)], [(BLUE, 2.0), (EMPTY, INF)]])
    out = splat(rgba, _centres(2, 1, 2), depth)[0]
    # Σw = c + s < 1, so no normalisation: a plain weighted sum.
    torch.testing.assert_close(out[0], C0 * _rgba(*RED) + S1 * _rgba(*BLUE))
    torch.testing.assert_close(out[1], S1 * _rgba(*RED) + C0 * _rgba(*BLUE))


def test_front_and_behind_sources() -> None:
    """Pixel 0 sees red at z=1 in front of blue at z=2; pixel 1 sees only blue at z=2.

    At pixel 1 the red splat from pixel 0 is in front (S⁺), blue splats are on the surface (S⁰).
    At pixel 0 blue from pixel 1 is occluded (S⁻) together with pixel 0's own blue layer.
    """
    rgba, depth = _scene([[(RED, 1.0), (BLUE, 2.0)], [(BLUE, 2.0), (EMPTY, INF)]])
    out = splat(rgba, _centres(2, 1, 2), depth)[0]
    red, blue = _rgba(*RED), _rgba(*BLUE)

    plus, zero = S1 * red, (S1 + C0) * blue
    torch.testing.assert_close(out[1], plus + (1 - S1) * zero)
    zero, minus = C0 * red, (C0 + S1) * blue
    torch.testing.assert_close(out[0], zero + (1 - C0) * minus)

    # K = 1 cannot tell: all splats share S⁰ and red is diluted instead of layered.
    out1 = splat(rgba[:1], _centres(1, 1, 2), depth[:1])[0]
    torch.testing.assert_close(out1[1], S1 * red + C0 * blue)
    assert not torch.allclose(out1[1], out[1])


def test_three_buffers_composite_with_known_alpha() -> None:
    """K = 3, semi-transparent samples: S⁺, S⁰, S⁻ all non-empty at one pixel; check the over."""
    a_r, a_g, a_b = 0.5, 0.8, 1.0
    red = (a_r, 0.0, 0.0, a_r)  # premultiplied
    green = (0.0, 0.7 * a_g, 0.0, a_g)
    blue = (0.0, 0.0, 0.9 * a_b, a_b)
    rgba, depth = _scene(
        [
            [(red, 1.0), (green, 2.0), (blue, 3.0)],
            [(green, 2.0), (blue, 3.0), (EMPTY, INF)],
        ]
    )
    out = splat(rgba, _centres(3, 1, 2), depth)[0, 1]
    # At pixel 1, from pixel 0 (weight s): red → S⁺, green → S⁰, blue → S⁻.
    # From pixel 1 itself (weight c): green → S⁰, blue → S⁻. No buffer reaches Σ w·α ≥ 1.
    plus = S1 * _rgba(*red)
    zero = (S1 + C0) * _rgba(*green)
    minus = (S1 + C0) * _rgba(*blue)
    assert plus[3].item() == pytest.approx(S1 * a_r)
    expected = plus + (1 - plus[3]) * (zero + (1 - zero[3]) * minus)
    torch.testing.assert_close(out, expected)


def test_normalised_buffers_composite() -> None:
    """A semi-transparent surface over an opaque one, both full: each buffer normalised on its own."""
    H, W = 5, 5
    rgba = torch.zeros(2, H, W, 4)
    rgba[0] = torch.tensor([0.3, 0.0, 0.0, 0.6])  # a 60 %-opaque surface in front ...
    rgba[1] = torch.tensor([0.0, 0.0, 0.8, 1.0])  # ... of an opaque one
    depth = torch.stack([torch.full((H, W), 1.0), torch.full((H, W), 2.0)])
    out = splat(rgba, _centres(2, H, W), depth)
    # Interior. S⁰ (the front layer): Σ w·α = 1.05 · 0.6 < 1, so it stays un-normalised at 1.05·rgba.
    front = 1.05 * rgba[0, 2, 2]
    # S⁻ (the back layer): Σ w·α = 1.05 ≥ 1, normalised back to its colour.
    back = rgba[1, 2, 2]
    torch.testing.assert_close(out[2, 2], front + (1 - front[3]) * back)


# ---------------------------------------------------------------- gradients


def test_gradient_at_silhouette() -> None:
    H, W = 6, 6
    rgba = torch.zeros(1, H, W, 4)
    rgba[0, :, :3] = torch.tensor(RED)
    depth = torch.full((1, H, W), INF)
    depth[0, :, :3] = 2.0
    xy = _centres(1, H, W).requires_grad_()
    out = splat(rgba, xy, depth)

    # First background column gains coverage when the boundary splats move right (+x).
    (grad,) = torch.autograd.grad(out[2:4, 3, 3].sum(), xy)
    assert (grad[0, 2:4, 2, 0] > 0.3).all()  # the two boundary splats beside them
    assert (grad[0, [1, 4], 2, 0] > 0.02).all()  # and, through diagonal taps, their neighbours
    assert grad[0, :, :2].abs().max().item() < 1e-6  # splats 2+ px away have no tap there
    # Deep inside, normalisation cancels any spreading: no spurious interior derivative.
    xy2 = _centres(1, H, W).requires_grad_()
    (grad,) = torch.autograd.grad(splat(rgba, xy2, depth)[3, 1].sum(), xy2)
    assert grad.abs().max().item() < 1e-6


def test_gradcheck_and_gradgradcheck_float64() -> None:
    torch.manual_seed(1)
    K, H, W = 2, 4, 5
    alpha = 0.2 + 0.8 * torch.rand(K, H, W, 1, dtype=torch.float64)
    alpha[1, 0, :2] = 0  # a few empty samples
    rgb = torch.rand(K, H, W, 2, dtype=torch.float64) * alpha
    rgba = torch.cat([rgb, alpha], dim=-1).requires_grad_()
    xy = _centres(K, H, W, torch.float64) + 0.6 * (torch.rand(K, H, W, 2, dtype=torch.float64) - 0.5)
    xy.requires_grad_()
    depth = torch.sort(1 + 3 * torch.rand(K, H, W, dtype=torch.float64), dim=0).values
    depth[1, 0, :2] = INF
    assert torch.autograd.gradcheck(lambda r, p: splat_samples(*_all_rows(r, p), depth), (rgba, xy), atol=1e-7)
    # Second derivatives too: forward-mode products (`jvp`) run through a double backward.
    assert torch.autograd.gradgradcheck(lambda r, p: splat_samples(*_all_rows(r, p), depth), (rgba, xy), atol=1e-7)


def _all_rows(rgba: torch.Tensor, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every sample of dense layers as rows, empty ones included: (rgba (N, C), xy (N, 2), index (N,))."""
    return rgba.reshape(-1, rgba.shape[-1]), xy.reshape(-1, 2), torch.arange(rgba[..., 0].numel())


def test_dense_layers_splat_their_non_empty_samples_with_every_samples_values_and_gradients() -> None:
    """`splat` of dense layers splats only the non-empty samples, in their box (+1 px): the same image
    and, for every non-empty sample, the same gradients as splatting every sample as a row."""
    torch.manual_seed(2)
    K, H, W = 2, 24, 30
    alpha = torch.zeros(K, H, W, 1)
    alpha[0, 7:15, 9:20] = 1
    alpha[1, 9:13, 11:17] = 1
    rgba = torch.cat([torch.rand(K, H, W, 3) * alpha, alpha], dim=-1).requires_grad_()
    xy = (_centres(K, H, W) + 0.4 * (torch.rand(K, H, W, 2) - 0.5) * alpha).requires_grad_()
    depth = torch.where(alpha[..., 0] > 0, 2 + torch.arange(K).view(K, 1, 1).float(), INF)
    target = torch.rand(H, W, 4)
    results = []
    for function in (splat, lambda r, p, d: splat_samples(*_all_rows(r, p), d)):
        out = function(rgba, xy, depth)
        results.append((out, *torch.autograd.grad(((out - target) ** 2).sum(), (rgba, xy))))
    (skipped, skipped_rgba, skipped_xy), (every, every_rgba, every_xy) = results
    torch.testing.assert_close(skipped, every, atol=1e-6, rtol=0)
    assert skipped[:6].abs().max() == 0
    filled = alpha[..., 0] > 0
    torch.testing.assert_close(skipped_rgba[filled], every_rgba[filled], atol=1e-6, rtol=0)
    torch.testing.assert_close(skipped_xy, every_xy, atol=1e-6, rtol=0)
    assert skipped_rgba[~filled].abs().max() == 0 < every_rgba[~filled].abs().max()  # empty samples: skipped


def test_rows_in_any_order_give_the_same_image() -> None:
    """A sample's taps go where its flat index says, whatever its row."""
    torch.manual_seed(4)
    K, H, W = 2, 6, 7
    rgba = torch.rand(K, H, W, 4)
    depth = torch.sort(1 + torch.rand(K, H, W), dim=0).values
    rows, xy, index = _all_rows(rgba, _centres(K, H, W))
    order = torch.randperm(index.numel())
    torch.testing.assert_close(splat_samples(rows, xy, index, depth), splat_samples(rows[order], xy[order], index[order], depth))


# ---------------------------------------------------------------- degenerate inputs


def test_a_centre_far_from_its_pixel_splats_finitely_onto_the_nearest_tap() -> None:
    """A sliver can be sampled at a pixel its position projects far from; exp underflowed every tap to 0/0."""
    H = W = 5
    rgba = torch.tensor([[0.2, 0.4, 0.6, 1.0]], requires_grad=True)
    depth = torch.full((2, H, W), INF)
    depth[0, 2, 2] = 1.0
    xy = torch.tensor([[2.5 - 22.0, 2.5 + 1.3]], requires_grad=True)  # 22 px left of pixel (2, 2)'s centre, 1.3 below
    out = splat_samples(rgba, xy, torch.tensor([2 * W + 2]), depth)
    assert torch.isfinite(out).all()
    # Its mass goes to the taps nearest the centre: the bottom-left (1.01, normalised to 1) and left.
    torch.testing.assert_close(out[3, 1], rgba[0].detach(), atol=1e-6, rtol=0)
    assert out[2, 1, 3].item() == pytest.approx(0.041, abs=1e-3)
    rest = out[..., 3].clone()
    rest[2:4, 1] = 0
    assert rest.abs().max().item() < 1e-3
    out.sum().backward()
    assert torch.isfinite(rgba.grad).all() and torch.isfinite(xy.grad).all()


@pytest.mark.parametrize("K", [1, 2])
def test_all_empty_is_finite(K: int) -> None:
    H, W = 4, 5
    rgba = torch.zeros(K, H, W, 4, requires_grad=True)
    xy = _centres(K, H, W).requires_grad_()
    out = splat(rgba, xy, torch.full((K, H, W), INF))
    assert torch.equal(out, torch.zeros(H, W, 4))
    out.sum().backward()
    assert torch.isfinite(rgba.grad).all() and torch.isfinite(xy.grad).all()


def test_all_inf_depth_with_colour_is_finite() -> None:
    """Depth all +inf (say, a caller forgot depths): no NaN, layer 0 composites as one surface."""
    H, W = 4, 4
    rgba = torch.rand(2, H, W, 4)
    rgba[..., 3] = 1
    rgba[0] = torch.tensor([0.1, 0.2, 0.3, 1.0])
    out = splat(rgba, _centres(2, H, W), torch.full((2, H, W), INF))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1:-1, 1:-1], rgba[0, 1:-1, 1:-1], atol=1e-6, rtol=0)


def test_no_rows_is_an_empty_image() -> None:
    rgba = torch.zeros(0, 4, requires_grad=True)
    out = splat_samples(rgba, torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), torch.full((2, 3, 4), INF))
    assert torch.equal(out, torch.zeros(3, 4, 4))
    out.sum().backward()
    assert rgba.grad.shape == (0, 4)


def test_colours_and_centres_of_different_precisions_splat_in_the_wider_one() -> None:
    # float32 colours with float64 centres: the image is float64 and each input gets its own dtype's gradient.
    n = 5
    rgba = torch.rand(n, 4).requires_grad_()
    xy = (torch.full((n, 2), 2.5, dtype=torch.float64) + 0.1 * torch.rand(n, 2, dtype=torch.float64)).requires_grad_()
    index = torch.arange(n) * 3
    out = splat_samples(rgba, xy, index, torch.ones(1, 6, 6))
    assert out.dtype == torch.float64
    out.square().sum().backward()
    assert rgba.grad.dtype == torch.float32 and xy.grad.dtype == torch.float64
    assert rgba.grad.abs().sum() > 0 and xy.grad.abs().sum() > 0
    same = splat_samples(rgba.detach().double(), xy.detach(), index, torch.ones(1, 6, 6))
    assert torch.allclose(out, same)


def test_splatted_coverage_is_the_alpha_of_a_one_layer_splat_of_it() -> None:
    """The silhouette target: a mask with soft (anti-aliased) and hard edges and an image border,
    splatted as one layer of samples whose alpha is the coverage, gives the same alpha."""
    coverage = torch.zeros(9, 11)
    coverage[2:7, 3:9] = 1.0
    coverage[2:7, 2] = 0.25  # a partly covered column
    coverage[4, 0] = 0.5  # a sample at the image's edge
    rgba = torch.zeros(1, 9, 11, 4)
    rgba[0, ..., 3] = coverage
    rgba[0, ..., :3] = coverage[..., None] * 0.3
    depth = torch.where(coverage > 0, 2.0, INF)[None]
    expected = splat(rgba, _centres(1, 9, 11), depth)[..., 3]
    torch.testing.assert_close(splatted_coverage(coverage), expected, atol=1e-6, rtol=0)
    assert splatted_coverage(coverage)[4, 5].item() == 1.0  # interior: normalised back to full coverage
    assert 0 < splatted_coverage(coverage)[4, 9].item() < 0.2  # one pixel outside: the kernel's spill


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="coverage"):
        splatted_coverage(torch.zeros(1, 3, 4))
    rgba = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="pixel_xy"):
        splat(rgba, torch.zeros(2, 3, 4, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="depth"):
        splat(rgba, torch.zeros(2, 3, 4, 2), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="must agree"):
        splat_samples(torch.zeros(5, 4), torch.zeros(4, 2), torch.arange(5), torch.zeros(2, 3, 4))
