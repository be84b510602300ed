"""The Renderer facade: backend choice, silhouettes against analytic ones, shading, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from render.camera import Camera
from render.renderer import Renderer
from render.splat import unpremultiply

pytestmark = pytest.mark.gl

CENTRE = np.array([0.05, -0.1, 0.0])
RADIUS = 0.6


@pytest.fixture(scope="module")
def renderer(gl_rasterizer) -> Renderer:
    return Renderer("gl", "cpu", layers=2)


def _sphere() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    v = torch.tensor(mesh.vertices + CENTRE, dtype=torch.float32)
    f = torch.tensor(mesh.faces, dtype=torch.int64)
    n = torch.tensor(mesh.vertex_normals, dtype=torch.float32)
    return v, f, n


def _camera() -> Camera:
    return Camera.look_at(np.array([0.4, 0.6, -2.5]), CENTRE, np.array([0.0, 1.0, 0.0]), 45.0, 96, 80)


def _analytic_disk(cam: Camera) -> np.ndarray:
    v, u = np.mgrid[0 : cam.height, 0 : cam.width] + 0.5
    rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(cam.K).T @ cam.R
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    oc = cam.center - CENTRE
    b = rays @ oc
    return (b**2 - (oc @ oc - RADIUS**2) > 0).reshape(cam.height, cam.width)


def test_auto_backend_is_gl_without_cuda(gl_rasterizer) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: auto chooses nvdiffrast when it imports")
    assert Renderer("auto").backend == "gl"


def test_antialias_edges_need_nvdiffrast(gl_rasterizer) -> None:
    with pytest.raises(ValueError, match="nvdiffrast"):
        Renderer("gl", edges="antialias")


def test_silhouette_matches_the_analytic_disk(renderer) -> None:
    v, f, _ = _sphere()
    cam = _camera()
    out = renderer.render(v, f, cam)
    assert out.image.shape == (80, 96, 0) and out.alpha.shape == (80, 96)
    disk = _analytic_disk(cam)
    pred = out.alpha.numpy() > 0.5
    iou = (pred & disk).sum() / (pred | disk).sum()
    assert iou > 0.97
    interior = disk[1:-1, 1:-1] & disk[:-2, 1:-1] & disk[2:, 1:-1] & disk[1:-1, :-2] & disk[1:-1, 2:]
    assert torch.allclose(out.alpha[1:-1, 1:-1][torch.from_numpy(interior)], torch.tensor(1.0), atol=1e-5)


def test_shading_sees_world_positions_normals_and_view_directions(renderer, tools) -> None:
    v, f, n = _sphere()
    cam = _camera()
    seen = {}

    def shade(position, normal, view_dir):
        seen.update(position=position, normal=normal, view_dir=view_dir)
        return 0.5 + 0.5 * normal

    out = renderer.render(v, f, cam, shade=shade, normals=n)
    # On a sphere the normal is the direction from the centre, and front samples face the camera.
    radial = torch.nn.functional.normalize(seen["position"] - torch.tensor(CENTRE, dtype=torch.float32), dim=-1)
    assert (radial * seen["normal"]).sum(-1).min() > 0.99
    assert (seen["normal"] * seen["view_dir"]).sum(-1).min() > -0.2
    assert ((seen["position"] - torch.tensor(CENTRE, dtype=torch.float32)).norm(dim=-1) - RADIUS).abs().max() < 5e-3
    centre_px = cam.project(CENTRE[None])[0][0].astype(int)
    rgb = out.image[centre_px[1], centre_px[0]]
    towards_camera = cam.center - CENTRE
    expected = 0.5 + 0.5 * towards_camera / np.linalg.norm(towards_camera)
    assert np.allclose(rgb.numpy(), expected, atol=0.03)
    tools.samples_are_the_dense_buffers(out.gbuffer, seen)


def test_shading_without_normals_is_refused(renderer) -> None:
    v, f, _ = _sphere()
    with pytest.raises(ValueError, match="normals"):
        renderer.render(v, f, _camera(), shade=lambda p, n, d: p)


def test_silhouette_loss_moves_the_mesh_towards_the_target(renderer) -> None:
    v, f, _ = _sphere()
    cam = _camera()
    target = torch.from_numpy(_analytic_disk(cam)).float()
    offset = torch.tensor([0.08, 0.0, 0.0], requires_grad=True)
    loss = (renderer.render(v + offset, f, cam).alpha - target).abs().mean()
    loss.backward()
    assert offset.grad is not None and offset.grad.abs().max() > 0
    # Moving along minus the gradient lowers the loss.
    with torch.no_grad():
        step = offset - 0.02 * offset.grad / offset.grad.norm()
        assert (renderer.render(v + step, f, cam).alpha - target).abs().mean() < loss


def test_gradients_stay_finite_when_the_camera_sits_at_the_world_origin(renderer) -> None:
    # Empty samples interpolate to position 0; with the camera centre there, their clip w is 0.
    v, f, n = _sphere()
    v = v - torch.tensor(CENTRE, dtype=torch.float32) + torch.tensor([0.0, 0.0, 3.0])
    cam = Camera.look_at(np.zeros(3), np.array([0.0, 0.0, 3.0]), np.array([0.0, 1.0, 0.0]), 40.0, 64, 48)
    v.requires_grad_(True)
    out = renderer.render(v, f, cam, shade=lambda p, nn, d: nn.abs(), normals=n)
    (out.image.sum() + out.alpha.sum()).backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def _textured_plane(height: float, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """An n×n-quad plane y = height over [-1, 1]², faces wound to face up (+y)."""
    xs = torch.linspace(-1, 1, n + 1, dtype=torch.float64)
    gx, gz = torch.meshgrid(xs, xs, indexing="ij")
    vertices = torch.stack([gx, torch.full_like(gx, height), gz], -1).reshape(-1, 3).float()
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    a = (i * (n + 1) + j).reshape(-1)
    b, c, d = a + n + 1, a + 1, a + n + 2
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([c, d, b], 1)])
    return vertices, faces


def _texture(position: torch.Tensor, normal: torch.Tensor, view_dir: torch.Tensor) -> torch.Tensor:
    """Colour of a pattern painted on the plane: a function of x and z only, never of height."""
    value = 0.5 + 0.4 * torch.sin(3 * position[:, :1]) * torch.cos(2 * position[:, 2:])
    return value.expand(-1, 3)


def test_splatted_shading_moves_a_surface_towards_its_true_depth_through_parallax(renderer) -> None:
    """Why NDS splats its shaded samples (NDSConfig.splat_shading).

    A pattern that does not depend on height gives a wrong-height surface no gradient through the
    shader's inputs. Splatted, each colour sits where its surface point projects, so two views that
    disagree about where the pattern is pull the surface towards the height that reconciles them.
    """
    up = np.array([0.0, 0.0, -1.0])
    cameras = [Camera.look_at(np.array(eye), np.zeros(3), up, 50.0, 64, 64) for eye in ([1.2, 2.6, 0.3], [-1.0, 2.7, -0.4])]
    true_vertices, faces = _textured_plane(0.0)
    normals = torch.tensor([[0.0, 1.0, 0.0]]).expand(len(true_vertices), 3)
    targets = [renderer.render(true_vertices, faces, cam, _texture, normals).image.detach() for cam in cameras]

    for height in (0.08, -0.08):
        start, _ = _textured_plane(height)
        splatted = start.clone().requires_grad_(True)
        shader_only = start.clone().requires_grad_(True)
        for cam, target in zip(cameras, targets):
            result = renderer.render(splatted, faces, cam, _texture, normals)
            inside = result.alpha > 0.99
            (result.image - target).abs()[inside].mean().backward()
            gbuffer = renderer.gbuffer(shader_only, faces, cam, normals)
            covered = gbuffer.covered[0]
            colour = _texture(gbuffer.position[0][covered], gbuffer.normal[0][covered], gbuffer.view_dir[0][covered])
            (colour - target[covered]).abs().mean().backward()
        assert float(shader_only.grad[:, 1].abs().max()) == 0.0
        descent = -float(splatted.grad[:, 1].sum())
        assert descent * np.sign(-height) > 0, (height, descent)  # downhill is towards y = 0


def test_shading_a_region_shades_only_its_samples_and_splats_their_exact_colours(renderer) -> None:
    """`shade_samples(where=)`: colours of pixels one pixel inside the region as with every sample shaded."""
    v, f, n = _sphere()
    cam = _camera()
    gbuffer = renderer.gbuffer(v, f, cam, n)
    region = torch.zeros(cam.height, cam.width, dtype=torch.bool)
    region[20:50, 30:61] = True
    counts = []

    def shade(position, normal, view_dir):
        counts.append(len(position))
        return 0.5 + 0.5 * normal * view_dir.sum(-1, keepdim=True)

    full = renderer.splat(gbuffer, renderer.shade_samples(gbuffer, shade))
    part = renderer.splat(gbuffer, renderer.shade_samples(gbuffer, shade, where=region))
    assert counts[1] == int((gbuffer.covered & region).sum()) < counts[0]
    assert torch.equal(full[..., 3], part[..., 3])  # coverage: every sample's, always
    interior = torch.zeros_like(region)
    interior[21:49, 31:60] = True
    assert torch.allclose(full[interior], part[interior], atol=1e-6)
    assert not torch.allclose(full[~region], part[~region], atol=1e-3)  # outside: not shaded


def test_a_silhouette_pixel_holds_premultiplied_colour_and_unpremultiply_gives_the_surfaces(renderer) -> None:
    """A one-colour sphere: the splatted image is darker where the sphere covers a pixel partly; its
    straight colour is the sphere's everywhere it covers anything, as a masked image holds it."""
    v, f, n = _sphere()
    colour = torch.tensor([0.8, 0.5, 0.2])
    out = renderer.render(v, f, _camera(), shade=lambda x, normal, w: colour.expand(len(x), 3), normals=n)
    rgba = torch.cat([out.image, out.alpha[..., None]], dim=-1)
    partly = (out.alpha > 0.05) & (out.alpha < 0.95)
    assert int(partly.sum()) > 50
    assert torch.allclose(out.image[partly], out.alpha[partly, None] * colour, atol=1e-5)  # premultiplied
    straight = unpremultiply(rgba)
    assert torch.allclose(straight[out.alpha > 0.01], colour.expand(int((out.alpha > 0.01).sum()), 3), atol=1e-4)
    assert torch.isfinite(unpremultiply(torch.zeros(4, 4))).all()
