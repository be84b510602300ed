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
