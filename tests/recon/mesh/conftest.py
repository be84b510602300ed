"""Tiny hand-built meshes and analytic sphere silhouettes seen from rings of cameras."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from recon.data.scene import View
from recon.mesh import Mesh
from render.camera import Camera

SPHERE_CENTER = np.array([0.2, -0.1, 0.3])
SPHERE_RADIUS = 0.5


def tetrahedron() -> Mesh:
    """Regular tetrahedron centred at the origin, |v|² = 3, CCW outward.

          3
         /|\\        faces (0,1,2) (0,3,1) (0,2,3) (1,3,2)
        0-+-2
         \\|/
          1
    """
    v = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    f = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    return Mesh(v, f)


def two_triangles() -> Mesh:
    """Two triangles sharing edge 1–2, flat in z = 0, both facing +z.

        2---3
        |\\  |
        | \\ |
        |  \\|
        0---1
    """
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    return Mesh(v, f)


def flat_grid(n: int = 5) -> Mesh:
    """n×n vertices on the unit square in z = 0, each cell split along the same diagonal."""
    x, y = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32), indexing="xy")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(n * n, np.float32)], axis=1) / (n - 1)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="xy")
    a = (j * n + i).ravel()  # lower-left corner of each cell
    f = np.concatenate([np.stack([a, a + 1, a + n + 1], 1), np.stack([a, a + n + 1, a + n], 1)])
    return Mesh.from_numpy(v, f)


def cube() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.box(extents=(2.0, 2.0, 2.0)))


def icosphere(subdivisions: int = 2, radius: float = 1.0) -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius))


def disk_mask(cam: Camera, center: np.ndarray, radius: float) -> np.ndarray:
    """Exact silhouette (H, W) float32 of a sphere: pixels whose centre ray hits it."""
    v, u = np.mgrid[0 : cam.height, 0 : cam.width] + 0.5
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
    dirs = pix @ np.linalg.inv(cam.K).T @ cam.R  # world-space ray directions
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    oc = cam.center - center
    b = dirs @ oc
    hit = (b**2 - (oc @ oc - radius**2) > 0) & (b < 0)
    return hit.reshape(cam.height, cam.width).astype(np.float32)


def ring_views(size: int = 64, center: np.ndarray = SPHERE_CENTER, radius: float = SPHERE_RADIUS) -> list[View]:
    """26 views of a sphere: rings of 8 at elevations −45°, 0°, 45° plus straight above and below."""
    eyes = []
    for elevation in (-45.0, 0.0, 45.0):
        for k in range(8):
            az, el = np.radians(45.0 * k + 22.5 * (elevation == 0)), np.radians(elevation)
            eyes.append([np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az)])
    eyes += [[0.0, 1.0, 1e-3], [0.0, -1.0, 1e-3]]
    views = []
    for i, eye in enumerate(np.asarray(eyes) * 3.0 + center):
        cam = Camera.look_at(eye, center, np.array([0.0, 1.0, 0.0]), 30.0, size, size)
        mask = disk_mask(cam, center, radius)
        views.append(View(f"v{i:02d}", np.repeat(mask[..., None], 3, axis=2), mask, cam))
    return views


@pytest.fixture(scope="module")
def sphere_ring() -> list[View]:
    return ring_views()


@pytest.fixture(scope="session")
def meshes() -> SimpleNamespace:
    """The builders above (test modules cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(
        tetrahedron=tetrahedron,
        two_triangles=two_triangles,
        flat_grid=flat_grid,
        cube=cube,
        icosphere=icosphere,
        ring_views=ring_views,
        sphere_center=SPHERE_CENTER,
        sphere_radius=SPHERE_RADIUS,
    )
