"""The GUI offers DVR: a run started from the Method box ends with a DVR run folder, and the
viewport shows its mesh (the viewer's shading paths do not take DVR's texture field yet, so the
neural mode falls back instead of failing)."""

from __future__ import annotations

from recon.methods.registry import get_method


def test_a_dvr_run_from_the_method_box(make_main_window, small_dataset, qtbot, run_to_end, monkeypatch) -> None:
    from recon.methods import dvr

    # The CPU default's field costs seconds per mesh extraction; the wiring is what is tested here.
    monkeypatch.setitem(dvr.CPU_CHANGES, "field", {"hidden": 16, "blocks": 1, "pe_octaves": 0})
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
    viewport = window.viewport
    qtbot.waitUntil(lambda: viewport.frames > 0 and viewport.settled, timeout=60_000)
    assert viewport.error is None
    assert result["config"]["field"]["hidden"] == 16  # the GUI's "auto" is the CLI's CPU default
