"""Rasterize → interpolate → splat on real rasterized meshes (GL backend, EGL), RtS §3.3, §4.1, §4.2.

The rasterization is never differentiated: gradients reach the vertices only through the splat
centres (interpolated clip positions projected to pixels) and shading, as in the paper. Tests that
need GL take the `gl_rasterizer` fixture (tests/render/conftest.py), which skips without EGL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from render import Camera, Fragments, clip_to_pixels, interpolate, to_clip
from render.backends.gl import GLRasterizer
from render.splat import splat, splat_kernel_center_weight

FAR = 1e3  # the naive reference's stand-in for +inf depth


# ---------------------------------------------------------------- pipeline helpers


def _centres(K: int, H: int, W: int, dtype: torch.dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=dtype) + 0.5, torch.arange(W, dtype=dtype) + 0.5, indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1).expand(K, H, W, 2)


def _clip_matrix(cam: Camera, points: np.ndarray) -> torch.Tensor:
    return torch.tensor(cam.clip_matrix(*cam.near_far(points, margin=0.3)))


def _rasterize(
    rasterizer: GLRasterizer, verts: torch.Tensor, faces: torch.Tensor, M: torch.Tensor, cam: Camera, K: int
) -> Fragments:
    """The non-differentiable sampling step: fragments for the current (detached) vertices."""
    clip = to_clip(verts.detach().double(), M.double()).float()
    return rasterizer.rasterize(clip, faces, (cam.height, cam.width), layers=K)


def _render(
    verts: torch.Tensor, faces: torch.Tensor, colours: torch.Tensor, M: torch.Tensor, cam: Camera, frags: Fragments
) -> torch.Tensor:
    """Evaluate + shade + splat with fixed fragments; differentiable w.r.t. verts and colours.

    Args:
        verts: (V, 3) world positions; colours: (V, 3) straight RGB; M: (4, 4) world → clip.

    Returns:
        (H, W, 4) premultiplied RGBA in verts' dtype.
    """
    covered = frags.covered.unsqueeze(-1)
    clip = interpolate(to_clip(verts, M.to(verts.dtype)), faces, frags)  # (K, H, W, 4)
    # Empty samples have clip = 0: give them w = 1 before the divide, then the pixel centre.
    clip = torch.where(covered, clip, clip.new_tensor([0.0, 0.0, 0.0, 1.0]))
    K, H, W = frags.tri_id.shape
    pixel_xy = torch.where(covered, clip_to_pixels(clip, W, H), _centres(K, H, W, verts.dtype))
    alpha = covered.to(verts.dtype)
    rgba = torch.cat([interpolate(colours.to(verts.dtype), faces, frags) * alpha, alpha], dim=-1)
    return splat(rgba, pixel_xy, frags.depth)


def _pixel_triangle(cam: Camera, uv: list[tuple[float, float]], z: float) -> np.ndarray:
    """World vertices (3, 3) of a fronto-parallel triangle at camera depth z with pixel corners uv,
    ordered so that it faces the camera (clockwise in NDC, i.e. negative signed area in pixels)."""
    uv_arr = np.array(uv, dtype=np.float64)
    (u0, v0), (u1, v1), (u2, v2) = uv_arr
    if (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0) > 0:
        uv_arr = uv_arr[[0, 2, 1]]
    rays = np.linalg.solve(cam.K, np.c_[uv_arr, np.ones(3)].T).T
    return (rays * z - cam.t) @ cam.R


def _inside(uv: np.ndarray, H: int, W: int) -> np.ndarray:
    """(H, W) bool: pixel centres strictly inside the pixel-space triangle uv (3, 2)."""
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    signs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        (ua, va), (ub, vb) = uv[a], uv[b]
        signs.append((ub - ua) * (ys - va) - (vb - va) * (xs - ua))
    signs = np.stack(signs)
    return (signs > 0).all(0) | (signs < 0).all(0)


# ---------------------------------------------------------------- an independent naive reference


def _reference_splat(rgba: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per-pixel loop version of RtS splatting at pixel centres (float64 numpy).

    Uses the reference implementation's formulation of the layer rule: the best pairing between
    the destination's front layer and the source's layers competes with the best pairing between
    the source's front layer and the destination's layers; the smaller depth gap wins.

    Args:
        rgba: (K, H, W, 4) premultiplied; depth: (K, H, W), FAR where empty.

    Returns:
        (H, W, 4) premultiplied.
    """
    K, H, W, _ = rgba.shape
    c0 = splat_kernel_center_weight()
    acc = np.zeros((3, H, W, 4))  # front, surface, behind
    for i in range(H):
        for j in range(W):
            dst = depth[:, i, j]
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    si, sj = i - di, j - dj
                    if not (0 <= si < H and 0 <= sj < W):
                        continue
                    src = depth[:, si, sj]
                    gap_src = np.abs(src - dst[0])  # source layers vs destination front
                    gap_dst = np.abs(dst - src[0])  # destination layers vs source front
                    if gap_dst.min() < gap_src.min():
                        surface = -int(gap_dst.argmin())
                    else:
                        surface = int(gap_src.argmin())
                    weight = c0 * math.exp(-2.0 * (di * di + dj * dj))
                    for layer in range(K):
                        buffer = 0 if surface > layer else (1 if surface == layer else 2)
                        acc[buffer, i, j] += weight * rgba[layer, si, sj]
    acc /= np.maximum(1.0, acc[..., 3:])
    out = acc[1] + (1 - acc[1][..., 3:]) * acc[2]
    return acc[0] + (1 - acc[0][..., 3:]) * out


@pytest.mark.parametrize("K", [1, 2, 3])
def test_splat_matches_naive_reference_on_random_layers(K: int) -> None:
    rng = np.random.default_rng(K)
    H, W = 7, 8
    depth = np.sort(rng.choice([1.0, 1.5, 2.0, 2.5, 4.0, FAR], size=(K, H, W)), axis=0)
    alpha = (depth < FAR).astype(np.float64)
    rgba = np.concatenate([rng.random((K, H, W, 3)) * alpha[..., None], alpha[..., None]], -1)
    out = splat(
        torch.tensor(rgba),
        _centres(K, H, W, torch.float64),
        torch.tensor(np.where(depth < FAR, depth, np.inf)),
    )
    np.testing.assert_allclose(out.numpy(), _reference_splat(rgba, depth), atol=1e-12)


# ---------------------------------------------------------------- two overlapping triangles


@pytest.mark.gl
def test_two_overlapping_triangles_k2(gl_rasterizer: GLRasterizer) -> None:
    H, W = 24, 28
    f = 30.0
    cam = Camera(np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]), np.eye(3), np.zeros(3), W, H)
    front_uv = [(3.3, 4.1), (20.7, 6.2), (8.4, 21.6)]
    back_uv = [(9.2, 2.7), (25.6, 12.3), (12.1, 22.8)]
    z_front, z_back = 2.0, 3.0
    verts = np.concatenate([_pixel_triangle(cam, front_uv, z_front), _pixel_triangle(cam, back_uv, z_back)])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colours = torch.tensor([[0.9, 0.1, 0.2]] * 3 + [[0.1, 0.8, 0.3]] * 3, dtype=torch.float64)
    M = _clip_matrix(cam, verts)
    verts_t = torch.tensor(verts)
    frags = _rasterize(gl_rasterizer, verts_t, faces, M, cam, K=2)
    out = _render(verts_t, faces, colours, M, cam, frags).numpy()

    # Independent image: coverage from edge tests, layers sorted by the (constant) depths.
    in_front = _inside(np.array(front_uv), H, W)
    in_back = _inside(np.array(back_uv), H, W)
    assert in_front.sum() > 50 and in_back.sum() > 50 and (in_front & in_back).sum() > 20
    depth = np.full((2, H, W), FAR)
    rgba = np.zeros((2, H, W, 4))
    red = np.r_[colours[0].numpy(), 1.0]
    green = np.r_[colours[3].numpy(), 1.0]
    depth[0][in_back], rgba[0][in_back] = z_back, green
    depth[0][in_front], rgba[0][in_front] = z_front, red
    both = in_front & in_back
    depth[1][both], rgba[1][both] = z_back, green
    np.testing.assert_array_equal(frags.covered.numpy(), depth < FAR)
    # Splat centres come from float32 barycentrics, a hair off the pixel centres.
    ref = _reference_splat(rgba, depth)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    # The second layer matters here: one layer gives a visibly different occlusion edge.
    assert np.abs(ref - _reference_splat(rgba[:1], depth[:1])).max() > 0.05


# ---------------------------------------------------------------- silhouette gradients


def _fronto_camera(H: int, W: int, f: float) -> Camera:
    return Camera(np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]), np.eye(3), np.zeros(3), W, H)


@pytest.mark.gl
def test_shifted_triangle_gradient_and_descent(gl_rasterizer: GLRasterizer) -> None:
    H = W = 32
    cam = _fronto_camera(H, W, 30.0)
    uv = [(7.3, 6.6), (25.1, 9.4), (11.8, 26.2)]
    target_verts = torch.tensor(_pixel_triangle(cam, uv, 2.0))
    shifted = [(u + 3.0, v + 2.0) for u, v in uv]
    verts = torch.tensor(_pixel_triangle(cam, shifted, 2.0), requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])
    white = torch.ones(3, 3, dtype=torch.float64)
    M = _clip_matrix(cam, np.r_[target_verts.numpy(), verts.detach().numpy()])
    target = _render(target_verts, faces, white, M, cam, _rasterize(gl_rasterizer, target_verts, faces, M, cam, 1))
    target_alpha = target[..., 3].detach()

    def error(image: torch.Tensor) -> torch.Tensor:
        return ((image[..., 3] - target_alpha) ** 2).sum()

    frags = _rasterize(gl_rasterizer, verts, faces, M, cam, 1)
    # Plain rasterization: coverage is a constant of the fragments, so no silhouette gradient.
    covered = frags.covered[0].to(torch.float64)
    plain = torch.cat([interpolate(white, faces, frags)[0] * covered[..., None], covered[..., None]], -1)
    plain = plain + 0 * verts.sum()  # keep verts in the graph
    (plain_grad,) = torch.autograd.grad(error(plain), verts)
    assert plain_grad.abs().max().item() < 1e-12
    # Splatting: a real gradient, pulling the triangle back (−u, −v in pixels = −x, −y here).
    (splat_grad,) = torch.autograd.grad(error(_render(verts, faces, white, M, cam, frags)), verts)
    assert splat_grad.abs().max().item() > 1.0
    assert splat_grad[:, 0].sum() > 0 and splat_grad[:, 1].sum() > 0

    # 15 Adam steps on the vertex positions, re-rasterizing each time, at least halve the error.
    optimiser = torch.optim.Adam([verts], lr=0.02)
    errors = []
    for _ in range(15):
        frags = _rasterize(gl_rasterizer, verts, faces, M, cam, 1)
        loss = error(_render(verts, faces, white, M, cam, frags))
        errors.append(loss.item())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    final = error(_render(verts, faces, white, M, cam, _rasterize(gl_rasterizer, verts, faces, M, cam, 1))).item()
    assert final < 0.5 * errors[0]


@pytest.mark.gl
@pytest.mark.parametrize("K", [1, 2])
def test_gradient_matches_finite_differences_with_frozen_fragments(gl_rasterizer: GLRasterizer, K: int) -> None:
    H, W = 20, 22
    cam = _fronto_camera(H, W, 24.0)
    verts0 = torch.tensor(
        np.concatenate(
            [
                _pixel_triangle(cam, [(2.3, 3.1), (15.7, 4.2), (6.4, 17.6)], 2.0),
                _pixel_triangle(cam, [(7.2, 1.7), (20.6, 9.3), (9.1, 18.8)], 3.0),
            ]
        )
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    M = _clip_matrix(cam, verts0.numpy())
    frags = _rasterize(gl_rasterizer, verts0, faces, M, cam, K)  # frozen from here on

    def image(verts: torch.Tensor) -> torch.Tensor:
        # Position-dependent shading too, so gradients flow through colour and splat centres.
        return _render(verts, faces, torch.sigmoid(2 * verts), M, cam, frags)

    verts = verts0.clone().requires_grad_()
    assert torch.autograd.gradcheck(image, (verts,), eps=1e-6, atol=1e-6, fast_mode=True)
    # And explicitly, for one random projection of the image, coordinate by coordinate.
    weights = torch.rand(H, W, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (grad,) = torch.autograd.grad((image(verts) * weights).sum(), verts)
    numeric = torch.zeros_like(grad)
    h = 1e-6
    for index in np.ndindex(*verts0.shape):
        plus, minus = verts0.clone(), verts0.clone()
        plus[index] += h
        minus[index] -= h
        numeric[index] = ((image(plus) - image(minus)) * weights).sum() / (2 * h)
    torch.testing.assert_close(grad, numeric, atol=1e-6, rtol=1e-5)
    assert grad.abs().max().item() > 1.0


# ---------------------------------------------------------------- RtS Fig. 3: image derivatives


def _fig3_scene(config: str, t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A green sphere (the bunny's stand-in) in front of a red box, on black; `t` moves one of them.

    config "a": the sphere alone moves sideways; "b": the box moves behind the sphere;
    "c": the sphere moves in front of the box. Returns verts (V, 3), faces (F, 3), colours (V, 3).
    """
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    box = trimesh.creation.box(extents=(1.2, 1.2, 0.2))
    step = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) * t
    sv = torch.tensor(sphere.vertices) + torch.tensor([0.25, 0.1, 0.0], dtype=torch.float64)
    bv = torch.tensor(box.vertices) + torch.tensor([-0.45, -0.3, 1.0], dtype=torch.float64)
    green = torch.tensor([[0.1, 0.9, 0.1]], dtype=torch.float64).expand(len(sv), 3)
    red = torch.tensor([[0.9, 0.1, 0.1]], dtype=torch.float64).expand(len(bv), 3)
    if config in ("a", "c"):
        sv = sv + step
    else:
        bv = bv + step
    if config == "a":
        return sv, torch.tensor(sphere.faces), green
    faces = torch.cat([torch.tensor(sphere.faces), torch.tensor(box.faces) + len(sv)])
    return torch.cat([sv, bv]), faces, torch.cat([green, red])


def _fig3_derivatives(
    rasterizer: GLRasterizer, config: str, K: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dS/dt by autograd through splatting (fragments fixed at t = 0), and by central differences
    of fully re-rendered images at ±1 px of motion, both with K layers. Also the sphere's pixels."""
    H = W = 96
    distance = 6.0
    cam = Camera.look_at(np.array([0, 0, -distance]), np.zeros(3), np.array([0, 1.0, 0]), 30, W, H)
    verts0, faces, colours = _fig3_scene(config, 0.0)
    M = _clip_matrix(cam, np.r_[verts0.numpy(), _fig3_scene("b", 0.0)[0].numpy()])
    frags = _rasterize(rasterizer, verts0, faces, M, cam, K)

    def image(t: torch.Tensor) -> torch.Tensor:
        return _render(_fig3_scene(config, t)[0], faces, colours, M, cam, frags)

    zero, one = torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
    _, analytic = torch.autograd.functional.jvp(image, zero, one)

    def rerendered(t: float) -> torch.Tensor:
        verts = _fig3_scene(config, t)[0]
        return _render(verts, faces, colours, M, cam, _rasterize(rasterizer, verts, faces, M, cam, K))

    # Whole-pixel motion: the re-rasterized images are shifted copies, free of aliasing noise.
    dt = distance / cam.K[0, 0]
    numeric = (rerendered(dt) - rerendered(-dt)) / (2 * dt)
    n_sphere_faces = len(trimesh.creation.icosphere(subdivisions=3).faces)
    sphere = (frags.tri_id[0] >= 0) & (frags.tri_id[0] < n_sphere_faces)
    return analytic[..., :3], numeric[..., :3], sphere


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


@pytest.mark.gl
@pytest.mark.parametrize("config", ["a", "b", "c"])
def test_fig3_two_layer_derivatives_match_finite_differences(gl_rasterizer: GLRasterizer, config: str) -> None:
    analytic, numeric, sphere = _fig3_derivatives(gl_rasterizer, config, K=2)
    assert numeric.abs().max() > 0.5  # the motion does change the image
    # Measured on llvmpipe: 0.987 (a), 0.994 (b), 0.988 (c).
    assert _correlation(analytic, numeric) >= 0.9
    if config == "b":
        # The box is hidden behind the sphere: no derivative there, as finite differences say.
        energy = (analytic**2).sum(-1)
        assert energy[sphere].sum() < 0.01 * energy.sum()


@pytest.mark.gl
def test_fig3_single_layer_spurious_derivative_behind(gl_rasterizer: GLRasterizer) -> None:
    """RtS Fig. 3c, middle row: with K = 1 the box moving *behind* the sphere gets derivative energy
    on the sphere's outline, where the image does not change at all."""
    analytic1, numeric1, _ = _fig3_derivatives(gl_rasterizer, "b", K=1)
    analytic2, numeric, sphere = _fig3_derivatives(gl_rasterizer, "b", K=2)
    fd_energy = (numeric**2).sum(-1)
    assert fd_energy[sphere].sum() < 1e-3 * fd_energy.sum()  # only a hair at the outline's blur
    energy1 = (analytic1**2).sum(-1)
    assert energy1[sphere].sum() > 0.1 * energy1.sum()  # measured ≈ 0.2
    # Measured: 0.874 with one layer against 0.994 with two (each against its own re-rendering).
    assert _correlation(analytic1, numeric1) < _correlation(analytic2, numeric) - 0.05


# ---------------------------------------------------------------- RtS §4.2: pose from silhouettes


def _skew(w: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=w.dtype)
    return torch.stack(
        [torch.stack([zero, -w[2], w[1]]), torch.stack([w[2], zero, -w[0]]), torch.stack([-w[1], w[0], zero])]
    )


def _rotation(axis_angle: torch.Tensor) -> torch.Tensor:
    """exp of the skew matrix: smooth everywhere, including at the zero rotation."""
    return torch.linalg.matrix_exp(_skew(axis_angle))


def _axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Inverse of `_rotation` for angles in (0, π)."""
    angle = torch.arccos(((torch.trace(R) - 1) / 2).clamp(-1, 1))
    axis = torch.stack([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * torch.sin(angle))
    return axis * angle


@pytest.mark.gl
def test_pose_from_silhouettes(gl_rasterizer: GLRasterizer) -> None:
    # An asymmetric object: a slab, a capsule and a ball, overlapping (no boolean union needed).
    mesh = trimesh.util.concatenate(
        [
            trimesh.creation.box(extents=(1.0, 0.5, 0.4)),
            trimesh.creation.capsule(height=0.6, radius=0.18).apply_translation((0.35, 0.25, 0.3)),
            trimesh.creation.icosphere(subdivisions=2, radius=0.22).apply_translation((-0.45, -0.2, -0.15)),
        ]
    )
    verts = torch.tensor(mesh.vertices)
    faces = torch.tensor(mesh.faces)
    centre = verts.mean(0)
    size = float((verts.max(0).values - verts.min(0).values).norm())
    white = torch.ones(len(verts), 3, dtype=torch.float64)
    res = 96
    cams = [
        Camera.look_at(np.array(eye), np.zeros(3), np.array([0, 1.0, 0]), 35, res, res)
        for eye in ((0, 0, -4.0), (3.5, 1.0, -2.0), (-2.0, 3.0, -3.0))
    ]
    matrices = [_clip_matrix(cam, mesh.vertices * 1.5) for cam in cams]

    def posed(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        return (verts - centre) @ _rotation(rot).T + centre + trans

    def silhouettes(rot: torch.Tensor, trans: torch.Tensor) -> list[torch.Tensor]:
        v = posed(rot, trans)
        return [
            _render(v, faces, white, M, cam, _rasterize(gl_rasterizer, v, faces, M, cam, 1))[..., 3]
            for cam, M in zip(cams, matrices)
        ]

    true_rot = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    true_trans = torch.tensor([0.05, -0.03, 0.02], dtype=torch.float64)
    with torch.no_grad():
        targets = silhouettes(true_rot, true_trans)

    # Perturb: 15° about a skew axis, 7 % of the object's size.
    axis = torch.tensor([0.3, 1.0, -0.5], dtype=torch.float64)
    start = _rotation(axis / axis.norm() * math.radians(15)) @ _rotation(true_rot)
    rot = _axis_angle(start).clone().requires_grad_()
    offset = torch.tensor([0.6, -0.5, 0.4], dtype=torch.float64)
    trans = (true_trans + offset / offset.norm() * 0.07 * size).requires_grad_()

    def errors() -> tuple[float, float]:
        relative = _rotation(rot.detach()) @ _rotation(true_rot).T
        angle = math.degrees(float(torch.arccos(((torch.trace(relative) - 1) / 2).clamp(-1, 1))))
        return angle, float((trans.detach() - true_trans).norm()) / size

    assert errors()[0] == pytest.approx(15.0, abs=1e-6)
    optimiser = torch.optim.Adam([rot, trans], lr=0.03)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=0.97)
    for _ in range(60):
        loss = sum(((s - t) ** 2).mean() for s, t in zip(silhouettes(rot, trans), targets))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    angle, offset_error = errors()
    assert angle < 1.0  # measured ≈ 0.34°
    assert offset_error < 0.01  # measured ≈ 0.1 %
