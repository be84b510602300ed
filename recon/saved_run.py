"""A run folder read for showing, never written: mesh, shader, loss history, progress and, when its
dataset is still there, the scene it was made from.

The GUI opens finished or stopped runs with this (File → Open, a drop, `reconstruct-gui RUN_DIR`).
Nothing here writes: a folder opened to look at stays byte for byte as it was until the user
starts, resumes or edits. A run whose dataset has moved is still shown (mesh and shader need
only the folder); `missing_scene` says why the cameras and photos are not.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon.data import Scene
from recon.errors import ReconstructError
from recon.loss_history import step_records
from recon.methods.session import Snapshot, StepRecord
from recon.run_folder import RunFolder, RunFolderError
from recon.validate import Invalid, vector

log = logging.getLogger(__name__)


def progress(record: dict[str, Any]) -> tuple[int, int]:
    """(iterations done, iterations the run's schedule asks for) from a checked run.json."""
    done = int(record.get("iteration", 0))
    config = record.get("config")
    planned = config.get("iterations", done) if isinstance(config, dict) else done
    return done, int(planned)


def is_finished(record: dict[str, Any]) -> bool:
    """Whether the run went through its whole schedule (a stopped or killed one did not)."""
    done, planned = progress(record)
    return done >= planned


@dataclass(frozen=True)
class SavedRun:
    """What a run folder holds, for showing.

    Attributes:
        snapshot: mesh (in the shader's normalised cube) and shader at the run's last iteration.
        history: one step record per iteration of the whole run (run.json's `losses`).
        scene: the run's dataset as the run saw it (its scale, without held-out views, its bounding
            box), or None when it cannot be loaded; then `missing_scene` says why.
    """

    folder: RunFolder
    record: dict[str, Any]
    snapshot: Snapshot
    history: list[StepRecord]
    scene: Scene | None = None
    missing_scene: str = ""

    @property
    def finished(self) -> bool:
        return is_finished(self.record)


def read_saved_run(path: Path | str, report: Callable[[str], None] = log.info) -> SavedRun:
    """Read the run in `path` without writing anything.

    Raises:
        RunFolderError: run.json, mesh.ply or the shader is missing or unreadable; the message
            names the file and how to get it back.
    """
    folder = RunFolder(path).require()
    record = folder.record()
    report(f"Reading the run in {folder.path} …")
    snapshot = _snapshot(folder, record)
    history = step_records(record.get("losses") or [])
    scene, missing = _scene(folder, record, report)
    return SavedRun(folder, record, snapshot, history, scene, missing)


def _snapshot(folder: RunFolder, record: dict[str, Any]) -> Snapshot:
    """mesh.ply and shader.* as the Snapshot a viewer and exporter take (vertices as written)."""
    from recon.mesh.errors import MeshError
    from recon.mesh.visual_hull import read_trimesh
    from recon.shader import ShaderFileError, load_shader

    fix = (f"its checkpoint can write it again: `reconstruct resume {folder.path} --iterations 0`"
           if folder.holds_run else "the folder has no checkpoint to write it again from; start the run anew")
    try:
        mesh = read_trimesh(folder.mesh_file)
    except MeshError as exc:  # its message starts with the file's name
        raise RunFolderError(folder.mesh_file, f"{str(exc).removeprefix(f'{folder.mesh_file}: ')}; {fix}") from None
    try:
        shader, normalization = load_shader(folder.shader_file)
    except ShaderFileError as exc:
        raise RunFolderError(exc.path, f"{exc.message}; {fix}") from None
    centre, scale = normalization
    world = np.asarray(mesh.vertices, np.float64)
    colors = None
    visual = getattr(mesh, "visual", None)
    if visual is not None and getattr(visual, "kind", None) == "vertex":
        colors = np.asarray(visual.vertex_colors, np.float32)[:, :3] / 255.0
    return Snapshot(
        iteration=int(record.get("iteration", 0)),
        vertices=((world - centre) * scale).astype(np.float32),
        faces=np.asarray(mesh.faces, np.int64),
        shader_state={k: v.detach().clone() for k, v in shader.state_dict().items()},
        normalization=(np.asarray(centre, np.float64), float(scale)),
        shader_config=shader.config,
        colors=colors,
    )


def _scene(folder: RunFolder, record: dict[str, Any], report: Callable[[str], None]) -> tuple[Scene | None, str]:
    """The run's dataset as the run saw it, or (None, why not): a moved dataset must not hide the run."""
    from recon.data import load

    source = folder.dataset_source(record)
    if not source.exists():
        return None, f"its dataset {source} is not there any more (moved or deleted)"
    report(f"Loading the run's dataset {source} …")
    try:
        scene = load(source, image_scale=float(record.get("image_scale", 1.0)))
    except (ReconstructError, OSError, ValueError) as exc:
        return None, f"its dataset could not be read ({exc})"
    held = set(folder.heldout_names(record))
    views = tuple(v for v in scene.views if v.name not in held) or scene.views
    try:  # the box the run normalised by, so the cameras meet the mesh exactly
        lo, hi = (vector(row, 3, "dataset.bbox") for row in record["dataset"]["bbox"])
        scene = dataclasses.replace(scene, views=views, bbox=np.array([lo, hi], np.float64))
    except (Invalid, KeyError, TypeError, ValueError):
        log.info("%s: no usable dataset.bbox; the cameras use the dataset's own box", folder.record_file)
        scene = dataclasses.replace(scene, views=views)
    return scene, ""
