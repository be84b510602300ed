"""The window's one run: the worker thread, what the run reported, and its thread-safe controls.

The main window decides what the user sees; this object decides nothing about the UI. It starts
a `SessionThread` for a `RunRequest`, keeps what the run said about itself (`info`, `result`,
`paused_at`), forwards the worker's signals on the window's thread, and joins the thread before
it reports the end (`finished` or `failed`), so `running` is already False for whoever handles it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.session_worker import STOP_WAIT_SECONDS, RunRequest, SessionThread, SessionWorker

log = logging.getLogger(__name__)


class RunController(QObject):
    """Owns at most one run (`SessionThread`); see the module docstring."""

    started = Signal(dict)  # SessionWorker.started: device, why, renderer, resolution, scale, out, …, scene
    steps = Signal(list)  # list[StepRecord], batched
    snapshot = Signal(object)  # recon.methods.session.Snapshot
    paused = Signal(int)  # the iteration it paused after
    psnr = Signal(int, float)  # iteration, PSNR (dB) of the held-out view
    status = Signal(str)
    finished = Signal(dict)  # the run record; the thread is joined already
    failed = Signal(str)  # the message; the thread is joined already

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: SessionThread | None = None
        self.info: dict = {}
        self.result: dict | None = None
        self.paused_at: int | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def worker(self) -> SessionWorker | None:
        return None if self._thread is None else self._thread.worker

    @property
    def is_paused(self) -> bool:
        return self._thread is not None and self._thread.worker.is_paused

    def start(self, request: RunRequest) -> None:
        """Start `request` on a new thread (the caller checked that none is running)."""
        assert self._thread is None, "a run is going on already"
        self.result, self.paused_at = None, None
        self.info = {"out": str(request.out)}
        self._thread = SessionThread(request, self)
        worker = self._thread.worker
        worker.started.connect(self._on_started)
        worker.steps.connect(self.steps)
        worker.snapshot.connect(self.snapshot)
        worker.paused.connect(self._on_paused)
        worker.psnr.connect(self.psnr)
        worker.status.connect(self.status)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._thread.start()
        log.info("run started: %s", request.out)

    def show_saved(self, out: Path, record: dict) -> None:
        """A run read from its folder, nothing running: it is the last run (materials, export, Resume go there)."""
        assert self._thread is None, "a run is going on"
        self.info, self.result, self.paused_at = {"out": str(out)}, record, None

    # ---- controls (the worker's are thread-safe) ---------------------------------------------
    def pause(self) -> None:
        if self._thread is not None:
            self._thread.worker.pause()

    def resume(self) -> None:
        if self._thread is not None:
            self._thread.worker.resume()

    def stop(self) -> None:
        """Stop after the current step; outputs and a checkpoint are written, then `finished` arrives."""
        if self._thread is not None:
            self._thread.worker.stop()

    def set_live_rate(self, rate: float) -> None:
        if self._thread is not None:
            self._thread.worker.set_live_rate(rate)

    def stop_and_wait(self, timeout_s: float = STOP_WAIT_SECONDS) -> bool:
        """Window closing: stop, let the checkpoint be written, join within `timeout_s`; no signal
        follows. Returns whether the run's thread has ended (call again to keep waiting)."""
        if self._thread is None:
            return True
        if not self._thread.stop_and_wait(timeout_s):
            return False
        self._thread = None
        return True

    # ---- what the worker reports -------------------------------------------------------------
    def _on_started(self, info: dict) -> None:
        self.info = {k: v for k, v in info.items() if k not in ("scene", "history")}
        self.started.emit(info)

    def _on_paused(self, iteration: int) -> None:
        self.paused_at = iteration
        self.paused.emit(iteration)

    def _on_finished(self, result: dict) -> None:
        self.result = result
        self._join()
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._join()
        self.failed.emit(message)

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.thread.quit()
            self._thread.thread.wait()
            self._thread.deleteLater()
        self._thread = None
