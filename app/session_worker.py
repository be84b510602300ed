"""Runs one reconstruction in a QThread; the UI sees it only through signals carrying immutable values.

The worker opens the run through `recon.runs` (loading at the working resolution and the visual
hull take seconds), the module the CLI calls, and drives it there too, so a GUI run uses the
config the CLI would and leaves the same run folder and checkpoints as `reconstruct run`. This
module adds only threading and signals. Control calls (`pause`, `resume`, `stop`,
`set_live_rate`) are thread-safe and take effect after the step in progress, i.e. within one
iteration. Snapshots go out at most `live_rate` times a second (0 = live view off), step records
in batches a few times a second, so the UI thread never sees per-iteration traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QDeadlineTimer, QObject, QThread, Signal

from recon.errors import ReconstructError
from recon.loss_history import step_records
from recon.methods.session import Session, StepRecord
from recon.runs import OpenedRun, ResumeOptions, RunOptions

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.25  # step records reach the UI at most 4 times a second
STOP_WAIT_SECONDS = 2.0  # how long a stop may block the UI thread before the user is told


@dataclass(frozen=True)
class RunRequest:
    """What to run — a new run (`RunOptions`) or a resume (`ResumeOptions`) — and the live-view rate.

    Attributes:
        what: the options `recon.runs.open_run` or `resume_run` takes.
        live_rate: snapshots per second for the live view; 0 turns the live view off.
    """

    what: RunOptions | ResumeOptions
    live_rate: float = 2.0

    @property
    def out(self) -> Path:
        return Path(self.what.out)


class SessionWorker(QObject):
    """Owns the run (`recon.runs.OpenedRun`); lives in its own QThread (see `SessionThread`)."""

    started = Signal(dict)  # what was chosen: device, why, renderer, resolution, scale, out, iteration, total, history
    steps = Signal(list)  # list[StepRecord], batched
    snapshot = Signal(object)  # recon.methods.session.Snapshot
    paused = Signal(int)  # the iteration it paused after
    psnr = Signal(int, float)  # iteration, PSNR (dB) of the held-out view
    status = Signal(str)
    finished = Signal(dict)  # the run record (run.json contents), "stopped": True when stopped early
    failed = Signal(str)

    def __init__(self, request: RunRequest) -> None:
        super().__init__()
        self.request = request
        self._go = threading.Event()
        self._go.set()
        self._stop = threading.Event()
        self._rate_lock = threading.Lock()
        self._live_rate = float(request.live_rate)
        self._batch: list[StepRecord] = []
        self._last_batch = 0.0
        self._last_snapshot = 0.0
        self.opened: OpenedRun | None = None  # touched only in the worker thread
        self.heldout = None  # recon.data.View left out of the optimisation, if any
        self.step_clock: list[float] = []  # perf_counter after each step (measuring the live view's cost)
        self.psnr_every = 0

    # ---- control (any thread) ----------------------------------------------------------------
    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        """Ask the run to end after the current step; outputs and a checkpoint are written."""
        self._stop.set()
        self._go.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def is_paused(self) -> bool:
        return not self._go.is_set()

    def set_live_rate(self, rate: float) -> None:
        with self._rate_lock:
            self._live_rate = max(0.0, float(rate))

    @property
    def live_rate(self) -> float:
        with self._rate_lock:
            return self._live_rate

    # ---- the run (worker thread) -------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except ReconstructError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug still reaches the user as a message, never a silent dead thread
            log.exception("the reconstruction failed")
            self.failed.emit(f"unexpected error ({exc.__class__.__name__}: {exc}); see the log for details")
        finally:
            if self.session is not None:  # its GL context belongs to this thread: free it here
                self.session.close()

    @property
    def session(self) -> Session | None:
        """The run's session, once opened (worker thread; the UI reads only immutable parts)."""
        return None if self.opened is None else self.opened.session

    def _run(self) -> None:
        from recon import runs

        what = self.request.what
        if isinstance(what, ResumeOptions):
            opened = runs.resume_run(what, status=self.status.emit)
        else:
            opened = runs.open_run(what, status=self.status.emit)
        self.opened, session, scene = opened, opened.session, opened.scene
        if opened.heldout:
            self.heldout = opened.heldout[0]
        width, height = scene.resolution
        self.started.emit(
            {
                "device": opened.device,
                "why": opened.why,
                "renderer": session.renderer.backend,
                "resolution": (width, height),
                "levels": runs.image_levels(opened),  # (from iteration, size) the steps work at
                "scale": opened.extra["image_scale"],
                "out": str(opened.folder.path),
                "iteration": session.iteration,
                "total": opened.total,
                "views": len(scene.views),
                "scene": scene,  # at the working resolution, held-out view removed
                "history": step_records(session.history),  # a resumed run's steps so far, for the plots
            }
        )
        self.snapshot.emit(session.snapshot())
        self._last_batch = self._last_snapshot = time.perf_counter()
        levels = runs.describe_levels(opened, width, height)
        self.status.emit(f"Reconstructing {len(scene.views)} views at {levels} on {opened.device}")
        if self.heldout is not None:
            self.psnr_every = max(10, session.config.iterations // 20)
            self._report_psnr()
        result = runs.drive(opened, on_step=self._on_step, should_stop=self._stop.is_set, extra={"gui": True})
        if self.heldout is not None:
            result["psnr_heldout"] = self._report_psnr()
        self._flush()
        self.snapshot.emit(session.snapshot())
        self.finished.emit(result)

    def _on_step(self, record: StepRecord) -> None:
        """After every step: batch the record, maybe hand out a snapshot, and wait here while paused."""
        self.step_clock.append(time.perf_counter())
        self._batch.append(record)
        if self.psnr_every and record.iteration % self.psnr_every == 0:
            self._report_psnr()
        now = time.perf_counter()
        if now - self._last_batch >= BATCH_SECONDS:
            self._flush()
        rate = self.live_rate
        if rate > 0 and now - self._last_snapshot >= 1.0 / rate:
            self._last_snapshot = now
            self.snapshot.emit(self.session.snapshot())
        if not self._go.is_set() and not self._stop.is_set():
            self._flush()
            self.snapshot.emit(self.session.snapshot())
            self.paused.emit(record.iteration)
            self._go.wait()
            self._last_batch = self._last_snapshot = time.perf_counter()

    def _report_psnr(self) -> float:
        """PSNR of the held-out photo against the current mesh shaded by the current shader (over black)."""
        from recon.view_eval import compare_view

        session = self.session
        snap = session.snapshot()
        value = float(compare_view(snap.appearance(session.shader), self.heldout, session.renderer)["psnr"])
        self.psnr.emit(snap.iteration, value)
        return value

    def _flush(self) -> None:
        if self._batch:
            self.steps.emit(self._batch)
            self._batch = []
        self._last_batch = time.perf_counter()


class SessionThread(QObject):
    """A SessionWorker in a QThread, with the worker's signals forwarded on the owner's thread."""

    def __init__(self, request: RunRequest, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = SessionWorker(request)
        self.thread = QThread()
        self.thread.setObjectName("reconstruction")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.finished.connect(self.thread.quit)
        self.worker.failed.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def stop_and_wait(self, timeout_s: float = STOP_WAIT_SECONDS) -> bool:
        """Stop after the current step and wait at most `timeout_s` for the outputs, checkpoint and thread.

        Returns whether the thread has ended; if not, it is still finishing its step and writes,
        and the caller decides whether to tell the user and wait again.
        """
        self.worker.stop()
        self.thread.quit()
        return self.thread.wait(QDeadlineTimer(int(1000 * timeout_s)))
