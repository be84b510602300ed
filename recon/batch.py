"""`reconstruct batch`: a collection of datasets, one Ray task each, on this machine or a Ray cluster.

Ray (`pip install -e ".[cluster]"`) schedules the tasks: a local instance by default, a cluster
by address. Each task writes the ordinary run folder OUT/<name>/ through `recon.runs` (so resume,
eval, export, materials and the GUI treat it as any run), honours its resources (`num_cpus` sets
torch's threads; a GPU task gets its own GPU), and is retried by Ray when its worker dies; a
retried or re-submitted task resumes from the run's checkpoint. A dataset that fails (a broken
file, a refused setting) gets its one-line error in the summary and the others go on.

Progress travels from the tasks to the driver through a small actor, so it needs no shared
storage; the run folders themselves must be on storage every node reaches (or the datasets small
enough for Ray's working-directory upload, with OUT on shared storage).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recon.atomic import write_text_atomic
from recon.errors import ReconstructError
from recon.run_folder import RunFolder

log = logging.getLogger(__name__)

BATCH_RECORD = "batch.json"
REPORT_EVERY = 0.5  # seconds between a task's progress reports


@dataclass(frozen=True)
class BatchItem:
    """One dataset of the batch and the run folder it goes to."""

    name: str
    dataset: Path
    out: Path


@dataclass
class ItemResult:
    """What the summary says of one dataset (also a row of batch.json)."""

    name: str
    dataset: str
    status: str  # "done", "skipped" (finished before), "failed"
    iterations: int = 0
    seconds: float = 0.0
    faces: int = 0
    chamfer_rel: float | None = None
    psnr: float | None = None
    error: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class BatchOptions:
    """How each run is made and how the batch is spread: `run` is `recon.runs.RunOptions` without
    dataset and folder (every run option of `reconstruct run` applies to each dataset)."""

    run: dict[str, Any] = field(default_factory=dict)
    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_runs: int | None = None
    retries: int = 1


def discover(sources: Sequence[Path | str], out: Path | str) -> list[BatchItem]:
    """The datasets named: each source that a loader recognises, else each subfolder of it that one does.

    Raises:
        ReconstructError: a source that is neither, or no dataset at all, or two with one name.
    """
    from recon.data import detect

    found: list[Path] = []
    for source in map(Path, sources):
        try:
            detect(source)
            found.append(source)
            continue
        except ReconstructError:
            if not source.is_dir():
                raise
        inner = []
        for sub in sorted(p for p in source.iterdir() if p.is_dir()):
            try:
                detect(sub)
                inner.append(sub)
            except ReconstructError:
                continue
        if not inner:
            raise ReconstructError(f"{source}: neither a dataset nor a folder of datasets (no subfolder is one)")
        found += inner
    if not found:
        raise ReconstructError("no datasets given")
    items, names = [], set()
    for path in found:
        name = path.name if path.is_dir() else path.parent.name
        if name in names:
            raise ReconstructError(f"two datasets are named {name!r} ({path}); their run folders would collide in {out}")
        names.add(name)
        items.append(BatchItem(name, path.resolve(), Path(out).resolve() / name))
    return items


def run_state(out: Path) -> str:
    """"done" (its schedule finished), "partial" (a checkpoint to resume) or "new"."""
    folder = RunFolder(out)
    if not folder.holds_run:
        return "new"
    try:
        record = folder.record()
        done = int(record.get("iteration", 0)) >= int(record.get("config", {}).get("iterations", 1 << 30))
    except (ReconstructError, TypeError, ValueError):
        return "partial"
    return "done" if done else "partial"


def _figures(item: BatchItem, record: dict[str, Any]) -> dict[str, Any]:
    """Chamfer when the dataset ships a reference (`reference_mesh`), held-out PSNR when views were kept out."""
    from recon.eval import chamfer, reference_mesh

    figures: dict[str, Any] = {}
    reference = reference_mesh(item.dataset)
    if reference is not None:
        from recon.mesh import read_trimesh

        built = read_trimesh(RunFolder(item.out).mesh_file)
        figures["chamfer_rel"] = float(chamfer(built, read_trimesh(reference))["chamfer_rel"])
    if record.get("holdout"):
        from recon.view_eval import evaluate_run_views

        figures["psnr"] = float(evaluate_run_views(item.out, item.dataset)["psnr"])
    return figures


def run_item(item: BatchItem, run_options: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Start or resume one run to its end (inside a Ray task, or anywhere); returns its summary row.

    Errors the user can act on (`ReconstructError`) become a "failed" row with the one line; a
    dying worker is not caught here: Ray retries the task, which then resumes the checkpoint.
    """
    from recon import runs

    started = time.perf_counter()
    row = ItemResult(item.name, str(item.dataset), "failed")
    try:
        state = run_state(item.out)
        if state == "done":
            record = RunFolder(item.out).record()
            row.status = "skipped"
        else:
            if state == "partial":
                opened = runs.resume_run(runs.ResumeOptions(item.out, **_resume_fields(run_options)))
            else:
                options = runs.RunOptions(dataset=item.dataset, out=item.out, overwrite=True, **run_options)
                opened = runs.open_run(options)
            last = [0.0]

            def on_step(step) -> None:
                now = time.perf_counter()
                if now - last[0] >= REPORT_EVERY or step.iteration >= opened.total:
                    last[0] = now
                    report({"name": item.name, "iteration": step.iteration, "total": opened.total, "pid": os.getpid()})

            report({"name": item.name, "iteration": opened.session.iteration, "total": opened.total, "pid": os.getpid()})
            record = runs.drive(opened, on_step=on_step)
            row.status = "done"
        row.iterations = int(record.get("iteration", 0))
        row.seconds = float(record.get("seconds", time.perf_counter() - started))
        row.faces = int(record.get("mesh", {}).get("faces", 0))
        for key, value in _figures(item, record).items():
            setattr(row, key, value)
    except ReconstructError as exc:
        row.error = str(exc).splitlines()[0]
    return asdict(row)


def _resume_fields(run_options: dict[str, Any]) -> dict[str, Any]:
    return {k: run_options[k] for k in ("device", "renderer", "profile") if k in run_options}


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ReconstructError(f"reconstruct batch needs Ray ({exc}); install the cluster extra: pip install -e '.[cluster]'") from None
    return ray


def run_batch(
    items: Sequence[BatchItem],
    options: BatchOptions,
    on_progress: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> list[ItemResult]:
    """One Ray task per item, at most `max_runs` at a time; returns the rows in the items' order.

    `on_progress` receives, about twice a second, every running task's last report
    ({"iteration", "total", "pid"} by name) and the names finished so far under "_finished".
    """
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return _schedule(ray, items, options, on_progress)
    finally:
        if started_here:
            ray.shutdown()


def _schedule(ray: Any, items: Sequence[BatchItem], options: BatchOptions, on_progress) -> list[ItemResult]:
    board = ray.remote(num_cpus=0)(_ProgressBoard).remote()

    def task(item: BatchItem, run_options: dict[str, Any], threads: int) -> dict[str, Any]:
        import torch

        torch.set_num_threads(max(1, threads))
        attempt = ray.get(board.attempt.remote(item.name))
        row = run_item(item, run_options, lambda entry: board.report.remote(entry))
        row["attempts"] = attempt
        return row

    remote = ray.remote(task).options(
        num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=options.retries, retry_exceptions=False
    )
    limit = options.max_runs or len(items)
    pending = list(items)
    running: dict[Any, BatchItem] = {}
    rows: dict[str, ItemResult] = {}
    threads = max(1, int(options.cpus_per_run))
    while pending or running:
        while pending and len(running) < limit:
            item = pending.pop(0)
            running[remote.remote(item, options.run, threads)] = item
        ready, _ = ray.wait(list(running), num_returns=1, timeout=REPORT_EVERY)
        for ref in ready:
            item = running.pop(ref)
            try:
                rows[item.name] = ItemResult(**ray.get(ref))
            except Exception as exc:  # the worker died more often than --retries allows, or Ray failed it
                attempts = ray.get(board.attempts.remote(item.name))
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                rows[item.name] = ItemResult(item.name, str(item.dataset), "failed", error=f"{type(exc).__name__}: {reason}",
                                             attempts=attempts)  # fmt: skip
        if on_progress is not None:
            state = ray.get(board.state.remote())
            state["_finished"] = sorted(rows)
            on_progress(state)
    return [rows[item.name] for item in items]


class _ProgressBoard:
    """The tasks' last progress reports and attempt counts (a Ray actor; no shared storage needed)."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.tries: dict[str, int] = {}

    def report(self, entry: dict[str, Any]) -> None:
        self.reports[entry["name"]] = {k: v for k, v in entry.items() if k != "name"}

    def attempt(self, name: str) -> int:
        self.tries[name] = self.tries.get(name, 0) + 1
        return self.tries[name]

    def attempts(self, name: str) -> int:
        return self.tries.get(name, 0)

    def state(self) -> dict[str, Any]:
        return {name: dict(entry) for name, entry in self.reports.items()}


def write_summary(out: Path | str, rows: Sequence[ItemResult], options: BatchOptions) -> Path:
    """OUT/batch.json: the options and one row per dataset."""
    import json

    record = {
        "options": {**asdict(options), "run": {k: str(v) if isinstance(v, Path) else v for k, v in options.run.items()}},
        "runs": [asdict(row) for row in rows],
        "all_succeeded": all(row.status != "failed" for row in rows),
    }
    path = Path(out) / BATCH_RECORD
    write_text_atomic(path, json.dumps(record, indent=1))
    return path


def format_table(rows: Sequence[ItemResult]) -> str:
    """The printed summary: dataset, status, iterations, seconds, faces, Chamfer, held-out PSNR."""
    head = f"{'dataset':<24} {'status':<8} {'iters':>6} {'seconds':>8} {'faces':>8} {'chamfer %':>9} {'psnr dB':>8}"
    lines = [head]
    for r in rows:
        chamfer = f"{100 * r.chamfer_rel:.3f}" if r.chamfer_rel is not None else "—"
        psnr = f"{r.psnr:.2f}" if r.psnr is not None else "—"
        lines.append(f"{r.name:<24} {r.status:<8} {r.iterations:>6} {r.seconds:>8.1f} {r.faces:>8} {chamfer:>9} {psnr:>8}")
        if r.error:
            lines.append(f"  {r.error}")
    return "\n".join(lines)
