"""The GUI offers RtS-SDF: a run started from the Method box ends with an rts-sdf run folder, and the
viewport rasterizes the grid's current level set."""

from __future__ import annotations


def test_an_rts_sdf_run_from_the_method_box(run_method_from_box, qtbot) -> None:
    window, result = run_method_from_box("rts-sdf", 3)
    assert result["method"] == "rts-sdf" and result["iteration"] == 3
    assert result["config"]["coarse_images"] is True  # the GUI's "auto" is the CLI's CPU default
    snapshot = window.snapshot
    assert snapshot.iteration == 3 and len(snapshot.faces) > 100 and "freespace" in snapshot.losses

    viewport = window.viewport
    window.mode_box.setCurrentIndex(window.mode_box.findData("normals"))
    viewport.update()
    qtbot.waitUntil(lambda: viewport.frames > 0 and viewport.settled, timeout=60_000)
    assert viewport.error is None
    viewport.makeCurrent()
    try:
        position, _ = viewport.pipe.read_gbuffer()
    finally:
        viewport.doneCurrent()
    assert (position[..., 3] > 0).sum() > 50  # the level set is on screen
