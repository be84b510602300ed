"""The GUI offers DVR: a run started from the Method box ends with a DVR run folder, and the
viewport shades its mesh with the texture field t(x) on the GLSL path, as torch does."""

from __future__ import annotations

import numpy as np
import torch


def test_a_dvr_run_from_the_method_box(run_method_from_box, qtbot, monkeypatch) -> None:
    from recon.methods import dvr

    # The CPU default's field costs seconds per mesh extraction; the wiring is what is tested here.
    monkeypatch.setitem(dvr.CPU_CHANGES, "field", {"hidden": 16, "blocks": 1, "pe_octaves": 1})
    monkeypatch.setitem(dvr.CPU_CHANGES, "rays", 64)
    monkeypatch.setitem(dvr.CPU_CHANGES, "mesh_resolution", 8)
    monkeypatch.setitem(dvr.CPU_CHANGES, "mesh_refinements", 1)
    window, result = run_method_from_box("dvr", 3)
    assert result["method"] == "dvr" and result["iteration"] == 3
    assert window.snapshot.iteration == 3
    assert result["config"]["field"]["hidden"] == 16  # the GUI's "auto" is the CLI's CPU default

    viewport = window.viewport
    usable, reasons = viewport.paths()
    assert "glsl" in usable, reasons.get("glsl")
    window.mode_box.setCurrentIndex(window.mode_box.findData("neural"))
    window.path_box.setCurrentIndex(window.path_box.findData("glsl"))
    window.path_box.activated.emit(window.path_box.currentIndex())
    viewport.update()
    qtbot.waitUntil(lambda: viewport.frames > 0 and viewport.settled and viewport.last_stats.path == "glsl", timeout=60_000)
    assert viewport.error is None
    viewport.makeCurrent()
    try:
        color = viewport.pipe.read_color()
        position, normal = viewport.pipe.read_gbuffer()
    finally:
        viewport.doneCurrent()
    covered = position[..., 3] > 0
    assert covered.sum() > 50
    x = torch.from_numpy(position[covered][:, :3])
    n = torch.from_numpy(normal[covered][:, :3])
    with torch.no_grad():
        reference = window.snapshot.shader()(x, n, n).numpy()  # t(x): n and ω are ignored
    assert np.abs(color[covered][:, :3] / 255.0 - reference).max() <= 2 / 255
