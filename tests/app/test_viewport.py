"""The viewport in a real window with Mesa's GL: live updates, snapping to a view, modes, screenshots.

Framebuffers are grabbed from the QOpenGLWidget (what the user sees) and compared as arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from render.viewer.pipeline import BACKGROUND
from tests.app.frames import grab_viewport

ROOT = Path(__file__).resolve().parents[2]
README_SCREENSHOT = ROOT / "docs" / "images" / "gui.png"


def _covered(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not the viewer's background (the mesh, or lines over it)."""
    background = np.round(np.asarray(BACKGROUND) * 255)
    return np.abs(rgb.astype(np.float64) - background).max(axis=-1) > 3


def _drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def _settle(qtbot, viewport) -> None:
    qtbot.waitUntil(lambda: viewport.settled and viewport.frames > 0, timeout=60_000)


def test_a_short_run_changes_the_viewport_and_modes_draw(make_main_window, small_dataset, qtbot, run_to_end) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(small_dataset)
    viewport = window.viewport
    assert viewport.pipe is not None, viewport.error
    window.frusta_box.setChecked(False)
    qtbot.waitUntil(lambda: viewport.preview is not None, timeout=60_000)
    _settle(qtbot, viewport)
    assert window.snapshot is None and _covered(grab_viewport(viewport)).sum() > 200  # before Start: the visual hull

    window.run_panel.iterations.setValue(6)
    window.start_run()
    window.pause_run()  # takes effect after the first step: a frame of an early state to compare with
    qtbot.waitUntil(lambda: window.run_panel.state == "paused", timeout=60_000)
    assert window.snapshot.iteration == 1
    _settle(qtbot, viewport)
    first = grab_viewport(viewport)
    assert _covered(first).sum() > 200  # the mesh shows up live
    window.resume_run()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    _settle(qtbot, viewport)
    last = grab_viewport(viewport)
    assert window.snapshot.iteration == 6
    assert (np.abs(last.astype(int) - first.astype(int)).max(axis=-1) > 0).sum() > 20  # mesh and shader moved on

    images = {}
    for mode in ("normals", "smooth", "flat"):
        window.mode_box.setCurrentIndex(window.mode_box.findData(mode))
        _settle(qtbot, viewport)
        images[mode] = grab_viewport(viewport)
        differ = _covered(images[mode]) ^ _covered(images["normals"])  # same silhouette (dark rims aside)
        assert differ.sum() < 0.01 * _covered(images["normals"]).sum()
    assert not np.array_equal(images["normals"], images["smooth"])
    window.wire_box.setChecked(True)
    _settle(qtbot, viewport)
    assert not np.array_equal(grab_viewport(viewport), images["flat"])  # edges drawn over the faces
    assert " ms " in viewport.fps_label.text() and "0.0 fps" not in viewport.fps_label.text()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_demo_drop_snap_to_a_view_and_readme_screenshot(make_main_window, small_demo, qtbot, run_to_end) -> None:
    """Dropping the demo lists its views; snapping renders from that camera (silhouette ≈ its mask)."""
    window = make_main_window()
    window.resize(1200, 780)
    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        _drop(window, small_demo)
    assert window.views_panel.count() == 12
    run_to_end(window, 30)  # enough for the shader to pick up the pot's colours in the screenshot
    viewport = window.viewport
    window.opacity.setValue(0)  # the render alone
    window.frusta_box.setChecked(False)
    window.mode_box.setCurrentIndex(window.mode_box.findData("normals"))

    ious = []
    for index in (2, 7):
        window.views_panel.setCurrentRow(index)  # selecting a thumbnail snaps the viewport
        assert viewport.snapped_view == index
        _settle(qtbot, viewport)
        rendered = _covered(grab_viewport(viewport))
        view = window.scene.views[index]
        camera = viewport.current_camera()  # the view letterboxed into the widget
        s = camera.K[0, 0] / view.camera.K[0, 0]
        ys, xs = np.mgrid[0 : view.camera.height, 0 : view.camera.width] + 0.5
        u = np.clip(np.floor(xs * s + (camera.K[0, 2] - s * view.camera.K[0, 2])).astype(int), 0, rendered.shape[1] - 1)
        v = np.clip(np.floor(ys * s + (camera.K[1, 2] - s * view.camera.K[1, 2])).astype(int), 0, rendered.shape[0] - 1)
        sampled = rendered[v, u]  # the render at the photo's pixel centres
        ious.append([_iou(sampled, w.mask > 0.5) for w in window.scene.views])
    for index, row in zip((2, 7), ious):
        assert row[index] > 0.8, row  # the hull seen from that camera covers that view's mask
        assert row[index] == max(row)  # and matches it better than any other view's mask

    # The photo overlay blends the input over the render when snapped.
    plain = grab_viewport(viewport)
    window.opacity.setValue(60)
    _settle(qtbot, viewport)
    assert not np.array_equal(grab_viewport(viewport), plain)

    # README screenshot: the whole window after a short run, neural shading, cameras shown.
    window.opacity.setValue(0)
    window.frusta_box.setChecked(True)
    window.mode_box.setCurrentIndex(window.mode_box.findData("neural"))
    viewport.reset_camera()
    _settle(qtbot, viewport)
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(README_SCREENSHOT), "PNG")
    shot = tmp = window.save_screenshot(README_SCREENSHOT.with_name(".viewport-test.png"))
    assert shot is not None and QImage(str(shot)).width() == viewport.grabFramebuffer().width()
    tmp.unlink()
