"""The README's pictures of the app's main states, taken from a real window at 1280×800 and checked.

Empty window, dataset loaded (hull preview), a run in progress (paused mid-run), materials found
and one picked, and the export dialog: written to docs/images/ so the README shows what a user
sees today. Each state must look different from the one before, so a state that failed to show
(an empty viewport, a dialog that never opened) fails the test instead of leaving a stale image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog
from tests.app.frames import image_pixels

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _save(widget, name: str, previous: np.ndarray | None) -> np.ndarray:
    image = widget.grab().toImage()
    IMAGES.mkdir(parents=True, exist_ok=True)
    assert image.save(str(IMAGES / name), "PNG")
    pixels = image_pixels(image)
    if previous is not None and previous.shape == pixels.shape:
        changed = (np.abs(pixels.astype(int) - previous.astype(int)).max(axis=-1) > 8).mean()
        assert changed > 0.01, f"{name}: looks like the previous state ({changed:.2%} of pixels changed)"
    return pixels


def _settle(qtbot, window) -> None:
    viewport = window.viewport
    qtbot.waitUntil(lambda: viewport.settled and viewport.frames > 0, timeout=60_000)
    qtbot.wait(300)  # the overlay and docks repaint after the last frame


def test_main_states_are_pictured(make_main_window, small_demo, qtbot) -> None:
    window = make_main_window()
    window.resize(1280, 800)
    qtbot.waitExposed(window)
    qtbot.wait(300)
    shot = _save(window, "window-empty.png", None)

    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        window.open_dataset(small_demo)
    qtbot.waitUntil(lambda: window.viewport.preview is not None, timeout=60_000)
    _settle(qtbot, window)
    shot = _save(window, "window-dataset.png", shot)

    window.run_panel.iterations.setValue(60)
    window.run_panel.start_button.click()
    assert window.running, window.last_error
    qtbot.waitUntil(lambda: window.snapshot is not None and window.snapshot.iteration >= 15, timeout=120_000)
    window.pause_run()
    qtbot.waitUntil(lambda: window.paused_at is not None, timeout=60_000)
    _settle(qtbot, window)
    shot = _save(window, "window-running.png", shot)
    window.resume_run()
    qtbot.waitUntil(lambda: not window.running, timeout=120_000)
    assert window.run_result is not None, window.last_error

    panel, model = window.materials_panel, window.materials
    model.samples = 4000
    qtbot.waitUntil(lambda: not model.busy and panel.find.isEnabled(), timeout=30_000)
    panel.k.setValue(3)
    with qtbot.waitSignal(model.materials_changed, timeout=60_000, check_params_cb=lambda m: m is not None):
        panel.find.click()
    panel.list.setCurrentRow(0)
    dock = next(d for d in window.findChildren(QDockWidget) if d.windowTitle() == "Materials")
    dock.raise_()  # the list, its balls and the edit controls in view
    window.mode_box.setCurrentIndex(window.mode_box.findData("materials"))
    _settle(qtbot, window)
    shot = _save(window, "window-materials.png", shot)

    seen: list[str] = []

    def grab_dialog() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:  # not shown yet
            QTimer.singleShot(100, grab_dialog)
            return
        seen.append(type(dialog).__name__)
        qtbot.wait(200)
        _save(dialog, "window-export.png", None)
        dialog.reject()

    QTimer.singleShot(100, grab_dialog)
    window._ask_export_mesh("glb")
    assert seen == [QFileDialog.__name__]
