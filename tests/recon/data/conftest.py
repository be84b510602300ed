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
