"""The GUI offers DVR: a run started from the Method box ends with a DVR run folder, and the
viewport shades its mesh with the texture field t(x) on the GLSL path, as torch does."""

from __future__ import annotations

import numpy as np
import torch

from recon.methods.registry import get_method


def test_a_dvr_run_from_the_method_box(make_main_window, small_dataset, qtbot, run_to_end, monkeypatch) -> None:
    from recon.methods import dvr

    # The CPU default's field costs seconds per mesh extraction; the wiring is what is tested here.
    monkeypatch.setitem(dvr.CPU_CHANGES, "field", {"hidden": 16, "blocks": 1, "pe_octaves": 1})
    monkeypatch.setitem(dvr.CPU_CHANGES, "rays", 64)
    monkeypatch.setitem(dvr.CPU_CHANGES, "mesh_resolution", 8)
    monkeypatch.setitem(dvr.CPU_CHANGES, "mesh_refinements", 1)
    window = make_main_window()
    box = window.run_panel.method
    assert box.findData("dvr") >= 0 and box.itemText(box.findData("dvr")) == get_method("dvr").title
    with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
        window.open_dataset(small_dataset)
    box.setCurrentIndex(box.findData("dvr"))
    window.run_panel.device.setCurrentIndex(window.run_panel.device.findData("cpu"))
    result = run_to_end(window, 3)
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
