"""Run folders in a real window: resume with the whole loss history plotted, start the same dataset
again in a fresh folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox


def _open(window, qtbot, path: Path) -> None:
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(path)


def _digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` and its bytes' hash: what 'nothing was written' is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _plotted(window) -> list[int]:
    x, _ = window.plots.curves["total"].getData()
    return [] if x is None else [int(i) for i in x]


def _message_box() -> QMessageBox | None:
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    return boxes[0] if boxes else None


def test_a_stopped_run_resumes_with_its_whole_loss_history(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    window.run_panel.iterations.setValue(500)
    window.start_run()
    qtbot.waitUntil(lambda: window.plots.points >= 2, timeout=60_000)
    window.stop_run()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    stopped = window.run_result["iteration"]
    out = Path(window.run_info["out"])

    window.resume_from(out, until=stopped + 2)
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert window.run_result["iteration"] == stopped + 2, window.last_error
    assert _plotted(window) == list(range(1, stopped + 3))  # from iteration 1, not from the resume point


def test_start_on_the_same_dataset_again_takes_a_fresh_folder(make_main_window, small_dataset, qtbot, run_to_end) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    run_to_end(window, 2)
    first = Path(window.run_info["out"])
    before = _digests(first)
    assert Path(window.run_panel.out.text()) == first

    window.run_panel.start_button.click()  # Start again: no "Run folder in use", no folder to type
    second = first.parent / f"{first.name}-2"
    assert window.running and f"{first.name} holds a run already: this one goes to {second.name}" in window.status.text()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert Path(window.run_info["out"]) == second and window.last_error is None and _message_box() is None
    run_to_end(window, 2)
    assert Path(window.run_info["out"]) == first.parent / f"{first.name}-3"
    assert _digests(first) == before and (second / "checkpoint" / "state.safetensors").is_file()
