"""Drives an NDS session to completion and writes the run folder (the CLI's `run`/`resume`/`demo`).

Run folder (docs/architecture.md): mesh.ply (world units), shader.safetensors + shader.json,
run.json (config, per-iteration losses, timings, versions), checkpoint/ (exact resume).
Checkpoints are written with mesh, shader and run.json every `config.checkpoint_every` steps, on
Ctrl-C and when a caller's `should_stop` says so (the GUI's Stop and window close), so a killed
run loses at most the steps since the last one; a bad mesh is never written because the session
rolls back before anything is saved. The CLI and the GUI drive sessions through `run`, so
both leave the same run folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recon.atomic import remove_stale_temporaries
from recon.data import CPU_MAX_SIDE, AutoScale
from recon.data.images import ImageScale
from recon.export import export_mesh, versions, write_run_record
from recon.methods.config import NDSConfig
from recon.methods.nds import NDSSession, StalledError, StepRecord
from recon.shader import save_shader

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


# The CPU's default schedule: the paper's, with its last stage (on the full images) halved.
CPU_SCHEDULE: dict[str, Any] = {"iterations": 1750, "remesh_at": (500, 1000, 1500)}


def auto_resolution(device: str) -> tuple[ImageScale, dict[str, Any]]:
    """What `--image-scale auto` means on `device`: the scale to load with, and config changes.

    On CUDA the images as they are, one resolution and the paper's schedule. On the CPU the images
    are loaded halved until their long side is at most CPU_MAX_SIDE and worked on halved once more
    until the last remesh (`NDSConfig.coarse_images`), with the last stage 250 iterations long
    (`CPU_SCHEDULE`; an explicit iteration count keeps remeshing at 1/4, 1/2, 3/4 instead): the
    demo runs at 128² and finishes at 256², inside five minutes on two cores.
    """
    if device != "cpu":
        return 1.0, {}
    return AutoScale(CPU_MAX_SIDE), {"coarse_images": True, **CPU_SCHEDULE}


def config_for(iterations: int | None = None, **changes: Any) -> NDSConfig:
    """NDS defaults with `changes`; a shortened schedule keeps remeshing at 1/4, 1/2, 3/4 of it."""
    if iterations is not None:
        defaults = NDSConfig()
        fractions = [i / defaults.iterations for i in defaults.remesh_at]
        changes.update(iterations=iterations, remesh_at=[round(f * iterations) for f in fractions])
    return NDSConfig().replace(**changes)


def write_outputs(session: NDSSession, out: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """mesh.ply, shader files, run.json and a checkpoint for the session's current state.

    Each file is replaced atomically, in this order: whatever moment a kill comes, mesh and shader
    are a pair of one iteration, run.json says that iteration (or the one before, when killed
    just before it), and the checkpoint, written last, is never ahead of run.json's iteration.
    """
    out.mkdir(parents=True, exist_ok=True)
    snap = session.snapshot()
    export_mesh(snap.world_vertices, snap.faces, out / "mesh.ply")
    save_shader(session.shader, session.normalization, out / "shader")
    record = {
        "method": "nds",
        "dataset": {
            "source": str(session.scene.source),
            "format": session.scene.format,
            "views": len(session.scene.views),
            "resolution": list(session.scene.resolution),
            "bbox": session.scene.bbox.tolist(),
            "bbox_source": session.scene.bbox_source,
        },
        "config": session.config.to_dict(),
        "device": str(session.device),
        "renderer": session.renderer.backend,
        "iteration": session.iteration,
        "mesh": {"vertices": int(snap.vertices.shape[0]), "faces": int(snap.faces.shape[0])},
        "losses": session.history,
        "profile": session.profiler.table(),
        "versions": versions(),
        **(extra or {}),
    }
    write_run_record(out / "run.json", record)
    session.save(out / CHECKPOINT)
    return record


def run(
    session: NDSSession,
    out: Path,
    iterations: int | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    extra: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Step `session` (to the end of its schedule, or `iterations` more), checkpointing as it goes.

    On Ctrl-C the current state is written (checkpoint and outputs) before KeyboardInterrupt
    propagates, so `reconstruct resume OUT` continues where it stopped. `extra` entries (e.g. the
    image scale the dataset was loaded at) go into every run.json written.

    `on_step` runs in the caller's thread after every step (a GUI blocks there while paused);
    `should_stop` is asked after every step and, when true, ends the run early with all outputs
    written and `"stopped": true` in run.json.
    """
    extra = dict(extra or {})
    out = Path(out)
    start = time.perf_counter()
    remove_stale_temporaries(out)  # left by a killed run; this one owns the folder now
    write_outputs(session, out, extra)  # a resumable folder from the first moment, even if killed hard
    try:
        for record in session.run(iterations):
            if on_step is not None:
                on_step(record)
            if should_stop is not None and should_stop():
                log.info("stopped at iteration %d; outputs and checkpoint in %s", session.iteration, out)
                return write_outputs(session, out, {**extra, "stopped": True, "seconds": time.perf_counter() - start})
            if session.iteration % session.config.checkpoint_every == 0:  # all outputs: a kill loses nothing else
                write_outputs(session, out, {**extra, "seconds": time.perf_counter() - start})
    except StalledError as exc:  # the session is at its last good state: keep it, then report
        log.info("stalled at iteration %d; outputs of the last good state in %s", session.iteration, out)
        write_outputs(session, out, {**extra, "stalled": str(exc), "seconds": time.perf_counter() - start})
        raise
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d; writing a checkpoint to %s", session.iteration, out / CHECKPOINT)
        write_outputs(session, out, {**extra, "interrupted": True, "seconds": time.perf_counter() - start})
        raise
    return write_outputs(session, out, {**extra, "seconds": time.perf_counter() - start})

