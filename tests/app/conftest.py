"""Qt fixtures: real windows on a real X server (Xvfb in CI), each closed after its test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    pytest.skip(
        "no X server: run the GUI tests under Xvfb (xvfb-run -a pytest); "
        "QT_QPA_PLATFORM=offscreen cannot host OpenGL widgets",
        allow_module_level=True,
    )


@pytest.fixture
def make_main_window(qtbot, tmp_path) -> Iterator[Callable]:
    """Build MainWindows with settings in a temp file; all are closed after the test."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    windows = []

    def make() -> MainWindow:
        settings = QSettings(str(tmp_path / f"settings{len(windows)}.ini"), QSettings.Format.IniFormat)
        settings.setValue("runs/root", str(tmp_path / "runs"))  # never the user's ~/reconstruct-runs
        window = MainWindow(settings)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture(scope="session")
def small_demo(request, tmp_path_factory) -> Path:
    """The demo scene with 12 views at 64 px, kept in pytest's cache (keyed by the recipe's hash) when
    there is one (not under `-p no:cacheprovider`), else built once per session."""
    from recon.demo import demo_dataset, load_recipe

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("reconstruct-demo") if cache is not None else tmp_path_factory.mktemp("demo")
    try:
        return demo_dataset(folder, recipe=load_recipe(views=12, size=64))
    except RuntimeError as exc:  # no EGL context: the demo is rendered with our GL rasterizer
        pytest.skip(f"cannot render the demo without OpenGL: {exc}")


@pytest.fixture
def run_to_end(qtbot) -> Callable:
    """Start a run in a window (scene loaded) and wait for it to finish; returns the run record."""

    def run(window, iterations: int, timeout_ms: int = 60_000) -> dict:
        window.run_panel.iterations.setValue(iterations)
        window.run_panel.start_button.click()
        assert window.running, window.last_error
        qtbot.waitUntil(lambda: not window.running, timeout=timeout_ms)
        assert window.run_result is not None, window.last_error
        return window.run_result

    return run


@pytest.fixture
def run_method_from_box(make_main_window, small_dataset, qtbot, run_to_end) -> Callable:
    """A new window, the small dataset opened, `method` picked in the Method box (which must offer
    it under its registry title), the CPU, `iterations` run to the end: (window, run record)."""
    from recon.methods.registry import get_method

    def run(method: str, iterations: int) -> tuple:
        window = make_main_window()
        box = window.run_panel.method
        assert box.findData(method) >= 0 and box.itemText(box.findData(method)) == get_method(method).title
        with qtbot.waitSignal(window.loader.loaded, timeout=30_000):
            window.open_dataset(small_dataset)
        box.setCurrentIndex(box.findData(method))
        window.run_panel.device.setCurrentIndex(window.run_panel.device.findData("cpu"))
        return window, run_to_end(window, iterations)

    return run
