"""Synthetic views from known cameras: a sphere seen from a ring, rendered analytically."""

from __future__ import annotations

import numpy as np
import pytest

from recon.data.scene import View
from render.camera import Camera

SPHERE_CENTER = np.array([0.1, -0.2, 0.3])
SPHERE_RADIUS = 0.5


def sphere_views(n: int = 6, width: int = 64, height: int = 48) -> list[View]:
    """`n` cameras on a tilted ring looking at a sphere; image = shaded sphere, mask = its disk.

    Intrinsics differ per view (fx ≠ fy, off-centre principal point) so that conversions which
    swap or drop terms are caught.
    """
    views = []
    for i in range(n):
        angle = 2 * np.pi * i / n
        eye = SPHERE_CENTER + 3.0 * np.array([np.cos(angle), 0.4 + 0.1 * i / n, np.sin(angle)])
        cam = Camera.look_at(eye, SPHERE_CENTER, np.array([0.0, 1.0, 0.0]), 40.0 + i, width, height)
        K = cam.K.copy()
        K[1, 1] *= 1.05
        K[0, 2] += 1.5
        K[1, 2] -= 0.75
        cam = Camera(K, cam.R, cam.t, width, height)
        views.append(View(f"view_{i:03d}", *_render_sphere(cam), cam))
    return views


def _render_sphere(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
    dirs = pix @ np.linalg.inv(cam.K).T @ cam.R  # camera rays, in world axes
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    oc = cam.center - SPHERE_CENTER
    b = dirs @ oc
    disc = b**2 - (oc @ oc - SPHERE_RADIUS**2)
    hit = disc > 0
    depth = -b - np.sqrt(np.where(hit, disc, 0))
    normal = (cam.center + depth[:, None] * dirs - SPHERE_CENTER) / SPHERE_RADIUS
    shade = np.clip(normal @ np.array([0.3, 0.8, 0.5]), 0.05, 1) * hit
    image = np.stack([shade, 0.5 * shade, 0.25 + 0.5 * shade * hit], axis=-1)
    image = image.reshape(cam.height, cam.width, 3).astype(np.float32)
    return image, hit.reshape(cam.height, cam.width).astype(np.float32)


@pytest.fixture
def known_views() -> list[View]:
    return sphere_views()


@pytest.fixture
def known_sphere() -> tuple[np.ndarray, float]:
    """(centre, radius) of the sphere `known_views` shows (test modules cannot import conftest)."""
    return SPHERE_CENTER.copy(), SPHERE_RADIUS


# Helpers the loader tests share; fixtures because test modules cannot import each other.
PROBE_POINTS = np.array([[0.25, -0.1, 0.4], [0.3, -0.1, 0.45], [0.0, -0.3, 0.2]])  # near the sphere, seen by every view


def _quantised(x: np.ndarray) -> np.ndarray:
    """What an 8-bit PNG gives back for float data `x` in [0, 1]."""
    return np.round(np.clip(x, 0, 1) * 255).astype(np.float32) / np.float32(255)


def _assert_same_cameras(
    got: list[View], want: list[View], atol: float = 1e-6, atol_k: float | None = None, names: bool = False
) -> None:
    """Same K, R, t and size, proper rotations, the same pixels for points in front (and names)."""
    assert len(got) == len(want)
    if names:
        assert [v.name for v in got] == [v.name for v in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.camera.K, w.camera.K, atol=atol if atol_k is None else atol_k)
        np.testing.assert_allclose(g.camera.R, w.camera.R, atol=atol)
        np.testing.assert_allclose(g.camera.t, w.camera.t, atol=atol)
        assert (g.camera.width, g.camera.height) == (w.camera.width, w.camera.height)
        assert np.linalg.det(g.camera.R) > 0
        uv_g, z_g = g.camera.project(PROBE_POINTS)
        uv_w, z_w = w.camera.project(PROBE_POINTS)
        np.testing.assert_allclose(uv_g, uv_w, atol=1e-6)
        assert (z_g > 0).all()
        np.testing.assert_allclose(z_g, z_w, rtol=1e-6)


@pytest.fixture
def quantised():
    """quantised(x): float data after a round trip through an 8-bit PNG."""
    return _quantised


@pytest.fixture
def assert_same_cameras():
    """assert_same_cameras(got, want, atol=1e-6, atol_k=None, names=False): the same cameras."""
    return _assert_same_cameras
