"""The live view in a real window: frames of a streaming run may be coarse, but once the mesh and
the camera are still (the run paused) the frame on screen is rendered at the widget's full resolution.
"""

from __future__ import annotations


def _pixels(viewport) -> tuple[int, int]:
    ratio = viewport.devicePixelRatioF()
    return round(viewport.width() * ratio), round(viewport.height() * ratio)


def test_a_paused_run_is_refined_to_full_resolution(make_main_window, small_demo, qtbot) -> None:
    window = make_main_window()
    viewport = window.viewport
    viewport.setFixedSize(200, 150)  # CPU neural shading costs per covered pixel
    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        window.open_dataset(small_demo)
    window.run_panel.set_live_rate(5.0)
    window.run_panel.iterations.setValue(500)  # still running when paused
    window.start_run()
    qtbot.waitUntil(lambda: window.snapshot is not None and viewport.shade_jobs > 0, timeout=60_000)
    assert viewport.mode == "neural"
    window.pause_run()
    qtbot.waitUntil(lambda: window.run_panel.state == "paused", timeout=60_000)
    assert window.running and window.run.is_paused
    # Refined once still (a live interval + 150 ms after the last snapshot); never, without the fix.
    qtbot.waitUntil(lambda: viewport.settled and viewport.pipe.shown_resolution == _pixels(viewport), timeout=20_000)

    window.resume_run()  # streaming again: the next snapshots may be shaded coarse
    qtbot.waitUntil(lambda: window.snapshot.iteration > window.paused_at + 2, timeout=60_000)
    window.stop_run()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    qtbot.waitUntil(lambda: viewport.settled and viewport.pipe.shown_resolution == _pixels(viewport), timeout=20_000)
