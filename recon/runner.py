"""Drives a method's session to completion and writes its run folder (`recon.runs.drive` calls it).

Run folder (`recon.run_folder`): mesh.ply (world units), shader.safetensors + shader.json,
run.json (method, config, per-iteration losses, timings, versions), checkpoint/ (exact resume).
Checkpoints are written with mesh, shader and run.json every `config.checkpoint_every` steps, on
Ctrl-C and when a caller's `should_stop` says so (the GUI's Stop and window close), so a killed
run loses at most the steps since the last one; a bad mesh is never written because the session
rolls back before anything is saved. The CLI and the GUI drive sessions through here, so
both leave the same run folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recon.atomic import remove_stale_temporaries
from recon.errors import StalledError
from recon.export import export_mesh, versions, write_run_record
from recon.methods.registry import DEFAULT
from recon.methods.session import Session, StepRecord
from recon.run_folder import RunFolder
from recon.run_totals import run_totals
from recon.shader import save_shader

log = logging.getLogger(__name__)


def write_outputs(
    session: Session, folder: RunFolder, extra: dict[str, Any] | None = None, method: str = DEFAULT
) -> dict[str, Any]:
    """mesh.ply, shader files, run.json and a checkpoint for the session's current state.

    Each file is replaced atomically, in this order: whatever moment a kill comes, mesh and shader
    are a pair of one iteration, run.json says that iteration (or the one before, when killed
    just before it), and the checkpoint, written last, is never ahead of run.json's iteration.
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    snap = session.snapshot()
    export_mesh(snap.world_vertices, snap.faces, folder.mesh_file, colors=snap.colors)
    save_shader(session.shader, session.normalization, folder.shader_stem)
    record = {
        "method": method,
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
    write_run_record(folder.record_file, record)
    session.save(folder.checkpoint)
    return record


def run(
    session: Session,
    out: RunFolder | Path,
    iterations: int | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    extra: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
    method: str = DEFAULT,
    earlier: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Step `session` (to the end of its schedule, or `iterations` more), checkpointing as it goes.

    On Ctrl-C the current state is written (checkpoint and outputs) before KeyboardInterrupt
    propagates, so `reconstruct resume OUT` continues where it stopped. `extra` entries (e.g. the
    image scale the dataset was loaded at) go into every run.json written.

    `on_step` runs in the caller's thread after every step (a GUI blocks there while paused);
    `should_stop` is asked after every step and, when true, ends the run early with all outputs
    written and `"stopped": true` in run.json.

    `earlier`: the sessions that made the run before this one (a resume's, `recon.run_totals`);
    run.json's `seconds` and `sessions` are the whole run's.
    """
    extra = dict(extra or {})
    folder = out if isinstance(out, RunFolder) else RunFolder(out)
    start, first = time.perf_counter(), session.iteration

    def write(**more: Any) -> dict[str, Any]:
        totals = run_totals(earlier, first, session.iteration, time.perf_counter() - start)
        return write_outputs(session, folder, {**extra, **totals, **more}, method)

    remove_stale_temporaries(folder.path)  # left by a killed run; this one owns the folder now
    write()  # a resumable folder from the first moment, even if killed hard
    try:
        for record in session.run(iterations):
            if on_step is not None:
                on_step(record)
            if should_stop is not None and should_stop():
                log.info("stopped at iteration %d; outputs and checkpoint in %s", session.iteration, folder.path)
                return write(stopped=True)
            if session.iteration % session.config.checkpoint_every == 0:  # all outputs: a kill loses nothing else
                write()
    except StalledError as exc:  # the session is at its last good state: keep it, then report
        log.info("stalled at iteration %d; outputs of the last good state in %s", session.iteration, folder.path)
        write(stalled=str(exc))
        raise
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d; writing a checkpoint to %s", session.iteration, folder.checkpoint)
        write(interrupted=True)
        raise
    return write()

