"""One job at a time on its own QThread, reporting through signals on the owner's thread.

Loading a dataset and exporting a mesh both take seconds and must never freeze the window; both
need the same life cycle (start, report, clean up the thread, wait at shutdown) and the same rule
that any failure, even an unexpected bug, ends as a one-line message instead of a dead app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from recon.errors import ReconstructError

log = logging.getLogger(__name__)

Work = Callable[[Callable[[str], None]], Any]  # work(report) -> result; report(text) shows progress


class _Worker(QObject):
    progress = Signal(str)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, work: Work, label: str) -> None:
        super().__init__()
        self.work, self.label = work, label

    def run(self) -> None:
        try:
            self.succeeded.emit(self.work(self.progress.emit))
        except ReconstructError as exc:  # already names the file and what is wrong
            self.failed.emit(str(exc))
        except (OSError, ValueError) as exc:
            self.failed.emit(f"{self.label}: {exc}")
        except Exception as exc:
            log.exception("unexpected error in %s", self.label)
            self.failed.emit(f"{self.label}: unexpected error ({exc.__class__.__name__}: {exc})")


class BackgroundJob(QObject):
    """Runs `work` on a QThread; `progress`, `finished` (the result) and `failed` arrive on the owner's thread."""

    progress = Signal(str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, what: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.what = what
        self._thread: QThread | None = None
        self._worker: _Worker | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start_work(self, work: Work, label: str) -> None:
        """Start `work` (label: the file or thing it is about, for messages); one job at a time."""
        if self.busy:
            raise RuntimeError(f"{self.what} is already running")
        self._thread = QThread()
        self._worker = _Worker(work, label)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.succeeded.connect(self._on_succeeded)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()

    def wait(self) -> None:
        """Block until the running job (if any) has ended: at shutdown a file is whole or not there."""
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()

    def _cleanup(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._thread = self._worker = None

    def _on_succeeded(self, result: object) -> None:
        self._cleanup()
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._cleanup()
        self.failed.emit(message)
