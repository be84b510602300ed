"""Small things a new user meets first (issue 15, item 10): export only when there is something to
export, a short "unknown folder" message, no "0.0 fps" on a resting view, a log that follows new
lines, and an empty loss plot that says it is empty."""

from __future__ import annotations

import logging
import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from app.log_panel import LogPanel
from recon.data.load import FORMATS


def _export_menu(window):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    return next(a.menu() for a in file_menu.actions() if a.text() == "&Export")


def _enabled(window) -> dict[str, bool]:
    """Export action → enabled, keyed by the first word of its text (Mesh…, Shader, Screenshot)."""
    return {a.text().split()[0] + (a.text().split()[2] if a.text().startswith("Mesh") else ""): a.isEnabled()
            for a in _export_menu(window).actions() if a.text()}


def test_export_waits_for_something_to_export(make_main_window, small_dataset, qtbot, run_to_end) -> None:
    window = make_main_window()
    assert not any(_enabled(window).values())  # nothing loaded: no save dialog that ends in "Nothing to export"
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    enabled = _enabled(window)
    assert enabled.pop("Screenshot") and not any(enabled.values())  # a scene to look at, no mesh yet
    run_to_end(window, 2)
    assert all(_enabled(window).values())
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)  # the reconstruction is gone with the scene it belonged to
    assert not _enabled(window)["MeshPLY"]


def test_an_unknown_folder_is_explained_in_one_short_line(make_main_window, tmp_path, qtbot) -> None:
    window = make_main_window()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with qtbot.waitSignal(window.loader.failed, timeout=20_000):
        window.open_dataset(junk)
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes
    text = boxes[0].text()
    boxes[0].close()
    assert text.startswith(f"{junk}: not a dataset of a known format") and "\n" not in text
    what = text[len(str(junk)):]
    assert len(what) < 200, what  # not every format's full description
    assert all(fmt.KEY_FILE in what for fmt in FORMATS.values())
    assert 'see "Dataset formats" in the README' in what


def test_a_resting_view_shows_no_zero_frame_rate(make_main_window, qtbot) -> None:
    window = make_main_window()
    viewport = window.viewport
    qtbot.waitUntil(lambda: viewport.frames > 0, timeout=30_000)
    frames = -1
    while viewport.frames != frames:  # at rest: no frame for more than a second
        frames = viewport.frames
        qtbot.wait(1100)
    viewport.update()  # one lone frame (a tooltip, an expose, …)
    qtbot.waitUntil(lambda: viewport.frames > frames, timeout=10_000)
    assert "fps" not in viewport.fps_label.text() and " ms " in viewport.fps_label.text()
    viewport.setFocus()
    for _ in range(8):  # frames in a row: now there is a rate
        qtbot.keyClick(viewport, Qt.Key.Key_Right)
        qtbot.wait(30)
    match = re.search(r"([0-9.]+) fps", viewport.fps_label.text())
    assert match and float(match.group(1)) > 0, viewport.fps_label.text()


def _lines(panel: LogPanel, count: int, qtbot, tag: str) -> None:
    log = logging.getLogger("tests.log_panel")
    for i in range(count):
        log.info("%s %d", tag, i)
    qtbot.waitUntil(lambda: tag in panel.toPlainText().splitlines()[-1], timeout=5_000)


def _at_bottom(panel: LogPanel) -> bool:
    bar = panel.verticalScrollBar()
    return bar.maximum() > 0 and bar.value() == bar.maximum()


def test_the_log_follows_new_lines_from_the_first_one(qtbot) -> None:
    panel = LogPanel()
    qtbot.addWidget(panel)
    try:
        panel.resize(600, 300)
        _lines(panel, 200, qtbot, "before the panel is shown")
        panel.show()
        qtbot.waitExposed(panel)
        _lines(panel, 5, qtbot, "shown")
        assert _at_bottom(panel)

        qtbot.keyClick(panel, Qt.Key.Key_PageUp)  # the user reads further up: the view stays there
        bar = panel.verticalScrollBar()
        where = bar.value()
        assert where < bar.maximum()
        _lines(panel, 5, qtbot, "while reading")
        assert bar.value() == where
        while bar.value() < bar.maximum():  # back at the bottom: follow again
            qtbot.keyClick(panel, Qt.Key.Key_PageDown)
        _lines(panel, 5, qtbot, "following again")
        assert _at_bottom(panel)
    finally:
        panel.detach()


def test_the_log_follows_after_having_no_height(qtbot) -> None:
    panel = LogPanel()
    qtbot.addWidget(panel)
    try:
        panel.resize(600, 0)  # a squeezed dock
        panel.show()
        _lines(panel, 200, qtbot, "squeezed")
        panel.resize(600, 300)
        _lines(panel, 5, qtbot, "grown")
        assert _at_bottom(panel)
    finally:
        panel.detach()


def test_the_empty_loss_plot_says_so(make_main_window, small_dataset, qtbot, run_to_end) -> None:
    window = make_main_window()
    plot = window.plots.loss_plot
    hints = [item for item in plot.getPlotItem().items if hasattr(item, "textItem") and item.isVisible()]
    assert [h.textItem.toPlainText() for h in hints] == ["The loss curves appear here once a run starts."]
    assert not plot.getAxis("left").style["showValues"]  # no 0.1 … 0.9 invented for no data
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    run_to_end(window, 2)
    assert window.plots.points == 2
    assert not any(item.isVisible() for item in hints) and plot.getAxis("left").style["showValues"]
