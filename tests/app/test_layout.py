"""The window at a laptop's 1280×800: every view control visible (none behind an overflow menu), a
usable photo slider, docks that keep their width from idle to running to done, a materials list
with room for several rows, and most of the width for the 3D view.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QPushButton

SIZE = (1280, 800)


def _dock_widths(window) -> dict[str, int]:
    return {name: dock.width() for name, dock in window.docks.items() if dock.isVisible()} | {"viewport": window.viewport.width()}


def _on_screen(window, widget) -> bool:
    """Shown, inside the window and not covered by a sibling's area (its centre hits it)."""
    if not widget.isVisible() or widget.width() < 4 or widget.height() < 4:
        return False
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    hit = window.childAt(rect.center())
    return window.rect().contains(rect) and hit is not None and (hit is widget or widget.isAncestorOf(hit))


def test_every_control_is_reachable_and_docks_are_stable_at_1280x800(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    window.resize(*SIZE)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == SIZE, timeout=5_000)
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(small_dataset)
    qtbot.wait(100)

    bar = window.view_bar
    reset = next(b for b in bar.findChildren(QPushButton) if b.text() == "Reset view")
    for control in (window.mode_box, window.path_box, window.wire_box, window.frusta_box, window.opacity, reset):
        assert _on_screen(window, control), control
    assert window.opacity.width() >= 80  # the photo slider can be dragged with some precision
    assert window.viewport.width() >= 0.45 * SIZE[0] and window.viewport.height() >= 0.45 * SIZE[1]
    assert window.docks["run"].width() <= 0.3 * SIZE[0]  # its hints wrap instead of widening it
    for button in (window.run_panel.start_button, window.run_panel.stop_button):
        assert _on_screen(window, button)

    idle = _dock_widths(window)
    window.run_panel.iterations.setValue(40)
    window.start_run()
    qtbot.waitUntil(lambda: window.run_panel.rate.text() != "", timeout=60_000)  # progress and ETA shown
    assert _dock_widths(window) == idle
    qtbot.waitUntil(lambda: not window.running, timeout=120_000)
    assert _dock_widths(window) == idle

    window.docks["materials"].raise_()
    qtbot.waitUntil(lambda: window.materials_panel.isVisible(), timeout=5_000)
    materials = window.materials_panel.list
    assert materials.viewport().height() >= 4 * materials.iconSize().height()  # four rows of swatches
    assert _dock_widths(window) == idle
