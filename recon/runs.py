"""Start or resume a reconstruction: the one module the CLI and the GUI call to run a method.

    front end (cli.cmd_run / app SessionWorker)
      → RunOptions → plan(): device resolved once, what "auto" means there for the method
      → open_run(): load at the working scale, hold views out, build the method's session
        (resume_run(): read run.json, find the method, reload the same views, restore the checkpoint)
      → drive(): recon.runner.run steps the session, writes the RunFolder, calls back per step
      → run.json record back to the front end

A front end turns its widgets or arguments into `RunOptions` and shows what `OpenedRun` says; it
decides nothing about devices, scales, schedules or folders itself, so a GUI run and a CLI run
of the same settings use the same config and leave the same run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon.data import CPU_MAX_SIDE, AutoScale, Scene, View
from recon.data.images import ImageScale
from recon.errors import ReconstructError
from recon.methods.registry import DEFAULT, Method, get_method
from recon.methods.session import ImageLevels, Session, StepRecord
from recon.run_folder import RunFolder
from recon.run_totals import earlier_sessions
from recon.settings import apply_settings

log = logging.getLogger(__name__)

Status = Callable[[str], None]


def use_deterministic_kernels() -> None:
    """PyTorch's deterministic kernels where it has them (`--deterministic`, recorded in run.json).

    On the CPU every step is deterministic already. On CUDA the atomic adds of splatting and of the
    G-buffer's backward (`index_add_`, `scatter_add_`) then take their deterministic forms; an
    operation without one warns instead of failing.
    """
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it before its first call
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str) -> tuple[str, str]:
    """(device, why) for a device choice; "auto" picks CUDA when PyTorch sees one."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda", f"auto: CUDA device {torch.cuda.get_device_name(0)}"
        return "cpu", "auto: no CUDA device visible to PyTorch"
    if name == "cuda" and not torch.cuda.is_available():
        raise ReconstructError("device cuda: no CUDA device is available to PyTorch; choose cpu (--device cpu) or auto")
    if name not in ("cpu", "cuda"):
        raise ReconstructError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return name, "chosen"


def resolution(image_scale: float | None, device: str, method: str = DEFAULT) -> tuple[ImageScale, dict[str, Any]]:
    """The load scale and the method's config changes for an image scale; None means "auto".

    "auto" on CUDA: the images as they are. On the CPU: halved until their long side is at most
    CPU_MAX_SIDE, an AutoScale the loader resolves on the first image it decodes (so the dataset
    is read once), plus what the method changes there (NDS: coarse-to-fine images and a shorter
    last stage, `recon.methods.config.auto_changes`). A factor is one fixed resolution, no changes.
    """
    if image_scale is not None:
        return float(image_scale), {}
    return (AutoScale(CPU_MAX_SIDE) if device == "cpu" else 1.0), get_method(method).auto_changes(device)


@dataclass(frozen=True)
class RunOptions:
    """What a user asks for when starting a run, in either front end.

    Attributes:
        dataset: dataset folder or its main file.
        out: the run folder to write.
        method: a name in `recon.methods.registry`.
        iterations: None = the method's schedule for the device (with "auto" scale); a count keeps
            the method's schedule in proportion.
        image_scale: None = "auto" (per device and method); a factor = one fixed resolution.
        holdout_every: keep views 0, N, 2N, … out (the CLI's --holdout N); 0 = none.
        holdout_last: keep the last view out when there are at least three (the GUI's check box).
        overwrite: replace a run already in `out` instead of refusing.
        deterministic: deterministic CUDA kernels (`use_deterministic_kernels`), recorded in run.json.
        checkpoint_every: iterations between checkpoints (None: the method's default).
        config_overrides: settings of the method's config set after everything else (`--set`;
            `recon.settings`: a nested setting given as a dict changes only the fields it names).
    """

    dataset: Path
    out: Path
    method: str = DEFAULT
    iterations: int | None = None
    image_scale: float | None = None
    seed: int = 0
    init: str = "hull"
    device: str = "auto"
    renderer: str = "auto"
    profile: bool = False
    holdout_every: int = 0
    holdout_last: bool = False
    overwrite: bool = False
    deterministic: bool = False
    checkpoint_every: int | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResumeOptions:
    """What a user asks for when continuing a run: its folder, where to run it, how far.

    Attributes:
        more: steps past the checkpoint (the CLI's --iterations N); None = the run's schedule.
        until: the iteration to stop at (the GUI); the schedule is extended when needed.
    """

    out: Path
    device: str = "auto"
    renderer: str = "auto"
    profile: bool = False
    more: int | None = None
    until: int | None = None
    deterministic: bool = False


@dataclass(frozen=True)
class RunPlan:
    """What `RunOptions` mean on this machine: the device, the scale to load at, the method's config."""

    method: Method
    device: str
    why: str
    scale: ImageScale
    config: Any


def plan(options: RunOptions) -> RunPlan:
    """Resolve the device once and what "auto" means there for the method (load scale and config)."""
    method = get_method(options.method)
    device, why = resolve_device(options.device)
    scale, changes = resolution(options.image_scale, device, method.name)
    if options.checkpoint_every is not None:
        if options.checkpoint_every < 1:
            raise ReconstructError(f"--checkpoint-every must be at least 1, got {options.checkpoint_every}")
        changes = {**changes, "checkpoint_every": options.checkpoint_every}
    config = method.make_config(options.iterations, **changes, seed=options.seed, init=options.init)
    config = apply_settings(config, options.config_overrides)  # `--set`, tests, scripted runs: applied last
    return RunPlan(method, device, why, scale, config)


def describe_levels(plan_or_run: RunPlan | OpenedRun, width: int, height: int) -> str:
    """The working resolution(s) of a planned or opened run at width × height, in words (the method's)."""
    config = plan_or_run.config if isinstance(plan_or_run, RunPlan) else plan_or_run.session.config
    return plan_or_run.method.describe_levels(width, height, config)


def image_levels(run: OpenedRun) -> tuple[tuple[int, tuple[int, int]], ...]:
    """(from iteration, image width and height) of each resolution the run's session works at.

    Sessions that render the views at two levels (`ImageLevels` with coarse images) say when they
    switch; any other works at the loaded images' size throughout.
    """
    if isinstance(run.session, ImageLevels):
        return tuple(run.session.level_sizes())
    return ((0, run.scene.resolution),)


@dataclass
class OpenedRun:
    """A session ready to be driven, with what the front ends show and what run.json records.

    Attributes:
        total: the iteration the run stops at.
        extra: run.json entries beyond the session's own (image scale, held-out views).
        heldout: the views kept out of the optimisation (for PSNR), at the working resolution.
        earlier: the sessions that made a resumed run so far (`recon.run_totals`), for run.json's totals.
    """

    session: Session
    folder: RunFolder
    method: Method
    device: str
    why: str
    total: int
    extra: dict[str, Any] = field(default_factory=dict)
    heldout: tuple[View, ...] = ()
    earlier: tuple[dict[str, Any], ...] = ()

    @property
    def scene(self) -> Scene:
        return self.session.scene


def _hold_out(scene: Scene, names: list[str]) -> tuple[Scene, tuple[View, ...]]:
    from recon.data import holdout

    if not names:
        return scene, ()
    train, held = holdout.split(scene, names)
    log.info("holding out %d of %d views: %s", len(held), len(scene.views), ", ".join(names))
    return train, held


def open_run(options: RunOptions, status: Status = log.info) -> OpenedRun:
    """Load the dataset as `plan(options)` says, hold views out, build the method's session."""
    from recon.data import holdout, load

    folder = RunFolder(options.out)
    if folder.holds_run and not options.overwrite:
        raise ReconstructError(
            f"{folder.path}: already holds a run; resume it (`reconstruct resume {folder.path}`), "
            "choose another folder, or replace it (--overwrite)"
        )
    p = plan(options)
    status(f"Loading {options.dataset} at the working resolution …")
    scene = load(options.dataset, image_scale=p.scale)
    extra: dict[str, Any] = {"image_scale": scene.image_scale}
    names: list[str] = []
    if options.holdout_every:
        names = holdout.every_nth(scene, options.holdout_every)
        extra.update(holdout=names, holdout_every=options.holdout_every)
    elif options.holdout_last and len(scene.views) >= 3:
        names = [scene.views[-1].name]
        extra.update(holdout=names)
    scene, held = _hold_out(scene, names)
    if options.deterministic:
        use_deterministic_kernels()
        extra["deterministic"] = True
    status(f"Building the {p.method.name} session (initial mesh) …")
    session = p.method.session_type(scene, p.config, device=p.device, renderer=options.renderer, profile=options.profile)
    return OpenedRun(session, folder, p.method, p.device, p.why, session.config.iterations, extra, held)


def resume_run(options: ResumeOptions, status: Status = log.info) -> OpenedRun:
    """Continue the run in `options.out`: its method and dataset from run.json, the same views held out."""
    from recon.data import load

    folder = RunFolder(options.out)
    record = folder.record()
    method = get_method(record.get("method"))
    device, why = resolve_device(options.device)
    scale = float(record.get("image_scale", 1.0))
    source = folder.dataset_source(record)
    status(f"Loading {source} for the resume …")
    names = folder.heldout_names(record)
    scene, held = _hold_out(load(source, image_scale=scale), names)  # an estimated bbox comes from the rest again
    status("Restoring the checkpoint …")
    session = method.session_type.load(
        folder.checkpoint, scene, device=device, renderer=options.renderer, profile=options.profile
    )
    more, until = options.more, options.until
    target = until if until is not None else None if more is None else session.iteration + more
    if target is not None and target > session.config.iterations:
        session.config = session.config.replace(iterations=target)
    total = session.config.iterations if target is None else target
    extra = {k: record[k] for k in ("holdout", "holdout_every") if k in record}
    extra["image_scale"] = scale
    if options.deterministic or record.get("deterministic") is True:  # a run that recorded it keeps it
        use_deterministic_kernels()
        extra["deterministic"] = True
    return OpenedRun(session, folder, method, device, why, total, extra, held, tuple(earlier_sessions(record)))


def drive(
    run: OpenedRun,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Step the run to `run.total` through `recon.runner.run`; returns the final run.json record.

    `extra` adds the front end's own entries to run.json (the GUI's `"gui": true`).
    """
    from recon import runner

    return runner.run(
        run.session, run.folder, max(0, run.total - run.session.iteration), on_step=on_step,
        extra={**run.extra, **(extra or {})}, should_stop=should_stop, method=run.method.name, earlier=run.earlier,
    )
