"""Shared fixtures: where the real datasets are, whether a GL context can be made, a tiny dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; skips with a reason when absent (a user's clone lacks it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (only the project's own checkout has them)")
    return SHARED_DATA


_GL_REASON: list[str | None] = []


def _gl_unavailable() -> str | None:
    """Why no OpenGL 4.3 context can be made through EGL here, or None; probed once per session."""
    if not _GL_REASON:
        try:
            import moderngl

            ctx = moderngl.create_standalone_context(backend="egl", require=430)
            ctx.release()
            _GL_REASON.append(None)
        except Exception as exc:  # any failure to create a context means: skip, saying why
            _GL_REASON.append(f"no OpenGL 4.3+ context through EGL ({exc}); install Mesa EGL (scripts/setup.sh)")
    return _GL_REASON[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `gl` skip with the reason when this machine cannot make an EGL context."""
    if item.get_closest_marker("gl") is not None:
        reason = _gl_unavailable()
        if reason:
            pytest.skip(reason)


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """An NDS folder of 5 views (48×40) of a disk-shaped object from a ring of cameras."""
    from recon.data.formats import nds
    from recon.data.scene import View
    from render.camera import Camera

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
