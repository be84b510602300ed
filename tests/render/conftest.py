"""Fixtures for render tests: a GL rasterizer (skipped, with the reason, where EGL can't make one)
and small helpers to build scenes from known cameras."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from render.backends.gl import GLRasterizer
from render.camera import Camera, to_clip


class SceneTools:
    """Helpers shared by the rasterizer tests (a fixture, since test modules can't import each other)."""

    @staticmethod
    def camera(width: int = 160, height: int = 120) -> Camera:
        """A rotated camera with fx != fy and an off-centre principal point (catches swapped terms)."""
        cam = Camera.look_at(
            np.array([0.3, -0.2, -2.0]), np.array([0.1, 0.05, 0.4]), np.array([0.0, -1.0, 0.0]), 50.0, width, height
        )
        K = cam.K.copy()
        K[1, 1] *= 1.07
        K[0, 2] += 3.25
        K[1, 2] -= 1.5
        return Camera(K, cam.R, cam.t, width, height)

    @staticmethod
    def samples_are_the_dense_buffers(gbuffer, seen: dict) -> None:
        """The shader got (`seen`) the covered rows of the dense G-buffer, in order; empty samples
        are 0 and splat from their pixel centres."""
        covered = gbuffer.covered
        assert torch.equal(gbuffer.samples.index, covered.reshape(-1).nonzero().squeeze(1))
        for name in ("position", "normal", "view_dir"):
            assert torch.equal(seen[name], getattr(gbuffer, name)[covered]), name
            assert (getattr(gbuffer, name)[~covered] == 0).all(), name
        k, h, w = covered.shape
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        assert torch.equal(gbuffer.pixel_xy[~covered], torch.stack([xs, ys], -1).expand(k, h, w, 2)[~covered])
        assert torch.equal(gbuffer.pixel_xy[covered], gbuffer.samples.pixel_xy)

    @staticmethod
    def unproject(cam: Camera, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """World points (N, 3) that project to pixels `uv` (N, 2) at camera depths `z` (N,)."""
        rays = np.linalg.solve(cam.K, np.c_[uv, np.ones(len(uv))].T).T
        return (rays * z[:, None] - cam.t) @ cam.R

    @staticmethod
    def clip(cam: Camera, points: np.ndarray, near_far: tuple[float, float] | None = None) -> torch.Tensor:
        """(V, 4) float32 clip positions of world points, computed in float64 and rounded once."""
        near, far = cam.near_far(points) if near_far is None else near_far
        matrix = torch.tensor(cam.clip_matrix(near, far))
        return to_clip(torch.tensor(points, dtype=torch.float64), matrix).float()


@pytest.fixture(scope="session")
def tools() -> type[SceneTools]:
    return SceneTools


@pytest.fixture(scope="session")
def gl_rasterizer() -> Iterator[GLRasterizer]:
    """One GLRasterizer for the session (main thread); skips when no OpenGL 4.3 EGL context exists."""
    rasterizer = GLRasterizer()
    try:
        renderer = rasterizer.renderer
    except RuntimeError as exc:
        pytest.skip(f"no OpenGL 4.3+ context through EGL on this machine: {exc}")
    assert renderer
    yield rasterizer
    rasterizer.release()
