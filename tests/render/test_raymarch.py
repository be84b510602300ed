"""Ray marching to the first level crossing, secant refinement and implicit-differentiation depth gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from render.camera import Camera
from render.raymarch import Rays, camera_rays, logit_level, march, random_depths, ray_box, surface_depth

BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
CENTRE = torch.tensor([0.1, -0.05, 0.08], dtype=torch.float64)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads oversubscribe and run 10× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _camera(width: int = 24, height: int = 20) -> Camera:
    return Camera.look_at(np.array([0.4, -0.6, -2.6]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 45.0, width, height)


def _all_pixels(cam: Camera) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(cam.height), torch.arange(cam.width), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=1).double() + 0.5


def _sphere_depth(rays: Rays, centre: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Analytic first intersection at |o + d·w − c| = r, for any length of w (NaN where it misses)."""
    oc = centre - rays.origins
    a = (rays.directions**2).sum(1)
    b = (oc * rays.directions).sum(1)
    disc = b * b - a * ((oc * oc).sum(1) - r * r)
    return (b - torch.sqrt(disc)) / a


def _rays(dtype=torch.float64) -> Rays:
    cam = _camera()
    return camera_rays(cam, _all_pixels(cam), dtype=dtype)


def test_camera_rays_pass_through_their_pixels():
    cam = _camera()
    pix = _all_pixels(cam)
    rays = camera_rays(cam, pix, dtype=torch.float64)
    uv, z = cam.project(rays.at(torch.full((len(rays),), 2.0, dtype=torch.float64)).numpy())
    np.testing.assert_allclose(uv, pix.numpy(), atol=1e-9)
    np.testing.assert_allclose(z, 2.0 * rays.z_per_depth.numpy(), atol=1e-9)
    np.testing.assert_allclose(rays.directions.norm(dim=1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(rays.origins[0].numpy(), cam.center, atol=1e-12)


def test_ray_box_slabs():
    rays = Rays.make(
        torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 5.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 3.0]], dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], dtype=torch.float64),
    )
    t0, t1, inside = ray_box(rays, *BOX)
    assert inside.tolist() == [True, False, True, True]
    np.testing.assert_allclose(t0.numpy(), [2.0, 0.0, 0.0, 2.0])  # an origin inside the box starts at 0
    np.testing.assert_allclose(t1.numpy(), [4.0, 0.0, 1.0, 4.0])


@pytest.mark.parametrize("field_kind", ["distance", "quadratic_logit"])
def test_secant_depth_matches_an_analytic_sphere(field_kind):
    rays = _rays(torch.float32)
    r = 0.55
    c = CENTRE.float()
    if field_kind == "distance":
        field = lambda p: r - (p - c).norm(dim=-1)  # noqa: E731
    else:  # curved along the ray, as an occupancy logit is
        field = lambda p: 8.0 * (r * r - ((p - c) ** 2).sum(-1))  # noqa: E731
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(field, rays, t0, t1, n=16)
    truth = _sphere_depth(_rays(torch.float64), CENTRE, r)
    expected_hit = torch.isfinite(truth)
    assert expected_hit.sum() > 50 and (~expected_hit).sum() > 50
    # a ray grazing the sphere between two samples can be missed: at most a couple, all near tangency
    missed = expected_hit & ~hits.hit
    assert not bool((hits.hit & ~expected_hit).any())
    assert int(missed.sum()) <= 3
    err = (hits.depth[hits.hit].double() - truth[hits.hit]).abs()
    assert float(err.max()) < 1e-4
    assert bool(torch.isinf(hits.depth[~hits.hit]).all())


def test_first_crossing_and_rays_starting_inside():
    # two shells along x: the first free→occupied crossing is the near one
    def field(p):
        return torch.maximum(0.2 - (p - torch.tensor([-0.5, 0, 0])).norm(dim=-1), 0.2 - (p - torch.tensor([0.5, 0, 0])).norm(dim=-1))

    rays = Rays.make(torch.tensor([[-3.0, 0.0, 0.0], [-0.5, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(field, rays, t0, t1, n=64)
    assert hits.hit.tolist() == [True, False]  # the second starts inside an object: no free→occupied crossing
    assert abs(float(hits.depth[0]) - 2.3) < 1e-5


def test_random_depths_stay_in_the_box_interval():
    rays = _rays()
    t0, t1, inside = ray_box(rays, *BOX)
    hits = march(lambda p: -p.norm(dim=-1), rays, t0, t1, n=2)
    assert not bool(hits.hit.any())
    d = random_depths(hits, torch.Generator().manual_seed(0))
    assert bool(((d >= t0) & (d <= t1)).all()) and float((d - t0)[inside].std()) > 0.1


def test_depth_gradient_wrt_sphere_radius_is_exact():
    rays = _rays()
    r = torch.tensor(0.55, dtype=torch.float64, requires_grad=True)
    c = CENTRE.clone().requires_grad_(True)
    field = lambda p: r - (p - c).norm(dim=-1)  # noqa: E731
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(field, rays, t0, t1, n=32, secant_steps=12)
    sel = rays.select(hits.hit)
    d = surface_depth(field, sel, hits.depth[hits.hit], params=[r, c])
    weights = torch.linspace(0.5, 1.5, len(d), dtype=torch.float64)
    (weights * d).sum().backward()

    # analytic: d = b − √(b² − |oc|² + r²), b = w·(c − o)
    r_, c_ = r.detach().clone().requires_grad_(True), CENTRE.clone().requires_grad_(True)
    exact = _sphere_depth(sel, c_, r_)
    (weights * exact).sum().backward()
    assert abs(float(r.grad) - float(r_.grad)) < 1e-6 * abs(float(r_.grad))
    np.testing.assert_allclose(c.grad.numpy(), c_.grad.numpy(), rtol=1e-6, atol=1e-9)
    # per ray: ∂d/∂r = −r / √disc
    one = rays.select(hits.hit).select(torch.tensor([0]))
    r.grad = None
    surface_depth(field, one, hits.depth[hits.hit][:1], params=[r]).sum().backward()
    oc = CENTRE - one.origins[0]
    b = float(oc @ one.directions[0])
    assert abs(float(r.grad) + 0.55 / math.sqrt(b * b - float(oc @ oc) + 0.55**2)) < 1e-6


def test_depth_gradient_wrt_mlp_parameters_matches_finite_differences():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()

    def field(p):
        return 0.6 - p.norm(dim=-1) + 0.1 * mlp(p)[:, 0]

    cam = _camera(12, 10)
    rays = camera_rays(cam, _all_pixels(cam), dtype=torch.float64, device="cpu")
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(field, rays, t0, t1, n=32, secant_steps=30)
    rays, t0, t1 = rays.select(hits.hit), t0[hits.hit], t1[hits.hit]
    g = torch.randn(len(rays), dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss_value() -> float:
        h = march(field, rays, t0, t1, n=32, secant_steps=30)
        assert bool(h.hit.all())
        return float((g * h.depth).sum())

    d = surface_depth(field, rays, march(field, rays, t0, t1, n=32, secant_steps=30).depth, list(mlp.parameters()))
    (g * d).sum().backward()
    params = list(mlp.parameters())
    checks = [(0, (3, 1)), (1, (7,)), (2, (0, 5)), (3, (0,))]
    eps = 1e-6
    for i, index in checks:
        q = params[i]
        with torch.no_grad():
            q[index] += eps
            plus = loss_value()
            q[index] -= 2 * eps
            minus = loss_value()
            q[index] += eps
        fd = (plus - minus) / (2 * eps)
        assert abs(float(q.grad[index]) - fd) < 1e-5 * max(1.0, abs(fd)), (i, index, float(q.grad[index]), fd)


def test_depth_gradient_wrt_rays_matches_finite_differences():
    field = lambda p: 0.5 - (p - CENTRE).norm(dim=-1)  # noqa: E731
    o = torch.tensor([[0.2, 0.1, -2.5]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[-0.02, 0.01, 1.0]], dtype=torch.float64, requires_grad=True)
    rays = Rays(o, w, torch.ones(1, dtype=torch.float64))
    t0, t1, _ = ray_box(rays, *BOX)
    d = surface_depth(field, rays, march(field, rays, t0, t1, n=16, secant_steps=20).depth)
    d.sum().backward()
    exact_o = o.detach().clone().requires_grad_(True)
    exact_w = w.detach().clone().requires_grad_(True)
    _sphere_depth(Rays(exact_o, exact_w, torch.ones(1, dtype=torch.float64)), CENTRE, 0.5).sum().backward()
    np.testing.assert_allclose(o.grad.numpy(), exact_o.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(w.grad.numpy(), exact_w.grad.numpy(), atol=1e-9)


def test_no_state_kept_for_autograd_while_marching():
    r = torch.tensor(0.5, requires_grad=True)
    rays = _rays(torch.float32)
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(lambda p: r - p.norm(dim=-1), rays, t0, t1, n=8)
    assert not hits.depth.requires_grad and hits.depth.grad_fn is None


def test_bad_settings_are_clear_errors():
    rays = _rays(torch.float32)
    t0, t1, _ = ray_box(rays, *BOX)
    field = lambda p: 0.5 - p.norm(dim=-1)  # noqa: E731
    with pytest.raises(ValueError, match="n .* >= 2"):
        march(field, rays, t0, t1, n=1)
    with pytest.raises(ValueError, match="n .* >= 2"):
        march(field, rays, t0, t1, n=8.0)
    with pytest.raises(ValueError, match="secant_steps"):
        march(field, rays, t0, t1, n=8, secant_steps=-1)
    with pytest.raises(ValueError, match="level"):
        march(field, rays, t0, t1, n=8, level=float("nan"))
    with pytest.raises(ValueError, match="t_near"):
        march(field, rays, t0[:3], t1, n=8)
    with pytest.raises(ValueError, match="field must map"):
        march(lambda p: p, rays, t0, t1, n=8)
    for tau in (0.0, 1.0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            logit_level(tau)
    assert logit_level(0.5) == 0.0 and abs(logit_level(0.75) - math.log(3)) < 1e-12
    with pytest.raises(ValueError, match="min < max"):
        ray_box(rays, [1, 1, 1], [-1, -1, -1])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        camera_rays(_camera(), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="finite"):
        surface_depth(field, rays, torch.full((len(rays),), math.inf))
    with pytest.raises(ValueError, match="origins and directions"):
        Rays(torch.zeros(4, 3), torch.zeros(4, 2), torch.ones(4))


def test_chunked_marching_gives_the_same_depths():
    rays = _rays(torch.float32)
    t0, t1, _ = ray_box(rays, *BOX)
    field = lambda p: 0.55 - (p - CENTRE.float()).norm(dim=-1)  # noqa: E731
    whole = march(field, rays, t0, t1, n=16)
    chunked = march(field, rays, t0, t1, n=16, chunk=37)
    assert torch.equal(whole.hit, chunked.hit) and torch.equal(whole.depth, chunked.depth)


def test_backward_is_one_field_evaluation_not_an_unrolled_march():
    calls = []
    r = torch.tensor(0.55, requires_grad=True)

    def field(p):
        calls.append(len(p))
        return r - p.norm(dim=-1)

    rays = _rays(torch.float32)
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(field, rays, t0, t1, n=16, secant_steps=8)
    assert len(calls) == 1 + 8  # one call for all samples, one per secant step
    calls.clear()
    d = surface_depth(field, rays.select(hits.hit), hits.depth[hits.hit], [r])
    assert calls == []  # the forward pass is the identity on the marched depths
    d.sum().backward()
    assert calls == [int(hits.hit.sum())]  # backward: one evaluation at the surface points
