"""A run folder and the files in it: the one place that knows their names.

Layout (written by `recon.runner`, read by resume, eval, export, materials and the GUI):
run.json (method, dataset, config, losses, held-out views, …), mesh.ply (world units),
shader.safetensors + shader.json (weights, config, normalisation), checkpoint/ (exact resume),
materials.safetensors + materials.json (stored clustering) and edits.json (material edits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recon.errors import FileError
from recon.jsonfile import read_json_object

if TYPE_CHECKING:
    from recon.mesh import Mesh
    from recon.shader import NeuralShader, Normalization

RECORD = "run.json"
MESH = "mesh.ply"
SHADER = "shader"  # stem: shader.safetensors + shader.json
CHECKPOINT = "checkpoint"
MATERIALS = "materials"  # stem: materials.safetensors + materials.json
EDITS = "edits.json"


class RunFolderError(FileError):
    """A run folder (or its run.json) cannot be used: `path` is the one at fault."""


@dataclass(frozen=True)
class RunAppearance:
    """What shading, baking and material editing need of a run: world mesh, shader and its normalisation."""

    mesh: Mesh
    shader: NeuralShader
    normalization: Normalization

    def normalized_vertices(self) -> torch.Tensor:
        """(V, 3) float32 vertices in the shader's cube: x_n = (x − centre)·scale."""
        centre, scale = self.normalization
        v = self.mesh.vertices.detach().to("cpu", torch.float64)
        return ((v - torch.from_numpy(np.asarray(centre, dtype=np.float64))) * float(scale)).float()


@dataclass(frozen=True)
class RunFolder:
    """A folder written by `reconstruct run` or the GUI; properties name its files, methods read them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def record_file(self) -> Path:
        return self.path / RECORD

    @property
    def mesh_file(self) -> Path:
        return self.path / MESH

    @property
    def shader_stem(self) -> Path:
        return self.path / SHADER

    @property
    def shader_file(self) -> Path:
        return self.path / f"{SHADER}.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def materials_files(self) -> tuple[Path, Path]:
        """(tensors, record) of the stored clustering."""
        return self.path / f"{MATERIALS}.safetensors", self.path / f"{MATERIALS}.json"

    @property
    def edits_file(self) -> Path:
        return self.path / EDITS

    @property
    def holds_run(self) -> bool:
        """Whether a run was started here (its checkpoint's state was written): a new run must not
        overwrite it. A folder whose first checkpoint a kill cut short holds none and can be reused."""
        return (self.checkpoint / "state.safetensors").exists()

    @property
    def looks_like_run(self) -> bool:
        """Whether the folder is a run's rather than a dataset's: it has run.json or a checkpoint.
        A broken one still counts, so opening it explains what is wrong with the run."""
        return self.path.is_dir() and (self.record_file.is_file() or self.checkpoint.is_dir())

    def require(self) -> RunFolder:
        """This folder, or a RunFolderError when it is not a folder at all."""
        if not self.path.is_dir():
            raise RunFolderError(self.path, "not a run folder (pass a folder written by `reconstruct run` or the GUI)")
        return self

    def record(self) -> dict[str, Any]:
        """run.json as a dict, its entries checked before any is used (`recon.run_checks`)."""
        from recon.run_checks import check_run_record
        from recon.validate import Invalid

        record = read_json_object(
            self.record_file, RunFolderError,
            missing=f"missing; is {self.path} a run folder (written by `reconstruct run` or the GUI, with run.json and checkpoint/)?",
        )
        try:
            check_run_record(record)
        except Invalid as exc:
            raise RunFolderError(self.record_file, f"not a run record of this program: {exc}") from None
        return record

    def heldout_names(self, record: dict[str, Any] | None = None) -> list[str]:
        """Views the run kept out of its optimisation (run.json holds a list, or one name)."""
        names = (self.record() if record is None else record).get("holdout") or []
        return [names] if isinstance(names, str) else list(names)

    def dataset_source(self, record: dict[str, Any] | None = None) -> Path:
        record = self.record() if record is None else record
        try:
            return Path(record["dataset"]["source"])
        except (KeyError, TypeError):
            raise RunFolderError(self.record_file, "does not name the run's dataset (no dataset.source)") from None

    def appearance(self) -> RunAppearance:
        """Mesh (mesh.ply) and shader (shader.json + .safetensors) of the run."""
        from recon.mesh import load_mesh
        from recon.shader import load_shader

        self.require()
        shader, normalization = load_shader(self.shader_file)
        return RunAppearance(load_mesh(self.mesh_file), shader, normalization)


COUNTER = re.compile(r"^(.*)-(\d{1,3})$")  # "dino-2": the counter `fresh_run_folder` adds


def fresh_run_folder(path: Path | str) -> Path:
    """`path` when it holds no run, else the first of `name-2`, `name-3`, … beside it that does not
    exist: starting the same dataset again starts a new run instead of refusing ("dino-2" → "dino-3")."""
    path = Path(path).expanduser()
    if not RunFolder(path).holds_run:
        return path
    match = COUNTER.match(path.name)
    stem, n = (match.group(1), int(match.group(2)) + 1) if match else (path.name, 2)
    while (path.parent / f"{stem}-{n}").exists():
        n += 1
    return path.parent / f"{stem}-{n}"
