"""Loads a dataset off the UI thread; reports a Scene or a one-line reason through signals."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.background import BackgroundJob
from recon.data import load


class DatasetLoader(BackgroundJob):
    """One load at a time in a QThread; `loaded` (a Scene) / `failed` arrive on the owner's thread."""

    loaded = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("a dataset load", parent)
        self.finished.connect(self.loaded)

    def start(self, path: Path) -> None:
        self.start_work(lambda _report: load(path), str(path))
