"""Runs from the GUI in a real X session: live plots, pause/stop, export, asking before dropping work,
and a clean exit with a checkpoint when the window closes mid-run (in a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from PySide6.QtWidgets import QApplication, QMessageBox

from render.renderer import Renderer

ROOT = Path(__file__).resolve().parents[2]


def _open(window, qtbot, path: Path) -> None:
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(path)


def _question_box() -> QMessageBox | None:
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    return boxes[0] if boxes else None


def test_short_run_plots_losses_and_writes_the_run_folder(make_main_window, small_dataset, qtbot, run_to_end) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    assert window.run_panel.start_button.isEnabled()
    out = Path(window.run_panel.out.text())
    assert out.parent == Path(window.settings.value("runs/root")) and out.name.startswith("small-")
    result = run_to_end(window, 4)
    assert result["iteration"] == 4 and not result.get("stopped")
    assert window.plots.points == 4
    x, y = window.plots.curves["total"].getData()
    assert list(x) == [1, 2, 3, 4] and np.isfinite(y).all()
    assert window.run_panel.progress.value() == 4
    assert "it/s" in window.run_panel.rate.text() and "ETA" not in window.run_panel.rate.text()  # over: no ETA
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the panel's default is auto
    renderer = Renderer("auto", device).backend
    assert f"device {device}" in window.run_panel.chosen.text() and f"renderer {renderer}" in window.run_panel.chosen.text()
    for name in ("mesh.ply", "shader.json", "shader.safetensors", "run.json", "checkpoint"):
        assert (out / name).exists(), name
    assert json.loads((out / "run.json").read_text())["gui"] is True
    assert window.snapshot is not None and window.snapshot.iteration == 4
    assert "Done" in window.run_panel.status.text()


def test_pause_takes_effect_within_an_iteration_then_stop_keeps_a_checkpoint(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    window.run_panel.iterations.setValue(500)
    window.run_panel.holdout.setChecked(True)  # also exercises the held-out PSNR curve
    window.start_run()
    qtbot.waitUntil(lambda: window.plots.points >= 1, timeout=60_000)
    worker = window.run.worker
    asked_at = worker.session.iteration
    window.run_panel.pause_button.click()
    assert window.run_panel.state == "pausing" and not window.run_panel.pause_button.isEnabled()  # asked, not yet there
    assert window.run_panel.stop_button.isEnabled() and "Pausing" in window.run_panel.status.text()
    qtbot.waitUntil(lambda: window.run_panel.state == "paused", timeout=30_000)
    paused_at = window.paused_at
    assert paused_at <= asked_at + 1
    assert window.run_panel.resume_button.isEnabled() and not window.run_panel.pause_button.isEnabled()
    assert worker.session.iteration == paused_at  # blocked: no step runs while paused
    assert window.plots.psnr and np.isfinite(window.plots.psnr[0][1])
    window.run_panel.stop_button.click()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    result = window.run_result
    assert result["stopped"] and result["iteration"] == paused_at
    assert result["holdout"] == ["v4"] and result["dataset"]["views"] == 4
    out = Path(window.run_info["out"])
    assert (out / "checkpoint").is_dir()

    # ... and Resume from that folder continues it, with the same view held out.
    window.resume_from(out, until=paused_at + 2)
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert window.run_result["iteration"] == paused_at + 2, window.last_error
    assert window.run_result["holdout"] == ["v4"]


def test_export_writes_files_other_tools_read(make_main_window, small_dataset, qtbot, run_to_end, tmp_path) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    run_to_end(window, 2)
    for suffix in ("glb", "ply", "obj"):
        target = tmp_path / "exports" / f"mesh.{suffix}"
        with qtbot.waitSignal(window.exporter.finished, timeout=60_000):
            assert window.export("mesh", target)
        assert window.export_progress.isHidden()
        loaded = trimesh.load(target, process=False)
        if isinstance(loaded, trimesh.Scene):  # glTF
            (loaded,) = loaded.geometry.values()
        assert len(loaded.faces) == len(window.snapshot.faces)
        visual = loaded.visual  # PLY: vertex colours; GLB, OBJ: a texture atlas
        colours = np.asarray(visual.vertex_colors if suffix == "ply" else visual.to_color().vertex_colors)
        assert colours.shape[0] == len(loaded.vertices) and colours[:, :3].mean() < 240  # baked, not white
        if suffix == "ply":
            np.testing.assert_allclose(loaded.vertices, window.snapshot.world_vertices, atol=1e-5)
        else:  # split along the texture's seams: every vertex is one of the snapshot's
            world = window.snapshot.world_vertices
            nearest = np.abs(loaded.vertices[:, None] - world[None]).max(-1).min(1)
            assert len(loaded.vertices) >= len(world) and nearest.max() < 1e-5
    with qtbot.waitSignal(window.exporter.finished, timeout=30_000):
        window.export("shader", tmp_path / "exports" / "shader")
    from recon.shader import load_shader

    shader, normalization = load_shader(tmp_path / "exports" / "shader.json")
    assert np.allclose(normalization[1], window.snapshot.normalization[1])
    assert not [p for p in (tmp_path / "exports").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_a_setting_the_method_lacks_is_named_under_the_field_and_start_refuses_it(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    panel = window.run_panel
    out = Path(panel.out.text())
    panel.settings.setText("view_per_step=2")
    panel.settings.editingFinished.emit()
    assert not panel.settings_problem.isHidden() and "view_per_step: no such setting" in panel.settings_problem.text()
    window.start_run()
    assert not window.running and not out.exists()
    assert "view_per_step: no such setting" in window.last_error and "views_per_step" in window.last_error
    box = _question_box()
    assert box is not None and box.windowTitle() == "Cannot start"
    box.close()
    panel.settings.setText("views_per_step=2")
    panel.settings.editingFinished.emit()
    assert panel.settings_problem.isHidden()


def test_export_without_a_run_explains_what_to_do(make_main_window, small_dataset, qtbot, tmp_path) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    assert not window.export("mesh", tmp_path / "m.ply")
    assert "start a run" in window.last_error
    box = _question_box()
    assert box is not None
    box.close()


def test_second_dataset_during_a_run_asks_first(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    _open(window, qtbot, small_dataset)
    window.run_panel.iterations.setValue(500)
    window.start_run()
    qtbot.waitUntil(lambda: window.plots.points >= 1, timeout=60_000)
    out = Path(window.run_info["out"])

    window.open_dataset(small_dataset)  # e.g. a drop: the run must not be lost silently
    box = _question_box()
    assert box is not None and "running" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.running and not window.loader.busy  # nothing happened

    window.open_dataset(small_dataset)
    box = _question_box()
    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert not window.running and window.run_result["stopped"]
    assert (out / "checkpoint").is_dir() and window.views_panel.count() == 5


def test_closing_mid_run_exits_cleanly_with_a_checkpoint(small_dataset, tmp_path) -> None:
    """The real app in a subprocess on the same DISPLAY: SIGTERM closes the window like its close button."""
    out = tmp_path / "run"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.main", str(small_dataset), "--run", "--iterations", "1000", "--out", str(out)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not (out / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # the runner writes run.json once the session is built and stepping begins
            assert (out / "run.json").exists(), "the run never started:\n" + log_path.read_text()[-3000:]
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    rest = log_path.read_text()
    assert proc.returncode == 0, rest[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["stopped"] is True and record["iteration"] >= 1
    assert (out / "checkpoint").is_dir() and (out / "mesh.ply").exists()
    assert "Traceback" not in rest


def test_a_gui_run_on_auto_uses_exactly_the_config_the_cli_would(make_main_window, small_dataset, qtbot) -> None:
    from recon.cli import build_parser
    from recon.cli.commands import run_options
    from recon.runs import plan

    window = make_main_window()
    _open(window, qtbot, small_dataset)
    panel = window.run_panel
    panel.iterations.setValue(0)  # "auto"
    panel.scale.setCurrentIndex(panel.scale.findText("auto"))
    panel.seed.setValue(3)
    panel.settings.setText("weight_normal=0.2 shader.hidden_h=64")
    assert panel.iterations.text() == "auto"
    gui = window.run_options()
    args = build_parser().parse_args(["run", str(small_dataset), "--out", str(gui.out), "--seed", "3",
                                      "--set", "weight_normal=0.2", "--set", "shader.hidden_h=64"])  # fmt: skip
    cli = run_options(args, Path(args.dataset), overwrite=False)
    assert gui == cli
    expected = plan(cli)
    assert plan(gui) == expected
    assert (expected.config.weight_normal, expected.config.shader.hidden_h) == (0.2, 64)

    window.start_run()  # ... and the run it starts records that config
    qtbot.waitUntil(lambda: window.plots.points >= 1, timeout=60_000)
    window.stop_run()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.run_result["config"] == expected.config.to_dict(), window.last_error
    assert json.loads((gui.out / "run.json").read_text())["config"] == expected.config.to_dict()
