"""DVR's field network, losses and mesh extraction, and a short optimisation on an analytic sphere scene."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from recon.mesh.level_set import extract_level_set
from recon.methods.dvr_field import DVRField, DVRFieldConfig
from recon.methods.dvr_losses import DVRLossWeights, dvr_losses, extract_mesh, normal_loss
from render.camera import Camera
from render.raymarch import Rays, camera_rays, march, ray_box

BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads oversubscribe and run 10× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the network -------------------------------------------------------------------------------


def test_config_defaults_are_the_papers_and_the_cpu_preset_is_smaller():
    cfg = DVRFieldConfig()
    assert (cfg.hidden, cfg.blocks, cfg.pe_octaves) == (512, 5, 0)
    cpu = DVRFieldConfig.cpu()
    assert cpu.hidden < cfg.hidden and cpu.blocks < cfg.blocks
    assert DVRFieldConfig.from_dict(cpu.to_dict()) == cpu
    net = DVRField(cfg)
    assert len(net.blocks) == 5 and net.fc_in.out_features == 512 and net.fc_out.out_features == 4


def test_outputs_and_positional_encoding():
    net = DVRField(DVRFieldConfig(hidden=16, blocks=2, pe_octaves=3, init_occupancy_logit=-1.5))
    assert net.fc_in.in_features == 3 + 6 * 3  # render.viewer.mlp.positional_encoding's layout
    p = torch.rand(2, 5, 3) * 2 - 1
    assert net(p).shape == (2, 5, 4)
    assert net.occupancy_logit(p).shape == (2, 5)
    t = net.texture(p)
    assert t.shape == (2, 5, 3) and bool(((t > 0) & (t < 1)).all())
    torch.testing.assert_close(net.occupancy(p), torch.sigmoid(net.occupancy_logit(p)))
    x = torch.randn(7, 16)
    for block in net.blocks:  # the second layer starts at zero: a fresh block is the identity
        torch.testing.assert_close(block(x), x)
    # the occupancy bias sets the starting level
    assert abs(float(net.fc_out.bias[0].detach()) + 1.5) < 1e-7


def test_bad_settings_are_clear_errors():
    for kwargs, match in (
        ({"hidden": 0}, "hidden must be >= 1"),
        ({"blocks": -1}, "blocks must be >= 0"),
        ({"pe_octaves": 2.0}, "pe_octaves must be an integer"),
        ({"pe_octaves": 40}, "beyond float32"),
        ({"init_occupancy_logit": float("inf")}, "finite"),
    ):
        with pytest.raises(ValueError, match=match):
            DVRFieldConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown field"):
        DVRFieldConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        DVRField(DVRFieldConfig(hidden=4, blocks=0))(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="normal must be"):
        DVRLossWeights(normal=-1.0)
    net = DVRField(DVRFieldConfig(hidden=4, blocks=0))
    rays = Rays.make(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]))
    hits = march(net.occupancy_logit, rays, *ray_box(rays, *BOX)[:2], n=4)
    with pytest.raises(ValueError, match="bool"):
        dvr_losses(net, rays, hits, torch.ones(1), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="rgb"):
        dvr_losses(net, rays, hits, torch.ones(1, dtype=torch.bool), torch.zeros(3))
    with pytest.raises(ValueError, match="resolution"):
        extract_level_set(net.occupancy_logit, *BOX, resolution=1)
    with pytest.raises(ValueError, match="refinements"):
        extract_level_set(net.occupancy_logit, *BOX, refinements=-1)
    with pytest.raises(ValueError, match="min < max"):
        extract_level_set(net.occupancy_logit, [0, 0, 0], [1, 0, 1])


# ---- losses --------------------------------------------------------------------------------------


def _toy_rays(n: int = 64) -> Rays:
    g = torch.Generator().manual_seed(3)
    origins = torch.tensor([0.0, 0.0, -3.0]) + 0.3 * (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([1.0, 1.0, 0.0])
    return Rays.make(origins, torch.tensor([[0.0, 0.0, 1.0]]).expand(n, 3))


def _mean_occupancy_on(net: DVRField, rays: Rays) -> float:
    t = torch.linspace(2.0, 4.0, 9)
    pts = rays.origins[:, None, :] + t[None, :, None] * rays.directions[:, None, :]
    with torch.no_grad():
        return float(net.occupancy(pts.reshape(-1, 3)).mean())


@pytest.mark.parametrize("inside_mask", [False, True])
def test_freespace_and_occupancy_losses_push_the_right_way(inside_mask):
    """Outside the mask one step lowers the occupancy along the rays; inside with no surface, raises it."""
    torch.manual_seed(0)
    net = DVRField(DVRFieldConfig(hidden=16, blocks=1, init_occupancy_logit=-3.0 if inside_mask else 0.0))
    rays = _toy_rays()
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(net.occupancy_logit, rays, t0, t1, n=8)
    assert not bool(hits.hit.any())  # no surface: random points on the rays, both cases
    mask = torch.full((len(rays),), inside_mask)
    losses = dvr_losses(net, rays, hits, mask, torch.zeros(len(rays), 3), generator=torch.Generator().manual_seed(0))
    if inside_mask:
        assert losses.n_occupancy == len(rays) and float(losses.freespace) == 0.0 and float(losses.occupancy) > 0
    else:
        assert losses.n_freespace == len(rays) and float(losses.occupancy) == 0.0 and float(losses.freespace) > 0
    before = _mean_occupancy_on(net, rays)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    losses.total.backward()
    opt.step()
    after = _mean_occupancy_on(net, rays)
    assert (after > before + 1e-3) if inside_mask else (after < before - 1e-3), (before, after)


def test_photometric_and_depth_terms_reach_the_geometry_through_the_surface_depth():
    """A texture that brightens with depth: the RGB loss moves the surface along the ray to the right colour."""

    class Slab(torch.nn.Module):  # occupied beyond z = s; texture = z + 0.5 (so colour tells depth)
        def __init__(self):
            super().__init__()
            self.s = torch.nn.Parameter(torch.tensor(0.0))

        def occupancy_logit(self, p):
            return 4.0 * (p[..., 2] - self.s)

        def texture(self, p):
            return (p[..., 2:3] + 0.5).expand(*p.shape[:-1], 3)

    net = Slab()
    rays = _toy_rays(8)
    t0, t1, _ = ray_box(rays, *BOX)
    hits = march(net.occupancy_logit, rays, t0, t1, n=8)
    assert bool(hits.hit.all())
    weights = DVRLossWeights(normal=0.0)
    target = torch.full((8, 3), 0.7)  # the colour at z = 0.2: the surface should move back
    dvr_losses(net, rays, hits, torch.ones(8, dtype=torch.bool), target, weights).total.backward()
    assert float(net.s.grad) < 0  # gradient descent raises s
    net.s.grad = None
    depth = hits.depth - 0.1  # the true surface is nearer
    everywhere = torch.ones(8, dtype=torch.bool)
    losses = dvr_losses(net, rays, hits, everywhere, torch.full((8, 3), 0.5), DVRLossWeights(rgb=0.0, normal=0.0), depth=depth)
    assert abs(float(losses.depth) - 0.1) < 1e-5
    losses.total.backward()
    assert float(net.s.grad) > 0  # descent lowers s: the surface comes nearer


def test_normal_smoothness_is_zero_on_a_plane_and_positive_on_a_bumpy_surface():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(32, 3, generator=g) * 0.5
    plane = SimpleNamespace(occupancy_logit=lambda p: 3.0 * (p @ torch.tensor([0.3, -0.2, 0.9])))
    bumpy = SimpleNamespace(occupancy_logit=lambda p: p[..., 2] - 0.1 * torch.sin(40 * p[..., 0]))
    assert float(normal_loss(plane, points, 0.01, 32, g)) < 1e-6
    assert float(normal_loss(bumpy, points, 0.01, 32, g)) > 0.05


# ---- mesh extraction -----------------------------------------------------------------------------


def test_coarse_to_fine_extraction_matches_the_dense_grid_with_fewer_evaluations():
    calls = []

    def field(p):
        calls.append(len(p))
        return 0.55 - (p - torch.tensor([0.1, -0.05, 0.0])).norm(dim=-1) + 0.05 * torch.sin(5 * p[..., 0])

    v, f = extract_level_set(field, *BOX, resolution=8, refinements=2)
    coarse_to_fine = sum(calls)
    calls.clear()
    v_dense, f_dense = extract_level_set(field, *BOX, resolution=32, refinements=0)
    assert sum(calls) == 33**3 and coarse_to_fine < 0.5 * 33**3
    assert len(v) == len(v_dense) and len(f) == len(f_dense)
    np.testing.assert_allclose(np.sort(v, axis=0), np.sort(v_dense, axis=0), atol=1e-6)
    mesh = trimesh.Trimesh(v, f)
    assert mesh.is_watertight and mesh.volume > 0  # closed, counter-clockwise from outside


def test_extraction_closes_the_box_and_handles_an_empty_field():
    v, f = extract_level_set(lambda p: torch.ones(len(p)), *BOX, resolution=4, refinements=1)
    assert trimesh.Trimesh(v, f).is_watertight  # the full box, closed at its faces
    v, f = extract_level_set(lambda p: -torch.ones(len(p)), *BOX, resolution=4)
    assert v.shape == (0, 3) and f.shape == (0, 3)


# ---- a short optimisation ------------------------------------------------------------------------

RADIUS = 0.5


def _sphere_views(size: int = 32) -> list[tuple[Rays, torch.Tensor, torch.Tensor]]:
    """Eight analytic views of a sphere at the origin: rays, masks and colours 0.5 + 0.4·p/r."""
    dirs = np.array(
        [[1, 0.3, 0.2], [-1, 0.2, -0.3], [0.2, 1, 0.1], [0.1, -1, 0.3], [0.3, 0.2, 1], [-0.2, 0.1, -1], [0.7, 0.7, -0.5], [-0.6, -0.6, 0.6]]
    )
    v, u = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pixels = torch.stack([u.reshape(-1), v.reshape(-1)], 1).float() + 0.5
    views = []
    for d in dirs / np.linalg.norm(dirs, axis=1, keepdims=True):
        up = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
        rays = camera_rays(Camera.look_at(2.5 * d, np.zeros(3), up, 40.0, size, size), pixels)
        b = -(rays.origins * rays.directions).sum(1)
        depth = b - torch.sqrt(b * b - (rays.origins**2).sum(1) + RADIUS**2)
        mask = torch.isfinite(depth)
        p = rays.at(torch.where(mask, depth, torch.zeros_like(depth)))
        views.append((rays, mask, torch.where(mask[:, None], 0.5 + 0.4 * p / RADIUS, torch.zeros_like(p))))
    return views


def test_short_optimisation_converges_to_the_sphere():
    torch.manual_seed(0)
    views = _sphere_views()
    net = DVRField(DVRFieldConfig(hidden=32, blocks=2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    steps = 200
    start = time.perf_counter()
    for it in range(steps):
        rays, mask, rgb = views[it % len(views)]
        idx = torch.randperm(len(mask), generator=g)[:256]
        batch = rays.select(idx)
        t0, t1, _ = ray_box(batch, *BOX)
        hits = march(net.occupancy_logit, batch, t0, t1, n=16 if it < steps // 2 else 32)  # coarse to fine n
        losses = dvr_losses(net, batch, hits, mask[idx], rgb[idx], generator=g)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
        if it == int(0.7 * steps):
            for group in opt.param_groups:
                group["lr"] *= 0.2
    v, f, colors = extract_mesh(net, resolution=16, refinements=1)
    elapsed = time.perf_counter() - start
    radius = np.linalg.norm(v, axis=1)
    mesh = trimesh.Trimesh(v, f)
    assert mesh.is_watertight and len(mesh.split(only_watertight=False)) == 1
    assert abs(radius.mean() - RADIUS) < 0.04 and radius.std() < 0.03, (radius.mean(), radius.std())
    assert np.abs(colors - (0.5 + 0.4 * v / RADIUS)).mean() < 0.05
    assert losses.n_surface > 0 and losses.n_occupancy < 0.1 * len(idx)  # nearly every in-mask ray finds the surface
    assert elapsed < 60  # a few seconds on one core; generous for a loaded CI machine
