"""A small demo dataset (12 views at 64 px), built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.demo import demo_dataset, load_recipe


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    try:
        return demo_dataset(tmp_path_factory.mktemp("demo"), recipe=load_recipe(views=12, size=64))
    except RuntimeError as exc:  # no EGL context: the demo is rendered with our GL rasterizer
        pytest.skip(f"cannot render the demo without OpenGL: {exc}")
