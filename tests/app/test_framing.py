"""Framing in a real window: an opened dataset shows its visual hull before Start, in the middle of
the view, even when the object is far from the world's origin, off-centre in its given bounding box
and seen by cameras that do not look at its centre; R frames it again after the view was moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from recon.data.formats import nds
from recon.data.scene import View
from render.camera import Camera
from render.viewer.pipeline import BACKGROUND
from tests.app.frames import grab_viewport

CENTRE = np.array([5.0, -3.0, 8.0])  # the object: a ball far from the origin
RADIUS = 0.4


def _ball_views() -> list[View]:
    """Six photos of the ball from one side of it, each aimed a little beside it; masks exact."""
    views = []
    rng = np.random.default_rng(3)
    for i in range(6):
        azimuth, elevation = np.radians(25 * i), np.radians(15 + 20 * (i % 2))
        direction = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(elevation), np.sin(azimuth) * np.cos(elevation)])
        eye = CENTRE + (2.5 + 0.3 * i) * direction
        aim = CENTRE + rng.uniform(-0.15, 0.15, 3)
        camera = Camera.look_at(eye, aim, np.array([0.0, 1.0, 0.0]), 40.0, 64, 48)
        v, u = np.mgrid[0:48, 0:64] + 0.5
        rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(camera.K).T @ camera.R
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        offset = eye - CENTRE
        b = rays @ offset
        mask = (b * b - (offset @ offset - RADIUS**2) > 0).reshape(48, 64).astype(np.float32)
        image = np.stack([0.8 * mask, 0.5 * mask, 0.3 * mask], axis=-1).astype(np.float32)
        views.append(View(f"v{i}", image, mask, camera))
    return views


def _assert_centred(viewport) -> None:
    rgb = grab_viewport(viewport)
    covered = np.abs(rgb.astype(np.float64) - np.round(np.asarray(BACKGROUND) * 255)).max(axis=-1) > 3
    h, w = covered.shape
    assert covered.sum() > 0.02 * covered.size, "the object is not in view"
    rows, cols = np.nonzero(covered)
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < h - 1 and cols.max() < w - 1  # whole
    centroid = np.array([cols.mean(), rows.mean()]) + 0.5
    assert np.abs(centroid - [w / 2, h / 2]).max() < 0.05 * min(w, h), (centroid, (w, h))


def test_the_opening_view_and_reset_frame_the_object(make_main_window, tmp_path: Path, qtbot) -> None:
    loose = np.stack([CENTRE - 0.6, CENTRE + 2.4])  # the object sits in one corner of its given box
    dataset = nds.write(_ball_views(), loose, tmp_path / "ball")
    window = make_main_window()
    window.frusta_box.setChecked(False)
    viewport = window.viewport
    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        window.open_dataset(dataset)
    assert window.scene.bbox_source == "given"
    qtbot.waitUntil(lambda: viewport.preview is not None and viewport.settled, timeout=60_000)
    assert window.snapshot is None  # a preview before Start, not a reconstruction
    _assert_centred(viewport)

    viewport.setFocus()
    for key in (Qt.Key.Key_Left, Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_Minus):
        qtbot.keyClick(viewport, key)
    viewport.orbit.pan(80.0, -40.0, viewport.height())
    qtbot.keyClick(viewport, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: viewport.settled, timeout=60_000)
    _assert_centred(viewport)
