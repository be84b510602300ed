"""Loads a dataset off the UI thread; reports a Scene or a one-line reason through signals."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from recon.data import Scene, load
from recon.errors import ReconstructError

log = logging.getLogger(__name__)


class _LoadJob(QObject):
    finished = Signal(object)  # Scene
    failed = Signal(str)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def run(self) -> None:
        try:
            self.finished.emit(load(self.path))
        except ReconstructError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # an unexpected bug still becomes a message, never a dead app
            log.exception("unexpected error loading %s", self.path)
            self.failed.emit(f"{self.path}: unexpected error ({exc.__class__.__name__}: {exc})")


class DatasetLoader(QObject):
    """One load at a time in a QThread; `loaded` / `failed` arrive on the owner's thread."""

    loaded = Signal(object)  # Scene
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._job: _LoadJob | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, path: Path) -> None:
        if self.busy:
            raise RuntimeError("a dataset is already loading")
        self._thread = QThread()
        self._job = _LoadJob(path)
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.finished.connect(self._on_finished)
        self._job.failed.connect(self._on_failed)
        self._thread.start()

    def wait(self) -> None:
        """Block until the running load (if any) has ended; used at shutdown."""
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()

    def _cleanup(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._thread = self._job = None

    def _on_finished(self, scene: Scene) -> None:
        self._cleanup()
        self.loaded.emit(scene)

    def _on_failed(self, message: str) -> None:
        self._cleanup()
        self.failed.emit(message)
