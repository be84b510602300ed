"""Run folders in a real window: open one as saved (menu/drop, command line) without writing a byte,
resume it only when there is something to do, plot its whole loss history, start the same dataset
again in a fresh folder, and refuse broken folders naming the file and the fix."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from render.viewer.pipeline import BACKGROUND
from tests.app.frames import grab_viewport

ROOT = Path(__file__).resolve().parents[2]


def _open(window, qtbot, path: Path) -> None:
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(path)


def _drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def _open_run(window, qtbot, folder: Path) -> None:
    """Drop a run folder on the window and wait until it is shown (or refused)."""
    _drop(window, folder)
    qtbot.waitUntil(lambda: window.snapshot is not None or window.last_error is not None, timeout=60_000)


def _digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` and its bytes' hash: what 'nothing was written' is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _message_box() -> QMessageBox | None:
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    return boxes[0] if boxes else None


def _covered_pixels(qtbot, viewport) -> int:
    qtbot.waitUntil(lambda: viewport.settled and viewport.frames > 0, timeout=30_000)
    rgb = grab_viewport(viewport).astype(np.float64)
    return int((np.abs(rgb - np.round(np.asarray(BACKGROUND) * 255)).max(axis=-1) > 3).sum())


def _plotted(window) -> list[int]:
    x, _ = window.plots.curves["total"].getData()
    return [] if x is None else [int(i) for i in x]


def test_a_finished_run_opens_as_saved_and_resumes_only_when_asked_for_more(
    make_main_window, small_dataset, qtbot, run_to_end
) -> None:
    first = make_main_window()
    _open(first, qtbot, small_dataset)
    record = run_to_end(first, 4)
    out = Path(first.run_info["out"])
    before = _digests(out)

    window = make_main_window()
    window.viewport.setFixedSize(160, 120)
    window.mode_box.setCurrentIndex(window.mode_box.findData("smooth"))
    _open_run(window, qtbot, out)  # a drop; File → Open Folder and the recent list call the same open_dataset
    assert window.last_error is None and _message_box() is None
    # Its mesh and shader, the scene it was made from, its whole loss history, its materials.
    assert window.snapshot.iteration == 4 and len(window.snapshot.faces) == record["mesh"]["faces"]
    assert window.views_panel.count() == 5 and window.scene.source == small_dataset
    assert _plotted(window) == [1, 2, 3, 4]
    assert _covered_pixels(qtbot, window.viewport) > 100
    qtbot.waitUntil(lambda: not window.materials.busy, timeout=30_000)
    assert window.materials.available and window.materials_panel.find.isEnabled()
    assert "finished, 4 iterations" in window.status.text() and out.name in window.windowTitle()
    # Start would make a new run; Resume has nothing to do and says how to go further.
    panel = window.run_panel
    assert panel.start_button.isEnabled() and Path(panel.out.text()) != out
    assert not panel.resume_button.isEnabled()
    assert "finished all its 4 iterations" in panel.resume_button.toolTip() and "above 4" in panel.resume_button.toolTip()
    window.resume_run()  # the Resume slot at rest, and File → Resume Run from Folder on it: nothing is written
    window.resume_from(out)
    qtbot.waitUntil(lambda: not window.run_opener.busy, timeout=60_000)
    assert not window.running and _digests(out) == before

    # Asking for more iterations continues it, from the whole history on.
    panel.iterations.setValue(6)
    assert panel.resume_button.isEnabled() and "from iteration 4 to 6" in panel.resume_button.toolTip()
    assert _digests(out) == before  # still nothing written: only pressing Resume writes
    panel.resume_button.click()
    assert window.running, window.last_error
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert window.run_result["iteration"] == 6, window.last_error
    assert _plotted(window) == [1, 2, 3, 4, 5, 6]
    saved = json.loads((out / "run.json").read_text())
    assert saved["seconds"] >= record["seconds"] and [(s["from"], s["to"]) for s in saved["sessions"]] == [(0, 4), (4, 6)]


def test_a_stopped_run_resumes_and_shows_with_its_whole_loss_history(make_main_window, small_dataset, qtbot) -> None:
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
    # At rest, Resume continues the stopped run to its schedule and says so.
    assert window.run_panel.resume_button.isEnabled()
    assert f"from iteration {stopped + 2} to 500" in window.run_panel.resume_button.toolTip()

    other = make_main_window()
    other.viewport.setFixedSize(160, 120)
    _open_run(other, qtbot, out)
    assert other.last_error is None and _plotted(other) == list(range(1, stopped + 3))
    assert f"stopped at iteration {stopped + 2} of 500" in other.status.text()
    assert other.run_panel.resume_button.isEnabled()


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


def test_a_run_whose_dataset_moved_still_shows_its_mesh_and_says_why_no_photos(
    make_main_window, small_dataset, qtbot, run_to_end, tmp_path
) -> None:
    first = make_main_window()
    _open(first, qtbot, small_dataset)
    run_to_end(first, 2)
    out = Path(first.run_info["out"])
    shutil.move(small_dataset, tmp_path / "moved")

    window = make_main_window()
    window.viewport.setFixedSize(160, 120)
    window.mode_box.setCurrentIndex(window.mode_box.findData("smooth"))
    _open_run(window, qtbot, out)
    assert window.snapshot is not None and window.scene is None and window.views_panel.count() == 0
    assert str(small_dataset) in window.status.text() and "not there any more" in window.status.text()
    assert _covered_pixels(qtbot, window.viewport) > 100
    assert _plotted(window) == [1, 2]
    panel = window.run_panel
    assert not panel.start_button.isEnabled() and not panel.resume_button.isEnabled()
    assert "photos" in panel.resume_button.toolTip()


def test_broken_run_folders_get_a_dialog_naming_the_file_and_the_fix(
    make_main_window, small_dataset, qtbot, run_to_end, tmp_path
) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    run_to_end(window, 2)
    out = Path(window.run_info["out"])
    faces = len(window.snapshot.faces)

    no_mesh = tmp_path / "no-mesh"
    shutil.copytree(out, no_mesh)
    (no_mesh / "mesh.ply").unlink()
    bad_record = tmp_path / "bad-record"
    shutil.copytree(out, bad_record)
    (bad_record / "run.json").write_text('{"dataset": ')
    for folder, named, fix in ((no_mesh, "mesh.ply", f"reconstruct resume {no_mesh} --iterations 0"),
                               (bad_record, "run.json", "Fix or restore the file")):
        before = _digests(folder)
        _drop(window, folder)
        qtbot.waitUntil(lambda: _message_box() is not None, timeout=30_000)
        box = _message_box()
        assert box.windowTitle() == "Cannot open run folder"
        assert str(folder / named) in box.text() and fix in box.text(), box.text()
        box.close()
        assert _digests(folder) == before  # nothing lost or written
        assert window.views_panel.count() == 5 and len(window.snapshot.faces) == faces  # the window as it was
        assert "not a dataset" not in (window.last_error or "")


def test_reconstruct_gui_run_dir_opens_the_run_as_saved(make_main_window, small_dataset, qtbot, run_to_end, tmp_path) -> None:
    """`reconstruct-gui RUN_DIR` in a subprocess on the same DISPLAY: shown as saved, then closed by SIGTERM."""
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    run_to_end(window, 2)
    out = Path(window.run_info["out"])
    before = _digests(out)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "app.main", str(out)], cwd=ROOT, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not any(s in log_path.read_text() for s in ("shown as saved", "ERROR")) and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    assert f"opened {out}: Run {out.name} (finished, 2 iterations)" in text, text[-3000:]
    assert proc.returncode == 0 and "Traceback" not in text and "not a dataset" not in text, text[-3000:]
    assert _digests(out) == before
