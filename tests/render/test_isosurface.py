"""Isosurfaces through RtS (render/isosurface.py): sampling, evaluation, gradients, topology change."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import trimesh

from render.camera import Camera
from render.isosurface import Lattice, evaluate_isosurface, extract_isosurface, sample_isosurface, trilinear
from render.renderer import Renderer

CENTRE = np.array([0.05, -0.1, 0.02])
RADIUS = 0.6


def _sphere_sdf(points: torch.Tensor | np.ndarray, centre=CENTRE, radius=RADIUS):
    if isinstance(points, torch.Tensor):
        return (points - torch.as_tensor(centre, dtype=points.dtype)).norm(dim=-1) - radius
    return np.linalg.norm(points - centre, axis=-1) - radius


def _camera(width: int = 96, height: int = 80) -> Camera:
    return Camera.look_at(np.array([0.4, 0.6, -2.5]), CENTRE, np.array([0.0, 1.0, 0.0]), 45.0, width, height)


def _disk_distance(cam: Camera, centre=CENTRE, radius=RADIUS) -> np.ndarray:
    """Signed distance in pixels from each pixel centre to the analytic sphere's silhouette (< 0 inside)."""
    uv, _ = cam.project(np.asarray(centre)[None])
    d = np.linalg.norm(cam.center - centre)
    f = cam.K[0, 0]  # look_at: square pixels, principal point at the centre
    assert np.isclose(cam.K[1, 1], f)
    # The silhouette cone's half angle is asin(r/d); centred on the optical axis it is a circle.
    axis_dir = cam.R[2]
    assert np.allclose(axis_dir, (centre - cam.center) / d)
    r_px = f * np.tan(np.arcsin(radius / d))
    v, u = np.mgrid[0 : cam.height, 0 : cam.width] + 0.5
    return np.hypot(u - uv[0, 0], v - uv[0, 1]) - r_px


@pytest.fixture(scope="module")
def renderer(gl_rasterizer) -> Renderer:
    return Renderer(gl_rasterizer, "cpu", layers=2)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only adds synchronisation (3× the CPU time here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_marching_cubes_vertices_lie_on_their_lattice_edges() -> None:
    lattice = Lattice((14, 19, 11), (-1.0, -1.2, -0.9), (1.1, 1.0, 0.8))
    values = _sphere_sdf(lattice.points(dtype=torch.float64).numpy())
    surface = extract_isosurface(values, lattice)
    verts, edges = surface.vertices, surface.edges
    mesh = trimesh.Trimesh(verts, surface.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0  # CCW outward
    assert mesh.euler_number == 2
    flat = values.reshape(-1)
    fa, fb = flat[edges[:, 0]], flat[edges[:, 1]]
    assert (fa < 0).all() and (fb >= 0).all()  # inside end first
    pts = lattice.points(torch.from_numpy(edges), dtype=torch.float64).numpy()
    alpha = fa / (fa - fb)
    # Marching Cubes decides signs in float32, so positions agree to float32 rounding of the values.
    assert np.abs(pts[:, 0] + alpha[:, None] * (pts[:, 1] - pts[:, 0]) - verts).max() < 1e-6
    # Each edge joins lattice neighbours.
    assert np.allclose(np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)[:, None] >= lattice.spacing.min() - 1e-9, True)


def test_values_exactly_at_the_level_still_give_a_closed_surface() -> None:
    lattice = Lattice.cube(9, 1.0)  # points at multiples of 0.25: six lie exactly on the sphere
    values = _sphere_sdf(lattice.points(dtype=torch.float64).numpy(), np.zeros(3), 0.5)
    assert (values == 0).sum() == 6
    surface = extract_isosurface(values, lattice, min_gap=0)
    mesh = trimesh.Trimesh(surface.vertices, surface.faces)  # merges the vertices that coincide on those points
    assert mesh.is_watertight and mesh.euler_number == 2


def test_crossings_within_float32_rounding_of_a_lattice_point_keep_their_edges() -> None:
    """Marching Cubes' float32 vertex lands on the lattice point; its edge must still be found."""
    lattice = Lattice.cube(16, 1.0)
    values = _sphere_sdf(lattice.points(dtype=torch.float64).numpy())
    flat = values.reshape(-1)
    near = np.flatnonzero((flat > 0) & (flat < 0.05))[:40]
    flat[near] = 1e-9  # just outside: the crossings on their edges sit within 1e-8 of the point
    surface = extract_isosurface(values, lattice, min_gap=0)
    mesh = trimesh.Trimesh(surface.vertices, surface.faces, process=False)
    assert mesh.is_watertight and mesh.euler_number == 2
    used = np.unique(surface.faces)
    fa, fb = flat[surface.edges[used, 0]], flat[surface.edges[used, 1]]
    assert (fa < 0).all() and (fb > 0).all()
    assert np.isin(near, surface.edges[used, 1]).all()
    steps = np.abs(np.diff(np.stack(np.unravel_index(surface.edges[used], lattice.shape), -1), axis=1)).sum(-1)
    assert (steps == 1).all()  # lattice neighbours


def test_every_vertex_of_a_noisy_grid_lies_on_a_sign_changing_edge() -> None:
    """Ambiguous cubes everywhere: the triangulation must still use lattice edges only (no vertex
    inside a cube, as Lewiner's variant adds) and stay closed."""
    values = torch.randn(24, 24, 24, generator=torch.Generator().manual_seed(0))
    values[[0, -1]] = values[:, [0, -1]] = values[:, :, [0, -1]] = 1.0
    lattice = Lattice.cube(24)
    surface = extract_isosurface(values, lattice, min_gap=0)
    mesh = trimesh.Trimesh(surface.vertices, surface.faces, process=False)
    assert mesh.is_watertight and len(surface.faces) > 10_000
    flat = values.reshape(-1).numpy()
    used = np.unique(surface.faces)
    assert (flat[surface.edges[used, 0]] < 0).all() and (flat[surface.edges[used, 1]] > 0).all()


def test_nearly_equal_values_drop_their_triangles() -> None:
    lattice = Lattice.cube(12)
    values = _sphere_sdf(lattice.points(dtype=torch.float64).numpy())
    full = extract_isosurface(values, lattice, min_gap=0)
    all_faces, edges = full.faces, full.edges
    flat = values.reshape(-1)
    gaps = np.abs(flat[edges[:, 0]] - flat[edges[:, 1]])
    threshold = np.quantile(gaps, 0.2)
    kept = extract_isosurface(values, lattice, min_gap=threshold).faces
    expected = (gaps[all_faces] >= threshold).all(1).sum()
    assert 0 < len(kept) == expected < len(all_faces)


def test_sphere_isosurface_renders_within_a_pixel_of_the_analytic_silhouette(renderer, tools) -> None:
    lattice = Lattice.cube(32, 1.0)
    grid = _sphere_sdf(lattice.points(dtype=torch.float64)).float()
    cam = _camera()
    seen = {}

    def shade(position, normal, view_dir):
        seen.update(position=position, normal=normal, view_dir=view_dir)
        return 0.5 + 0.5 * normal

    out = renderer.render_isosurface(grid, extract_isosurface(grid, lattice), cam, shade=shade)
    assert out.image.shape == (80, 96, 3) and out.alpha.shape == (80, 96)
    dist = _disk_distance(cam)
    covered = out.gbuffer.covered[0].numpy()
    assert covered[dist < -1].all() and not covered[dist > 1].any()
    # The splatted coverage crosses 1/2 within a pixel of the silhouette too.
    alpha = out.alpha.numpy()
    assert (alpha[dist < -1] > 0.5).all() and (alpha[dist > 1] < 0.5).all()
    # G-buffer: points on the sphere, normals radial (pointing to f > 0), front layer facing the camera.
    radial = torch.nn.functional.normalize(seen["position"] - torch.tensor(CENTRE, dtype=torch.float32), dim=-1)
    assert ((seen["position"] - torch.tensor(CENTRE, dtype=torch.float32)).norm(dim=-1) - RADIUS).abs().max() < 0.01
    # Central differences interpolated like vertex normals: within 0.13° of radial at 32³ here
    # (the trilinear interpolant's gradient and the face normals are 4-5° off).
    assert (radial * seen["normal"]).sum(-1).min() > np.cos(np.radians(0.5))
    front = out.gbuffer.normal[0][out.gbuffer.covered[0]]
    assert (front * out.gbuffer.view_dir[0][out.gbuffer.covered[0]]).sum(-1).min() > -0.1
    tools.samples_are_the_dense_buffers(out.gbuffer, seen)


def test_samples_carry_six_lattice_indices_and_three_barycentrics(renderer) -> None:
    # Two balls, one partly hidden behind the other: the second layer sees the hidden part.
    lattice = Lattice.cube(20, 1.0)
    points = lattice.points(dtype=torch.float64)
    cam = _camera(48, 40)
    behind = CENTRE + 0.7 * cam.R[2] + 0.25 * cam.R[0]
    grid = torch.minimum(_sphere_sdf(points, CENTRE, 0.3), _sphere_sdf(points, behind, 0.3)).float()
    samples = sample_isosurface(renderer.rasterizer, extract_isosurface(grid, lattice), cam, layers=2)
    index, bary = samples.parameters
    covered = samples.fragments.covered
    assert index.shape == (2, 40, 48, 6) and bary.shape == (2, 40, 48, 3)
    assert (index[covered] >= 0).all() and (index[~covered] == -1).all()
    both = covered[0] & covered[1]
    assert both.any() and (samples.fragments.depth[1][both] > samples.fragments.depth[0][both] + 0.3).all()
    flat = grid.reshape(-1)
    assert (flat[index[covered][:, 0::2]] < 0).all() and (flat[index[covered][:, 1::2]] >= 0).all()
    assert torch.allclose(bary[covered].sum(-1), torch.tensor(1.0), atol=1e-5)


def test_trilinear_interpolation_is_exact_on_affine_functions_and_at_lattice_points() -> None:
    lattice = Lattice((5, 6, 7), (-1.0, -0.5, 0.0), (1.0, 1.5, 2.0))
    points = lattice.points(dtype=torch.float64)
    affine = points @ torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64) + 0.7
    # Points anywhere in the lattice's box [-1, 1] × [-0.5, 1.5] × [0, 2].
    inside = torch.rand(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    inside = inside + torch.tensor([-1.0, -0.5, 0.0], dtype=torch.float64)
    expected = inside @ torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64) + 0.7
    assert torch.allclose(trilinear(affine, lattice, inside), expected, atol=1e-12)
    values = torch.randn(lattice.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(trilinear(values, lattice, points.reshape(-1, 3)), values.reshape(-1), atol=1e-12)


def _loss_fn(renderer: Renderer, cam: Camera, seed: int = 0):
    """A scalar of everything the G-buffer feeds: splatted colour (positions, normals, view) and coverage."""
    g = torch.Generator().manual_seed(seed)
    w_rgb = torch.rand(cam.height, cam.width, 3, generator=g, dtype=torch.float64)
    w_a = torch.rand(cam.height, cam.width, generator=g, dtype=torch.float64)

    def shade(position, normal, view_dir):
        facing = (normal * view_dir).sum(-1, keepdim=True)
        return torch.sigmoid(torch.cat([position[:, :1], normal[:, 1:2], facing], -1))

    def loss(gbuffer) -> torch.Tensor:
        out = renderer.composite(gbuffer, shade)
        return (out.image * w_rgb).sum() + (out.alpha * w_a).sum()

    return loss


def test_gradients_with_respect_to_grid_values_match_finite_differences(renderer, one_thread) -> None:
    lattice = Lattice.cube(10, 1.0)
    grid = _sphere_sdf(lattice.points(dtype=torch.float64))
    cam = _camera(40, 32)
    samples = sample_isosurface(renderer.rasterizer, extract_isosurface(grid, lattice), cam)  # frozen from here
    loss = _loss_fn(renderer, cam)
    for normals in ("gradient", "face"):
        values = grid.clone().requires_grad_(True)
        loss(evaluate_isosurface(samples, values, cam, normals)).backward()
        used = samples.parameters[0][samples.fragments.covered].unique()
        picks = used[torch.randperm(len(used), generator=torch.Generator().manual_seed(1))[:8]]
        for index in picks.tolist():
            step = torch.zeros_like(grid).reshape(-1)
            step[index] = 1e-6
            step = step.reshape(grid.shape)
            with torch.no_grad():
                up = loss(evaluate_isosurface(samples, grid + step, cam, normals))
                down = loss(evaluate_isosurface(samples, grid - step, cam, normals))
            fd = (up - down) / 2e-6
            analytic = values.grad.reshape(-1)[index]
            assert torch.isclose(analytic, fd, rtol=1e-4, atol=1e-6), (normals, index, float(analytic), float(fd))
        assert values.grad.abs().sum() > 0


class _SdfMLP(torch.nn.Module):
    """A sphere's SDF plus a small smooth MLP: the kind of f a reconstruction would optimise."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        with torch.no_grad():
            self.net[2].weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sphere_sdf(x) + self.net(x).squeeze(-1)


def test_gradients_with_respect_to_mlp_parameters_match_finite_differences(renderer, one_thread) -> None:
    lattice = Lattice.cube(12, 1.0)
    f = _SdfMLP()
    cam = _camera(40, 32)
    values = lattice.sample(f, torch.float64)
    samples = sample_isosurface(renderer.rasterizer, extract_isosurface(values, lattice), cam)
    loss = _loss_fn(renderer, cam, seed=2)
    calls = []

    def counted(x):
        calls.append(len(x))
        return f(x)

    loss(evaluate_isosurface(samples, counted, cam, "gradient", dtype=torch.float64)).backward()
    # f is evaluated at the sampled edges' lattice points (and at the samples for ∇f), never on the lattice.
    assert calls[0] < 0.2 * np.prod(lattice.shape)
    for param in f.parameters():
        flat = param.data.reshape(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
            keep = float(flat[i])
            with torch.no_grad():
                flat[i] = keep + 1e-6
                up = loss(evaluate_isosurface(samples, f, cam, "gradient", dtype=torch.float64))
                flat[i] = keep - 1e-6
                down = loss(evaluate_isosurface(samples, f, cam, "gradient", dtype=torch.float64))
                flat[i] = keep
            fd = (up - down) / 2e-6
            analytic = param.grad.reshape(-1)[i]
            assert torch.isclose(analytic, fd, rtol=1e-4, atol=1e-6), (float(analytic), float(fd))


def _torus_sdf(points: torch.Tensor, ring: torch.Tensor | float, tube: torch.Tensor | float) -> torch.Tensor:
    """Swept sphere (RtS Fig. 9, top): a sphere of radius `tube` swept along a circle of radius `ring`
    in the z = 0 plane; a sphere when ring = 0, a torus with a hole when ring > tube."""
    rho = torch.sqrt(points[:, 0] ** 2 + points[:, 1] ** 2 + 1e-12)
    return torch.sqrt((rho - ring) ** 2 + points[:, 2] ** 2 + 1e-12) - tube


def _views(size: int) -> list[Camera]:
    """A top view, and two views at 34° elevation (they see through the hole once it is open)."""
    up = np.array([0.0, 1.0, 0.0])
    views = [Camera.look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), up, 40.0, size, size)]
    for azimuth in (0.3, 2.4):
        eye = 3.0 * np.array([np.cos(azimuth) * np.cos(0.6), np.sin(azimuth) * np.cos(0.6), np.sin(0.6)])
        views.append(Camera.look_at(eye, np.zeros(3), np.array([0.0, 0.0, 1.0]), 40.0, size, size))
    return views


def test_a_sphere_is_optimised_into_a_torus_through_its_silhouettes(renderer, one_thread) -> None:
    """RtS Fig. 9 (top): the swept sphere starts as a sphere (ring radius 0) and must open a hole."""
    lattice = Lattice.cube(24, 1.1)
    views = _views(32)
    torus = lattice.sample(lambda x: _torus_sdf(x, 0.6, 0.25))
    with torch.no_grad():
        targets = [renderer.render_isosurface(torus, extract_isosurface(torus, lattice), cam).alpha for cam in views]
    params = torch.tensor([0.0, 0.6], requires_grad=True)  # ring, tube: a sphere of radius 0.6
    optimiser = torch.optim.Adam([params], lr=0.05)
    for _ in range(80):
        optimiser.zero_grad()
        f = lambda x: _torus_sdf(x, params[0], params[1])  # noqa: E731
        surface = extract_isosurface(lattice.sample(f), lattice)  # once per step, for every view
        loss = sum(
            (renderer.render_isosurface(f, surface, cam).alpha - t).abs().mean()
            for cam, t in zip(views, targets)
        )
        loss.backward()
        optimiser.step()
    ring, tube = params.detach().tolist()
    values = lattice.sample(lambda x: _torus_sdf(x, ring, tube))
    surface = extract_isosurface(values, lattice, min_gap=0)
    mesh = trimesh.Trimesh(surface.vertices, surface.faces)
    assert mesh.is_watertight and mesh.euler_number == 0, (ring, tube, mesh.euler_number)  # genus 1
    top = renderer.render_isosurface(values, surface, views[0]).alpha
    assert top[16, 16] < 0.05 and top[16, 16 + 8] > 0.95  # the hole, and the ring around it
    assert abs(ring - 0.6) < 0.05 and abs(tube - 0.25) < 0.05, (ring, tube)


def test_an_empty_level_set_renders_nothing_and_still_differentiates(renderer) -> None:
    lattice = Lattice.cube(8)
    grid = torch.ones(lattice.shape, requires_grad=True)  # all outside: no surface
    surface = extract_isosurface(grid, lattice)
    assert len(surface.faces) == 0
    out = renderer.render_isosurface(grid, surface, _camera(24, 20), shade=lambda p, n, d: n)
    assert out.alpha.abs().max() == 0 and out.image.shape == (20, 24, 3)
    (out.image.sum() + out.alpha.sum()).backward()
    assert grid.grad is not None and grid.grad.abs().max() == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_cuda_evaluation_matches_the_cpu(renderer) -> None:
    """The same GL samples evaluated on the GPU give the CPU's image and gradients; the CUDA
    renderer's own backend (nvdiffrast when it works) gives the same silhouette."""
    lattice = Lattice.cube(16)
    grid = _sphere_sdf(lattice.points(dtype=torch.float64)).float()
    surface = extract_isosurface(grid, lattice)
    cam = _camera(48, 40)
    results = []
    for device in ("cpu", "cuda"):
        values = grid.to(device).requires_grad_(True)
        shade = lambda p, n, d: 0.5 + 0.5 * n  # noqa: E731
        out = Renderer(renderer.rasterizer, device).render_isosurface(values, surface, cam, shade)
        (out.image.sum() + out.alpha.sum()).backward()
        results.append((out.image.detach().cpu(), out.alpha.detach().cpu(), values.grad.cpu()))
    (image, alpha, grad), (image_cuda, alpha_cuda, grad_cuda) = results
    assert (alpha - alpha_cuda).abs().max() < 1e-4 and (image - image_cuda).abs().max() < 1e-4
    assert torch.allclose(grad, grad_cuda, rtol=1e-3, atol=1e-5)
    own = Renderer("auto", "cuda").render_isosurface(grid.cuda(), surface, cam).alpha.cpu() > 0.5
    ref = alpha > 0.5
    assert (own & ref).sum() / (own | ref).sum() > 0.98
