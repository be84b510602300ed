"""Runs one reconstruction in a QThread; the UI sees it only through signals carrying immutable values.

The worker builds the session itself (loading at the working resolution and the visual hull take
seconds) and drives it through `recon.runner.run`, the loop the CLI uses, so a GUI run leaves the
same run folder and checkpoints as `reconstruct run`. Control calls (`pause`, `resume`, `stop`,
`set_live_rate`) are thread-safe and take effect after the step in progress, i.e. within one
iteration. Snapshots go out at most `live_rate` times a second (0 = live view off), step records
in batches a few times a second, so the UI thread never sees per-iteration traffic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QDeadlineTimer, QObject, QThread, Signal

from recon.errors import ReconstructError
from recon.methods.config import NDSConfig
from recon.methods.nds import NDSSession, StepRecord

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.25  # step records reach the UI at most 4 times a second
STOP_WAIT_SECONDS = 2.0  # how long a stop may block the UI thread before the user is told


@dataclass(frozen=True)
class RunRequest:
    """What to run: a new reconstruction of `dataset`, or `resume` a run folder; outputs go to `out`.

    Attributes:
        dataset: dataset folder or main file (new run); ignored when resuming.
        out: run folder (for a resume, the folder itself).
        config: NDS settings of a new run (ignored when resuming: the checkpoint has its own).
        device: "auto", "cpu" or "cuda".
        renderer: "auto", "gl" or "nvdiffrast".
        image_scale: working resolution as a factor of the dataset's; None = automatic.
        resume: True to continue the run in `out` from its checkpoint.
        live_rate: snapshots per second for the live view; 0 turns the live view off.
        holdout: leave the last view out of the optimisation and report its PSNR as the run goes.
        until: resume only: stop at this iteration (extending the schedule if needed); None = the
            run's own schedule.
    """

    dataset: Path | None
    out: Path
    config: NDSConfig = field(default_factory=NDSConfig)
    device: str = "auto"
    renderer: str = "auto"
    image_scale: float | None = None
    resume: bool = False
    live_rate: float = 2.0
    holdout: bool = False
    until: int | None = None


def resolve_device(name: str) -> tuple[str, str]:
    """(device, why) for a device choice; 'auto' picks CUDA when PyTorch sees one."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda", f"auto: CUDA device {torch.cuda.get_device_name(0)}"
        return "cpu", "auto: no CUDA device visible to PyTorch"
    if name == "cuda" and not torch.cuda.is_available():
        raise ReconstructError("device cuda: no CUDA device is available to PyTorch; choose cpu or auto")
    return name, "chosen"


class SessionWorker(QObject):
    """Owns the NDSSession; lives in its own QThread (see `SessionThread`)."""

    started = Signal(dict)  # what was chosen: device, why, renderer, resolution, scale, out, iteration, total
    steps = Signal(list)  # list[StepRecord], batched
    snapshot = Signal(object)  # recon.methods.nds.Snapshot
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
        self.session: NDSSession | None = None  # touched only in the worker thread
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

    def _run(self) -> None:
        from recon import runner
        from recon.data import load

        req = self.request
        device, why = resolve_device(req.device)
        if req.resume:
            record = _read_run_record(req.out)
            scale = float(record.get("image_scale", 1.0))
            self.status.emit(f"Loading {record['dataset']['source']} for the resume …")
            held = record.get("holdout") or []
            scene = self._hold_out(load(record["dataset"]["source"], image_scale=scale), [held] if isinstance(held, str) else held)
            self.status.emit("Restoring the checkpoint …")
            session = NDSSession.load(req.out / runner.CHECKPOINT, scene, device=device, renderer=req.renderer)
            if req.until is not None and req.until > session.config.iterations:
                session.config = session.config.replace(iterations=req.until)
        else:
            if req.dataset is None:
                raise ReconstructError("no dataset to reconstruct")
            scale, config = req.image_scale, req.config
            if scale is None:  # the CLI's --image-scale auto
                scale, changes = runner.auto_resolution(device)
                # The panel's iteration count is the user's; only the image levels follow the device.
                config = config.replace(coarse_images=bool(changes.get("coarse_images")))
            self.status.emit("Loading the views at the working resolution …")
            scene = load(req.dataset, image_scale=scale)
            scale = scene.image_scale
            if req.holdout and len(scene.views) >= 3:
                scene = self._hold_out(scene, [scene.views[-1].name])
            self.status.emit("Building the initial mesh (visual hull) …")
            session = NDSSession(scene, config, device=device, renderer=req.renderer)
        self.session = session
        total = session.config.iterations if req.until is None else min(req.until, session.config.iterations)
        width, height = scene.resolution
        self.started.emit(
            {
                "device": device,
                "why": why,
                "renderer": session.renderer.backend,
                "resolution": (width, height),
                "scale": scale,
                "out": str(req.out),
                "iteration": session.iteration,
                "total": total,
                "views": len(scene.views),
                "scene": scene,  # at the working resolution, held-out view removed
            }
        )
        self.snapshot.emit(session.snapshot())
        self._last_batch = self._last_snapshot = time.perf_counter()
        self.status.emit(f"Reconstructing {len(scene.views)} views at {width}×{height} on {device}")
        extra = {"image_scale": scale, "gui": True}
        if self.heldout is not None:
            extra["holdout"] = [self.heldout.name]  # the CLI's form: `reconstruct eval --views` uses it
            self.psnr_every = max(10, session.config.iterations // 20)
            self._report_psnr()
        result = runner.run(
            session, req.out, max(0, total - session.iteration), on_step=self._on_step, extra=extra, should_stop=self._stop.is_set
        )
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

    def _hold_out(self, scene, names: list[str]):
        """The scene without the named view (kept aside for PSNR); unchanged when `names` is empty.

        recon.data.holdout re-estimates an estimated bounding box from the training views, so the
        held-out silhouette never reaches the optimisation.
        """
        from recon.data import holdout

        if not names:
            return scene
        train, held = holdout.split(scene, names)
        self.heldout = held[0]
        log.info("holding out view %s for PSNR; optimising on %d views", held[0].name, len(train.views))
        return train

    def _report_psnr(self) -> float:
        """PSNR of the held-out photo against the current mesh shaded by the current shader (over black)."""
        from recon.eval import psnr
        from recon.mesh import Mesh
        from recon.shaded_views import render_shaded

        session, view = self.session, self.heldout
        snap = session.snapshot()
        mesh = Mesh(torch.from_numpy(snap.world_vertices), torch.from_numpy(snap.faces))
        rgb, _ = render_shaded(mesh, session.shader, session.normalization, view.camera, session.renderer)
        value = psnr(rgb, view.image * view.mask[..., None])
        self.psnr.emit(snap.iteration, float(value))
        return float(value)

    def _flush(self) -> None:
        if self._batch:
            self.steps.emit(self._batch)
            self._batch = []
        self._last_batch = time.perf_counter()


def _read_run_record(folder: Path) -> dict[str, Any]:
    from recon.run_checks import check_run_record
    from recon.validate import Invalid

    path = Path(folder) / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReconstructError(f"{path}: missing; choose a folder written by a run (it holds run.json and checkpoint/)") from None
    except (OSError, ValueError) as exc:
        raise ReconstructError(f"{path}: unreadable ({exc})") from None
    try:
        check_run_record(record)
    except Invalid as exc:
        raise ReconstructError(f"{path}: not a run record of this program: {exc}") from None
    return record


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
