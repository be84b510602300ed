"""Picking a surface point in a real window: it works in the neural mode from the first click after a
live run (whose frames were shaded at reduced scale), and a click that finds nothing says why.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from render.viewer.pipeline import BACKGROUND
from tests.app.frames import grab_viewport


def _covered(rgb: np.ndarray) -> np.ndarray:
    background = np.round(np.asarray(BACKGROUND) * 255)
    return np.abs(rgb.astype(np.float64) - background).max(axis=-1) > 3


def _ctrl_click(qtbot, viewport, x: float, y: float) -> None:
    ratio = viewport.devicePixelRatioF()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, QPoint(int(x / ratio), int(y / ratio)))


def test_first_pick_in_neural_mode_after_a_live_run(make_main_window, small_demo, qtbot) -> None:
    window = make_main_window()
    viewport = window.viewport
    viewport.setFixedSize(240, 180)  # CPU neural shading costs per covered pixel
    window.frusta_box.setChecked(False)
    qtbot.waitUntil(lambda: viewport.frames > 0, timeout=30_000)
    _ctrl_click(qtbot, viewport, 120, 90)
    assert "Nothing to pick yet" in window.status.text()  # no mesh: says so instead of doing nothing

    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        window.open_dataset(small_demo)
    assert window.run_panel.live_rate_value() > 0  # the live view shades at reduced scale while the run goes
    window.run_panel.iterations.setValue(8)
    window.start_run()
    window.pause_run()
    qtbot.waitUntil(lambda: window.run_panel.state == "paused", timeout=60_000)
    qtbot.waitUntil(lambda: viewport.shade_jobs > 0 and viewport.settled, timeout=60_000)  # a live frame on screen
    window.resume_run()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    qtbot.waitUntil(lambda: viewport.settled, timeout=60_000)
    assert viewport.mode == "neural"

    picked = []
    viewport.surface_picked.connect(picked.append)
    covered = np.argwhere(_covered(grab_viewport(viewport)))
    y, x = covered[len(covered) // 2]
    _ctrl_click(qtbot, viewport, x + 0.5, y + 0.5)
    assert len(picked) == 1, window.status.text()
    uv, _ = viewport.current_camera().project(picked[0][None])
    ratio = viewport.devicePixelRatioF()
    assert np.abs(uv[0] - (np.floor(np.array([x, y]) / ratio) * ratio + 0.5)).max() < 2  # the point under the cursor
    assert "Picked" in window.status.text() or window.status.text() == window.materials.why_not

    _ctrl_click(qtbot, viewport, 1, 1)  # the background
    assert len(picked) == 1 and "No surface under the cursor" in window.status.text()
