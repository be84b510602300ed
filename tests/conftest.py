"""Shared fixtures: where the real datasets are, and whether a GL context can be made."""

from __future__ import annotations

from pathlib import Path

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
