"""ViewerPipeline on a standalone EGL context: orientation, raster modes, picking, scale, overlays, CPU split."""

from __future__ import annotations

import numpy as np
import pytest

from render.camera import Camera
from render.viewer import MLPWeights, ViewerPipeline, shade_cpu
from render.viewer.pipeline import BACKGROUND, FRUSTUM_HIGHLIGHT_COLOR

pytestmark = pytest.mark.gl

BACKGROUND_U8 = np.round(np.array(BACKGROUND) * 255).astype(np.uint8)


def _pipeline(scene, **kwargs) -> ViewerPipeline:
    pipe = ViewerPipeline(scene.ctx, **kwargs)
    pipe.set_mesh(scene.vertices, scene.faces)
    return pipe


def _ray_hits(scene) -> tuple[np.ndarray, np.ndarray]:
    """Analytic sphere hits of every pixel-centre ray: (H, W) mask and (H, W, 3) points."""
    cam = scene.camera
    w, h = scene.size
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.linalg.solve(cam.K, np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3).T).T @ cam.R  # world dirs
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    oc = cam.center - scene.centre
    b = rays @ oc
    disc = b * b - (oc @ oc - scene.radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    points = cam.center + t[:, None] * rays
    return (disc > 0).reshape(h, w), points.reshape(h, w, 3)


def _covered(image: np.ndarray) -> np.ndarray:
    return np.any(image != BACKGROUND_U8, axis=-1)


def test_image_is_upright_and_matches_camera_projection(scene) -> None:
    pipe = _pipeline(scene)
    try:
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        image = scene.image()
        expected, _ = _ray_hits(scene)
        covered = _covered(image)
        assert expected.sum() > 100
        agreement = (covered == expected).mean()
        assert agreement > 0.97, agreement
        assert (np.flipud(covered) == expected).mean() < agreement - 0.1  # a flipped image would not pass
        # The front of the sphere projects where Camera.project says.
        front = scene.centre + scene.radius * (scene.camera.center - scene.centre) / np.linalg.norm(scene.camera.center - scene.centre)
        uv, _ = scene.camera.project(front[None])
        u, v = uv[0]
        assert covered[int(v), int(u)]
        assert (image[0, 0] == BACKGROUND_U8).all()
    finally:
        pipe.release()


def test_picking_returns_the_surface_point_under_a_pixel(scene) -> None:
    pipe = _pipeline(scene)
    try:
        pipe.render(scene.camera, scene.size, scene.target, mode="normals")
        hits, points = _ray_hits(scene)
        rows, cols = np.nonzero(hits)
        for i in np.linspace(0, len(rows) - 1, 7).astype(int)[1:-1]:
            picked = pipe.read_gbuffer_at(cols[i] + 0.5, rows[i] + 0.5)
            assert picked is not None
            assert np.linalg.norm(picked - points[rows[i], cols[i]]) < 0.02
        assert pipe.read_gbuffer_at(0.5, 0.5) is None  # background
        assert pipe.read_gbuffer_at(-3, 5) is None  # outside the view
    finally:
        pipe.release()


def test_picking_reads_the_displayed_frame_at_any_scale(scene) -> None:
    """Window pixels map onto a reduced G-buffer, and a capture that is not displayed changes nothing."""
    weights = MLPWeights.random(pe_octaves=2, hidden_h=16, layers_h=1, features=8, hidden_c=16, layers_c=1)
    pipe = _pipeline(scene)
    try:
        pipe.set_shader(weights)
        pipe.set_path("cpu")
        hits, points = _ray_hits(scene)
        rows, cols = np.nonzero(hits)
        i = len(rows) // 2
        pipe.render(scene.camera, scene.size, scene.target, mode="neural", scale=0.5)
        picked = pipe.read_gbuffer_at(cols[i] + 0.5, rows[i] + 0.5)
        assert picked is not None and np.linalg.norm(picked - points[rows[i], cols[i]]) < 0.1  # a texel is 2 px
        full = pipe.capture_gbuffer(scene.camera, scene.size)  # at full size, not shown yet
        picked = pipe.read_gbuffer_at(cols[i] + 0.5, rows[i] + 0.5)
        assert picked is not None and np.linalg.norm(picked - points[rows[i], cols[i]]) < 0.1
        pipe.present(full, shade_cpu(weights, full), scene.target)
        picked = pipe.read_gbuffer_at(cols[i] + 0.5, rows[i] + 0.5)
        assert picked is not None and np.linalg.norm(picked - points[rows[i], cols[i]]) < 0.02
    finally:
        pipe.release()


def test_normals_smooth_and_flat_modes(scene) -> None:
    pipe = _pipeline(scene)
    try:
        hits, points = _ray_hits(scene)
        pipe.render(scene.camera, scene.size, scene.target, mode="normals")
        position, normal = pipe.read_gbuffer()
        covered = position[..., 3] > 0
        analytic = (position[..., :3] - scene.centre) / scene.radius
        assert (normal[covered, :3] * analytic[covered]).sum(-1).min() > 0.98  # smooth vertex normals
        image = scene.image()
        rows, cols = np.nonzero(covered & hits)
        expected = (normal[rows, cols, :3] * 0.5 + 0.5) * 255
        assert np.abs(image[rows, cols].astype(float) - expected).max() <= 1.01

        pipe.render(scene.camera, scene.size, scene.target, mode="flat")
        _, flat = pipe.read_gbuffer()
        v, f = scene.vertices.astype(np.float64), scene.faces
        face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        face_n /= np.linalg.norm(face_n, axis=1, keepdims=True)
        best = (flat[covered, :3] @ face_n.T).max(axis=1)
        assert np.quantile(best, 0.95) > 0.9999  # flat normals are face normals (edge pixels may mix)
        flat_image = scene.image()

        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        smooth_image = scene.image()
        grey = smooth_image[covered]
        assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
        assert len(np.unique(flat_image[covered][:, 0])) < len(np.unique(grey[:, 0]))
    finally:
        pipe.release()


def test_wireframe_draws_edges_on_the_surface_only(scene) -> None:
    pipe = _pipeline(scene)
    try:
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        plain = scene.image()
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth", wireframe=True)
        wired = scene.image()
        changed = np.any(plain != wired, axis=-1)
        covered = _covered(plain)
        assert changed.sum() > 0.2 * covered.sum()
        near = covered.copy()  # silhouette edges may rasterize one pixel outside the faces
        for axis in (0, 1):
            for shift in (-1, 1):
                near |= np.roll(covered, shift, axis=axis)
        assert not (changed & ~near).any()
    finally:
        pipe.release()


def test_reduced_scale_and_resizing(scene, make_scene) -> None:
    pipe = _pipeline(scene)
    try:
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        full = _covered(scene.image())
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth", scale=0.5)
        assert pipe.read_color().shape == (20, 24, 4)
        half = pipe.read_color()[..., 3] > 0
        upsampled = half.repeat(2, axis=0).repeat(2, axis=1)
        assert (full & upsampled).sum() / (full | upsampled).sum() > 0.8
        # The upscaled display lands where the full-size one does (blurred edges, same centre).
        rows, cols = np.mgrid[:40, :48]
        contrast = np.abs(scene.image().astype(float) - BACKGROUND_U8).max(axis=-1)
        centre = np.array([(rows * contrast).sum(), (cols * contrast).sum()]) / contrast.sum()
        assert np.abs(centre - [rows[full].mean(), cols[full].mean()]).max() < 0.5
        other = make_scene(32, 24)
        try:
            camera = Camera(other.camera.K, scene.camera.R, scene.camera.t, 32, 24)
            pipe.render(camera, other.size, other.target, mode="smooth")
            assert pipe.read_color().shape == (24, 32, 4)
        finally:
            other.release()
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        assert pipe.read_color().shape == (40, 48, 4)
        assert (_covered(scene.image()) == full).all()
    finally:
        pipe.release()


def test_neural_mode_without_a_shader_falls_back_to_smooth(scene) -> None:
    pipe = _pipeline(scene)
    try:
        stats = pipe.render(scene.camera, scene.size, scene.target, mode="neural")
        assert stats.path == "raster"
        neural = scene.image()
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        assert (scene.image() == neural).all()
        with pytest.raises(ValueError):
            pipe.render(scene.camera, scene.size, scene.target, mode="shiny")
    finally:
        pipe.release()


def test_cpu_split_equals_render_and_counts_covered_pixels(scene) -> None:
    weights = MLPWeights.random(pe_octaves=2, hidden_h=16, layers_h=1, features=8, hidden_c=16, layers_c=1)
    pipe = _pipeline(scene)
    try:
        pipe.set_shader(weights)
        pipe.set_path("cpu")
        stats = pipe.render(scene.camera, scene.size, scene.target, mode="neural")
        assert stats.path == "cpu"
        rendered = scene.image()
        frame = pipe.capture_gbuffer(scene.camera, scene.size)
        assert stats.covered_pixels == frame.covered_pixels == int((pipe.read_gbuffer()[0][..., 3] > 0).sum())
        colors = shade_cpu(weights, frame)
        pipe.render(scene.camera, scene.size, scene.target, mode="normals")  # something else in between
        pipe.present(frame, colors, scene.target)
        assert (scene.image() == rendered).all()
        with pytest.raises(ValueError):
            pipe.present(frame, colors[:-1], scene.target)
    finally:
        pipe.release()


def test_overlay_and_frusta(scene) -> None:
    pipe = _pipeline(scene)
    try:
        red = np.zeros((10, 12, 3), np.float32)
        red[..., 0] = 1.0
        pipe.set_overlay(red, opacity=1.0)
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        assert (scene.image() == [255, 0, 0]).all()
        pipe.set_overlay(None, 0.0)

        viewer = Camera.look_at(np.array([0.0, -0.3, -1.2]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 40.0, 40, 30)
        pipe.set_frusta([scene.camera, viewer], highlight=1)
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        highlight = np.round(np.array(FRUSTUM_HIGHLIGHT_COLOR[:3]) * 255)
        assert (np.abs(scene.image().astype(float) - highlight).max(axis=-1) <= 1).sum() > 10
        pipe.set_frusta(None)
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        assert (np.abs(scene.image().astype(float) - highlight).max(axis=-1) <= 1).sum() == 0
    finally:
        pipe.release()


def test_set_mesh_updates_live_and_rejects_bad_input(scene) -> None:
    pipe = _pipeline(scene)
    try:
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        before = _covered(scene.image()).sum()
        pipe.set_mesh(scene.vertices * 0.5 + scene.centre.astype(np.float32) * 0.5, scene.faces)  # shrink in place
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")
        assert 0 < _covered(scene.image()).sum() < 0.5 * before
        pipe.set_mesh(scene.vertices, scene.faces[:10])
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth", wireframe=True)
        with pytest.raises(ValueError):
            pipe.set_mesh(scene.vertices, scene.faces + len(scene.vertices))
        with pytest.raises(ValueError):
            pipe.set_mesh(scene.vertices[:, :2], scene.faces)
    finally:
        pipe.release()
    with pytest.raises(RuntimeError):
        pipe.render(scene.camera, scene.size, scene.target, mode="smooth")


def test_paths_are_listed_fastest_first_with_reasons(scene) -> None:
    pipe = ViewerPipeline(scene.ctx)
    try:
        paths = pipe.available_paths()
        assert "cpu" in paths and "glsl" in paths  # GL 4.3 here
        assert pipe.path == paths[0]
        if "interop" not in paths:
            assert pipe.unavailable_reasons()["interop"]
        with pytest.raises(ValueError, match="not available"):
            pipe.set_path("interop" if "interop" not in paths else "warp")
        if "llvmpipe" not in scene.ctx.info["GL_RENDERER"]:
            pytest.skip("the ordering check below is for software GL")
        assert paths.index("cpu") < paths.index("glsl")  # llvmpipe: torch beats per-pixel loops
    finally:
        pipe.release()
