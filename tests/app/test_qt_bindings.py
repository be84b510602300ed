"""The installed Qt bindings keep None's reference count: PySide6 6.12.0 on Python 3.11 does not.

That release drops a reference to None on every void call (`setText`, `update`, …), so a busy
window aborts the interpreter ("Fatal Python error: none_dealloc") after some thousands of calls.
pyproject.toml excludes it; this test fails if such a build is installed anyway.
"""

from __future__ import annotations

import sys


def test_void_qt_calls_do_not_lose_references_to_none(qapp) -> None:
    from PySide6.QtWidgets import QLabel

    label = QLabel("x")
    before = sys.getrefcount(None)
    for _ in range(2_000):
        label.setText("y")
    assert before - sys.getrefcount(None) < 100
