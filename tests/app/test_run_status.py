"""What the window says about runs belongs to the current run only (issue 15, item 4): a new dataset
starts clean, the next run does not show the last one's "Done", the it/s leaves out paused time,
no ETA outlives the running, and the working resolution is the one the steps use, as the hint said.
"""

from __future__ import annotations

import re
import shutil
import time

from PySide6.QtWidgets import QApplication


def _shown_rate(panel) -> float:
    """The it/s the Run panel shows."""
    match = re.search(r"([0-9.]+) it/s", panel.rate.text())
    assert match, panel.rate.text()
    return float(match.group(1))


def test_another_dataset_and_the_next_run_start_clean(make_main_window, small_dataset, tmp_path, qtbot, run_to_end) -> None:
    window = make_main_window()
    panel, materials = window.run_panel, window.materials_panel
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    assert "Drop" not in window.viewport.message.text()  # the scene is there: no invitation over it

    run_to_end(window, 2)
    assert window.status.text().startswith("Done")
    assert panel.progress.text() == "2 / 2" and "it/s" in panel.rate.text()
    qtbot.waitUntil(lambda: not window.materials.busy and materials.status.text() != "", timeout=20_000)

    panel.set_out(tmp_path / "second-run")
    panel.iterations.setValue(2)
    panel.start_button.click()
    assert not window.status.text().startswith("Done")  # the finished run is not what happens now
    assert panel.progress.text() == "" and panel.rate.text() == ""
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)

    other = shutil.copytree(small_dataset, tmp_path / "other")
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(other)
    assert panel.progress.text() == "" and panel.rate.text() == ""  # nothing of the run on the other scene
    assert "No shader yet" in materials.reason.text() and materials.status.text() == ""


def test_rate_leaves_out_pauses_and_resolution_follows_the_levels(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    panel = window.run_panel
    panel.set_live_rate(0.0)
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    panel.iterations.setValue(6)  # on the CPU "auto" works on halved images until the last remesh (4)
    hint = re.fullmatch(r"auto: (.*) on cpu \(dataset 48×40\)", panel.resolution.text())
    assert hint, panel.resolution.text()
    assert hint.group(1) == "24×20, then 48×40 from iteration 4"

    started = time.perf_counter()
    window.start_run()
    window.pause_run()  # takes effect after the first step
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=60_000)
    paused = time.perf_counter()
    assert panel.resolution.text() == f"working at {hint.group(1)}"  # the run says what the hint said
    assert "ETA" not in panel.rate.text()
    qtbot.wait(3000)
    resumed = time.perf_counter()
    window.resume_run()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    ended = time.perf_counter()

    assert panel.resolution.text() == "working at 48×40 (since iteration 4)"
    assert "ETA" not in panel.rate.text()
    running = ended - started - (resumed - paused)  # an upper bound of the running time the panel measured
    assert _shown_rate(panel) >= 0.97 * 6 / running, (panel.rate.text(), running)


def test_no_eta_after_stop(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    panel = window.run_panel
    panel.set_live_rate(0.0)
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    panel.iterations.setValue(5000)
    window.start_run()
    qtbot.waitUntil(lambda: "ETA" in panel.rate.text(), timeout=60_000)
    window.stop_run()
    assert "ETA" not in panel.rate.text()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    QApplication.processEvents()
    assert "ETA" not in panel.rate.text() and "it/s" in panel.rate.text()
