"""Non-destructive material edits: an immutable list of operations, its file, and its shading form.

An edit never touches the shader. It is applied between h and c at shading time (and when
baking) through `render.viewer.features.apply_feature_edits`, so removing it restores the exact
original appearance. The list is immutable: every change returns a new `MaterialEdits`, so an
undo command only has to keep the list before and after (Qt's QUndoStack: `redo` sets `after`,
`undo` sets `before`), and undo gives back the exact previous image.

`edits.json` (beside the run):

    {"format": "reconstruct.material_edits", "version": 1, "units": "world",
     "materials": {"k": 3, "fingerprint": "<16 hex>"},
     "edits": [{"op": "replace", "source": 2, "target": 0, "weight": 1.0,
                "region": null | {"centre": [x, y, z], "radius": r}}]}

Region centre and radius are in *world* units, like the exported mesh a user measures in; they
are converted with the run's normalisation (x_n = (x − centre)·scale, r_n = r·scale) only when
the edits become `FeatureEdits`. "materials" names the clustering the ids refer to (its k and
fingerprint, see `recon.materials.store`); edits made on another clustering are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.atomic import write_text_atomic
from recon.errors import FileError
from recon.jsonfile import read_json_object
from recon.materials.discover import Materials
from recon.run_folder import EDITS
from recon.shader import Normalization
from render.viewer.features import FeatureEdits

FORMAT_NAME = "reconstruct.material_edits"
FORMAT_VERSION = 1
EDITS_FILE = EDITS  # beside the run (recon.run_folder)


class EditsFileError(FileError):
    """An edits file is refused: `path` is the file, `message` says what is wrong in it."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Region:
    """A ball in world units: the part of a material an edit applies to (a brush stroke, a pick)."""

    centre: tuple[float, float, float]
    radius: float

    def __post_init__(self) -> None:
        centre = tuple(self.centre)
        if len(centre) != 3 or not all(_is_number(c) and math.isfinite(c) for c in centre):
            raise ValueError(f"region centre must be 3 finite numbers, got {self.centre!r}")
        if not (_is_number(self.radius) and math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"region radius must be a positive finite number, got {self.radius!r}")
        object.__setattr__(self, "centre", tuple(float(c) for c in centre))
        object.__setattr__(self, "radius", float(self.radius))


@dataclass(frozen=True)
class ReplaceMaterial:
    """h ← (1 − weight)·h + weight·representative[target] where the material is `source`.

    weight 1 replaces, 0 < weight < 1 blends; region None means all of the source material.
    Membership is decided on the unedited features, so edits never cascade.
    """

    source: int
    target: int
    weight: float = 1.0
    region: Region | None = None

    op = "replace"

    def __post_init__(self) -> None:
        for name in ("source", "target"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be a material id (an integer ≥ 0), got {value!r}")
        if self.source == self.target:
            raise ValueError(f"source and target are the same material ({self.source}); the edit would do nothing")
        if not (_is_number(self.weight) and 0.0 <= self.weight <= 1.0):
            raise ValueError(f"weight must be a number in [0, 1], got {self.weight!r}")
        if self.region is not None and not isinstance(self.region, Region):
            raise ValueError(f"region must be a Region or None, got {type(self.region).__name__}")
        object.__setattr__(self, "weight", float(self.weight))

    def to_dict(self) -> dict[str, Any]:
        region = None if self.region is None else {"centre": list(self.region.centre), "radius": self.region.radius}
        return {"op": self.op, "source": self.source, "target": self.target, "weight": self.weight, "region": region}


_OP_KEYS = {"op", "source", "target", "weight", "region"}


def _operation_from_dict(data: object) -> ReplaceMaterial:
    """Parse one operation; ValueError with the field at fault."""
    if not isinstance(data, Mapping):
        raise ValueError(f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - _OP_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: {sorted(_OP_KEYS)}")
    if data.get("op") != "replace":
        raise ValueError(f"unknown op {data.get('op')!r} (this build knows \"replace\")")
    for key in ("source", "target"):
        if key not in data:
            raise ValueError(f"missing \"{key}\"")
    region = data.get("region")
    if region is not None:
        if not isinstance(region, Mapping) or set(region) != {"centre", "radius"}:
            raise ValueError("region must be null or {\"centre\": [x, y, z], \"radius\": r}")
        centre = region["centre"]
        if not isinstance(centre, list):
            raise ValueError(f"region centre must be a list of 3 numbers, got {centre!r}")
        region = Region(tuple(centre), region["radius"])  # type: ignore[arg-type]
    return ReplaceMaterial(data["source"], data["target"], data.get("weight", 1.0), region)


@dataclass(frozen=True)
class MaterialEdits:
    """An ordered, immutable list of edit operations; every change returns a new list."""

    operations: tuple[ReplaceMaterial, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))

    def __len__(self) -> int:
        return len(self.operations)

    def appended(self, operation: ReplaceMaterial) -> MaterialEdits:
        return MaterialEdits(self.operations + (operation,))

    def removed(self, index: int) -> MaterialEdits:
        ops = list(self.operations)
        del ops[index]
        return MaterialEdits(tuple(ops))

    def replaced(self, index: int, operation: ReplaceMaterial) -> MaterialEdits:
        ops = list(self.operations)
        ops[index] = operation
        return MaterialEdits(tuple(ops))

    def check(self, materials: Materials) -> None:
        """Refuse ids outside the clustering (ValueError naming the edit)."""
        for i, op in enumerate(self.operations):
            for name in ("source", "target"):
                value = getattr(op, name)
                if value >= materials.k:
                    raise ValueError(f"edit {i}: unknown material {value} as {name} (materials are 0..{materials.k - 1})")

    def to_dict(self, materials: Materials) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "units": "world",
            "materials": {"k": materials.k, "fingerprint": materials.fingerprint},
            "edits": [op.to_dict() for op in self.operations],
        }


def edits_from_dict(data: object, materials: Materials) -> MaterialEdits:
    """Parse and validate an edits document against the clustering it must refer to (ValueError)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT_NAME:
        raise ValueError(f"not an edits file (expected \"format\": \"{FORMAT_NAME}\")")
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported version {version!r} (this build reads {FORMAT_VERSION})")
    if data.get("units", "world") != "world":
        raise ValueError(f"units must be \"world\", got {data.get('units')!r}")
    ref = data.get("materials")
    if not isinstance(ref, Mapping) or not _is_int(ref.get("k")) or not isinstance(ref.get("fingerprint"), str):
        raise ValueError("\"materials\" must be {\"k\": int, \"fingerprint\": str}")
    if ref["k"] != materials.k or ref["fingerprint"] != materials.fingerprint:
        raise ValueError(
            f"made for another clustering (k = {ref['k']}, fingerprint {ref['fingerprint']}); this run's materials "
            f"are k = {materials.k}, fingerprint {materials.fingerprint}"
        )
    raw = data.get("edits")
    if not isinstance(raw, list):
        raise ValueError(f"\"edits\" must be a list, got {type(raw).__name__}")
    ops = []
    for i, item in enumerate(raw):
        try:
            ops.append(_operation_from_dict(item))
        except (ValueError, TypeError) as e:
            raise ValueError(f"edit {i}: {e}") from None
    edits = MaterialEdits(tuple(ops))
    edits.check(materials)
    return edits


def save_edits(path: Path | str, edits: MaterialEdits, materials: Materials) -> Path:
    """Write `edits` (checked against `materials`) atomically."""
    edits.check(materials)
    return write_text_atomic(path, json.dumps(edits.to_dict(materials), indent=2) + "\n")


def load_edits(path: Path | str, materials: Materials) -> MaterialEdits:
    """Read and validate an edits file against the run's clustering.

    Raises:
        EditsFileError: missing, not JSON, wrong format/version, made for another clustering,
            unknown material ids, wrong types, weight outside [0, 1], bad region; names the file.
    """
    path = Path(path)
    data = read_json_object(path, EditsFileError, missing="edits file not found")
    try:
        return edits_from_dict(data, materials)
    except (ValueError, TypeError) as e:
        raise EditsFileError(path, str(e)) from None


def feature_edits(materials: Materials, edits: MaterialEdits, normalization: Normalization) -> FeatureEdits:
    """The shading-time form of `edits` (regions converted to normalised coordinates).

    `FeatureEdits` speaks of cells (its centroids are the cell centroids), so an operation on a
    material becomes one row per cell of that material. The cells are disjoint and membership is
    decided on the unedited features, so the rows together act exactly as the one operation.

    Raises:
        ValueError: an edit names a material outside the clustering.
    """
    edits.check(materials)
    centre_w, scale = normalization
    centre_w = np.asarray(centre_w, dtype=np.float64)
    source, target, weight, centre, radius = [], [], [], [], []
    for op in edits.operations:
        cells = materials.cells_of(op.source).tolist()
        source += cells
        target += [op.target] * len(cells)
        weight += [op.weight] * len(cells)
        if op.region is None:
            centre += [np.zeros(3)] * len(cells)
            radius += [np.inf] * len(cells)
        else:
            centre += [(np.asarray(op.region.centre) - centre_w) * float(scale)] * len(cells)
            radius += [op.region.radius * float(scale)] * len(cells)
    rows = len(source)
    return FeatureEdits(
        centroids=materials.centroids,
        source=torch.tensor(source, dtype=torch.int64),
        target=materials.representatives[torch.tensor(target, dtype=torch.int64)].reshape(rows, materials.representatives.shape[1]),
        weight=torch.tensor(weight, dtype=torch.float32),
        centre=torch.from_numpy(np.asarray(centre, dtype=np.float64).reshape(rows, 3)).float(),
        radius=torch.tensor(radius, dtype=torch.float32),
    )
