"""The Run panel on its own: its choices become the CLI's options, its states gate its buttons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.run_panel import RunPanel, working_resolution


def _panel(qtbot) -> RunPanel:
    panel = RunPanel()
    qtbot.addWidget(panel)
    return panel


def test_choices_become_run_and_resume_options(qtbot, tmp_path) -> None:
    panel = _panel(qtbot)
    assert panel.out_path() is None  # an empty field: the window picks a fresh folder
    panel.set_out(Path("~/runs/a"))
    assert panel.out_path() == Path.home() / "runs" / "a"
    with qtbot.waitSignal(panel.choices_changed, timeout=1_000):
        panel.device.setCurrentIndex(panel.device.findData("cpu"))
    with qtbot.waitSignal(panel.choices_changed, timeout=1_000):
        panel.iterations.setValue(300)
    panel.renderer.setCurrentIndex(panel.renderer.findData("gl"))
    panel.seed.setValue(5)

    options = panel.options(tmp_path / "data", tmp_path / "run")
    assert (options.device, options.renderer, options.iterations, options.seed) == ("cpu", "gl", 300, 5)
    resume = panel.resume_options(tmp_path / "run", until=400)
    assert (resume.out, resume.device, resume.renderer, resume.until) == (tmp_path / "run", "cpu", "gl", 400)


def test_the_settings_field_becomes_the_options_config_overrides_as_set_reads_them(qtbot, tmp_path) -> None:
    from recon.settings import SettingError

    panel = _panel(qtbot)
    assert panel.options(tmp_path / "data", tmp_path / "run").config_overrides == {}
    panel.settings.setText("  views_per_step=2   shader.hidden_h=64 init=sphere ")
    with qtbot.waitSignal(panel.choices_changed, timeout=1_000):
        panel.settings.editingFinished.emit()
    options = panel.options(tmp_path / "data", tmp_path / "run")
    assert options.config_overrides == {"views_per_step": 2, "shader": {"hidden_h": 64}, "init": "sphere"}
    panel.settings.setText("views_per_step")
    with pytest.raises(SettingError, match="expected NAME=VALUE"):
        panel.options(tmp_path / "data", tmp_path / "run")
    assert panel.settings_problem.isHidden()
    panel.show_settings_problem("--set views_per_step: expected NAME=VALUE")
    assert not panel.settings_problem.isHidden() and "views_per_step" in panel.settings_problem.text()
    panel.show_settings_problem("")
    assert panel.settings_problem.isHidden()


def test_the_accuracy_settings_the_tooltip_offers_are_nds_settings(qtbot) -> None:
    from recon.methods.config import NDSConfig
    from recon.settings import apply_settings, parse_line

    offered = re.search(r"For accuracy with NDS: (.+?) \(", _panel(qtbot).settings.toolTip())
    assert offered is not None
    config = apply_settings(NDSConfig(), parse_line(offered.group(1)))
    assert config.views_per_step > NDSConfig().views_per_step and config.weight_laplacian < NDSConfig().weight_laplacian


def test_states_gate_the_buttons_and_a_pause_asked_for_blocks_a_second(qtbot) -> None:
    panel = _panel(qtbot)
    panel.offer_resume(True, "Resume continues this run to iteration 2000")
    panel.set_state("ready")
    assert panel.start_button.isEnabled() and panel.resume_button.isEnabled()
    assert panel.resume_offer == "Resume continues this run to iteration 2000"

    enabled = {}
    for state in ("running", "pausing", "paused", "stopping"):
        panel.set_state(state)
        enabled[state] = tuple(b.isEnabled() for b in (panel.start_button, panel.pause_button, panel.resume_button,
                                                        panel.stop_button, panel.seed))
        assert panel.settings.isEnabled() == panel.seed.isEnabled()  # a run's settings stay what it started with
    # start, pause, resume, stop, the choices
    assert enabled["running"] == (False, True, False, True, False)
    assert enabled["pausing"] == (False, False, False, True, False)
    assert enabled["paused"] == (False, False, True, True, False)
    assert enabled["stopping"] == (False, False, False, False, False)


def test_working_resolution_names_the_next_level_then_the_last() -> None:
    levels = ((0, (128, 96)), (1500, (256, 192)))
    assert working_resolution(levels, 10) == "working at 128×96, then 256×192 from iteration 1500"
    assert working_resolution(levels, 1600) == "working at 256×192 (since iteration 1500)"
