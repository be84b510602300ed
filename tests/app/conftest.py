"""Qt fixtures: real windows on a real X server (Xvfb in CI), each closed after its test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from recon.data.formats import nds
from recon.data.scene import View
from render.camera import Camera

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


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """An NDS folder of 5 views of a disk-shaped object from a ring of cameras."""
    views = []
    for i in range(5):
        angle = 2 * np.pi * i / 5
        eye = np.array([3 * np.cos(angle), 1.0, 3 * np.sin(angle)])
        cam = Camera.look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]), 40.0, 48, 40)
        v, u = np.mgrid[0:40, 0:48] + 0.5
        centre, _ = cam.project(np.zeros((1, 3)))
        mask = ((u - centre[0, 0]) ** 2 + (v - centre[0, 1]) ** 2 < 8**2).astype(np.float32)
        image = np.stack([mask, 0.5 * mask, 0.2 + 0 * mask], axis=-1).astype(np.float32)
        views.append(View(f"v{i}", image, mask, cam))
    return nds.write(views, np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]]), tmp_path / "small")


@pytest.fixture(scope="session")
def small_demo(request, tmp_path_factory) -> Path:
    """The demo scene with 12 views at 64 px, kept in pytest's cache (keyed by the recipe's hash).

    With the cache plugin off (`-p no:cacheprovider`) it is built once per session instead.
    """
    from recon.demo import demo_dataset, load_recipe

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("reconstruct-demo") if cache is not None else tmp_path_factory.mktemp("reconstruct-demo")
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
