"""Material editing state of the current shader: discover, pick, edit with undo, save beside the run.

`MaterialsModel` is the one place that state lives; the Materials panel and the viewport listen to
its signals and write back through its methods (they never talk to each other). Everything heavy
(clustering the surface, shading swatches, fitting the false-colour projection) runs on a pool
thread; a result that arrives after the shader changed is dropped by its token.

Edits are recon's immutable `MaterialEdits`. Each change is one `EditCommand` on a QUndoStack
holding the whole list before and after, so undo restores the exact previous list (and hence
the exact previous image), and every change is written to `edits.json` with recon's atomic
`save_edits`. Edits apply at shading time (`feature_edits` → viewport), never to the shader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from recon.errors import ReconstructError
from recon.materials import (
    DEFAULT_SAMPLES,
    EDITS_FILE,
    MaterialEdits,
    Materials,
    Region,
    ReplaceMaterial,
    RunAppearance,
    feature_edits,
    fit_projection,
    load_edits,
    material_swatches,
    run_materials,
    sample_surface,
    stored_materials,
    surface_features,
)
from recon.methods.session import Snapshot
from render.viewer.inputs import ShadingInputs

log = logging.getLogger(__name__)

SWATCH_SIZE = 48  # pixels per side of a material ball in the list
PROJECTION_SAMPLES = 20_000  # surface samples for the false-colour fit when no clustering exists


@dataclass(frozen=True)
class Discovered:
    """What a discovery job hands back: the clustering, its balls, and edits found beside the run."""

    materials: Materials
    reused: bool
    swatches: np.ndarray  # (K, s, s, 3) float32 sRGB
    edits: MaterialEdits | None
    edits_error: str | None


def discover(
    run_dir: Path, run: RunAppearance, k: int | None, stored_only: bool, samples: int = DEFAULT_SAMPLES
) -> Discovered | None:
    """Pool thread: the run's materials (stored when they fit, else clustered and stored), balls, edits.json.

    `stored_only` only reads a stored clustering of this very shader (None when there is none), so
    opening a run never starts a clustering the user did not ask for.
    """
    from recon.materials import MaterialsFileError

    if stored_only:
        try:
            materials, reused = stored_materials(run_dir, run), True
        except MaterialsFileError as exc:
            log.info("no stored materials to reuse: %s", exc)
            return None
    else:
        materials, reused = run_materials(run_dir, run, k=k, samples=samples)
    swatches = material_swatches(run.shader, materials.representatives, size=SWATCH_SIZE)
    edits, error = None, None
    path = Path(run_dir) / EDITS_FILE
    if path.exists():
        try:
            edits = load_edits(path, materials)
        except ReconstructError as exc:
            error = str(exc)
            log.warning("not loading the saved edits: %s", exc)
    return Discovered(materials, reused, swatches, edits, error)


def projection_of(run: RunAppearance) -> Any:
    """Pool thread: the false-colour projection of h fitted on area-uniform surface samples."""
    samples = sample_surface(run.normalized_vertices(), run.mesh.faces, PROJECTION_SAMPLES, seed=0)
    return fit_projection(surface_features(run.shader, samples.points))


class _JobSignals(QObject):
    done = Signal(int, str, object)  # token, kind, result
    failed = Signal(int, str, str)  # token, kind, message


class _Job(QRunnable):
    """Runs `work()` off the UI thread and reports on the owner's thread through `signals`."""

    def __init__(self, token: int, kind: str, work: Callable[[], Any], signals: _JobSignals) -> None:
        super().__init__()
        self.token, self.kind, self.work, self.signals = token, kind, work, signals

    def run(self) -> None:
        try:
            result = self.work()
        except ReconstructError as exc:
            self._report(self.signals.failed, str(exc))
            return
        except Exception as exc:  # a bug still reaches the user as a message
            log.exception("materials job %r failed", self.kind)
            self._report(self.signals.failed, f"unexpected error ({exc.__class__.__name__}: {exc})")
            return
        self._report(self.signals.done, result)

    def _report(self, signal: Any, payload: Any) -> None:
        try:
            signal.emit(self.token, self.kind, payload)
        except RuntimeError:  # the owner is gone (the window closed mid-job): nobody waits for it
            log.debug("materials job %r finished after its owner was deleted", self.kind)


class EditCommand(QUndoCommand):
    """One change of the edit list; keeps the whole immutable list before and after it."""

    def __init__(self, model: MaterialsModel, before: MaterialEdits, after: MaterialEdits, text: str) -> None:
        super().__init__(text)
        self.model, self.before, self.after = model, before, after

    def redo(self) -> None:
        self.model._set_edits(self.after)

    def undo(self) -> None:
        self.model._set_edits(self.before)


class MaterialsModel(QObject):
    """Materials, selection, picked point and edits of the shader at rest (a finished or paused run)."""

    availability_changed = Signal(bool, str)  # usable, why not (empty when usable)
    busy_changed = Signal(bool, str)  # a job runs, what it does
    materials_changed = Signal(object)  # Materials | None
    swatches_changed = Signal(object)  # (K, s, s, 3) array | None
    projection_changed = Signal(object)  # render.viewer.FeatureProjection | None
    selection_changed = Signal(object)  # int | None
    point_changed = Signal(object)  # picked world point (3,) | None
    edits_changed = Signal(object)  # MaterialEdits
    shading_changed = Signal(object)  # render.viewer.FeatureEdits | None: what the viewport applies
    message = Signal(str)  # a result or a problem, for the panel's status line

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.run_dir: Path | None = None
        self.run: RunAppearance | None = None
        self.iteration: int | None = None
        self.available = False
        self.why_not = "No shader yet: run a reconstruction (or resume a run folder), then pause it or let it finish."
        self.materials: Materials | None = None
        self.swatches: np.ndarray | None = None
        self.projection = None
        self.edits = MaterialEdits()
        self.selected: int | None = None
        self.point: np.ndarray | None = None  # world units
        self.busy = ""
        self.projection_wanted = False
        self.samples = DEFAULT_SAMPLES  # surface samples a clustering uses (fewer: faster, coarser shares)
        self._token = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _JobSignals()
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)

    # ---- the shader ---------------------------------------------------------------------------
    def set_source(self, snapshot: Snapshot, run_dir: Path) -> None:
        """A shader at rest: keep the state if it is the same run and iteration, else start over.

        A stored clustering of this exact shader (and edits.json made on it) is loaded in the
        background; clustering anew waits for the user's Find.
        """
        run_dir = Path(run_dir)
        same = self.run is not None and self.run_dir == run_dir and self.iteration == snapshot.iteration
        if same:
            self._set_available(True, "")
            return
        self._reset()
        self.run_dir, self.iteration = run_dir, snapshot.iteration
        self.run = snapshot.appearance()
        run, token = self.run, self._token
        self._start(token, "load", lambda: discover(run_dir, run, None, stored_only=True), "Looking for saved materials …")
        self._set_available(True, "")

    def set_unavailable(self, why: str) -> None:
        """The shader is moving (a run goes on): keep the state for when it rests, say why."""
        self._set_available(False, why)

    def clear(self, why: str) -> None:
        """The shader is gone (another dataset, a failed run): forget everything, say why."""
        self._reset()
        self.run = self.run_dir = self.iteration = None
        self._set_available(False, why)

    def _reset(self) -> None:
        self._token += 1  # results of running jobs are now stale
        self.undo_stack.clear()
        self.materials = self.swatches = self.projection = None
        self.edits = MaterialEdits()
        self.selected = None
        self.point = None
        self._set_busy("")
        self.materials_changed.emit(None)
        self.swatches_changed.emit(None)
        self.projection_changed.emit(None)
        self.selection_changed.emit(None)
        self.point_changed.emit(None)
        self.edits_changed.emit(self.edits)
        self.shading_changed.emit(None)
        self.message.emit("")  # a result about the forgotten state would contradict the panel

    def _set_available(self, available: bool, why: str) -> None:
        self.available, self.why_not = available, why
        self.availability_changed.emit(available, why)
        self._maybe_project()

    # ---- jobs ---------------------------------------------------------------------------------
    def _start(self, token: int, kind: str, work: Callable[[], Any], what: str) -> None:
        self._set_busy(what)
        self._pool.start(_Job(token, kind, work, self._signals))

    def _set_busy(self, what: str) -> None:
        self.busy = what
        self.busy_changed.emit(bool(what), what)

    def discover(self, k: int | None) -> bool:
        """Cluster the surface into k materials (None: automatic k) off the UI thread."""
        if not self.available or self.run is None or self.busy:
            return False
        if self.materials is not None and (k == self.materials.k or (k is None and self.materials.auto_k)):
            self.message.emit(f"{self.materials.k} materials already found for this shader.")
            return True
        self._token += 1
        run, run_dir, token, samples = self.run, self.run_dir, self._token, self.samples
        count = "materials (automatic k)" if k is None else f"{k} materials"
        what = f"Finding {count}: sampling the surface and clustering h …"
        self._start(token, "discover", lambda: discover(run_dir, run, k, stored_only=False, samples=samples), what)
        return True

    def want_projection(self, wanted: bool) -> None:
        """The "features" mode is on (or off): fit its projection once per shader when none exists."""
        self.projection_wanted = bool(wanted)
        self._maybe_project()

    def _maybe_project(self) -> None:
        if not self.projection_wanted or self.projection is not None or self.run is None or self.busy or not self.available:
            return
        run, token = self.run, self._token
        self._start(token, "projection", lambda: projection_of(run), "Fitting the feature false colours …")

    def wait(self) -> None:
        """Let a running job end (shutdown)."""
        self._pool.waitForDone()

    def _on_done(self, token: int, kind: str, result: Any) -> None:
        if token != self._token:
            return  # made for a shader that is gone
        self._set_busy("")
        if kind == "projection":
            self.projection = result
            self.projection_changed.emit(result)
        elif result is None:  # "load" found nothing stored
            self.message.emit("No materials found yet for this shader: choose k (or auto) and press Find.")
        else:
            self._take(result, kind)
        self._maybe_project()

    def _on_failed(self, token: int, kind: str, message: str) -> None:
        if token != self._token:
            return
        self._set_busy("")
        self.message.emit(f"Could not {'find materials' if kind != 'projection' else 'fit the false colours'}: {message}")
        if kind != "projection":
            self._maybe_project()

    def _take(self, found: Discovered, kind: str) -> None:
        """A new clustering: edits of the old one no longer apply, so the history starts over."""
        self.undo_stack.clear()
        self.materials, self.swatches = found.materials, found.swatches
        self.projection = found.materials.projection
        self.selected = None
        self.edits = found.edits or MaterialEdits()
        self.materials_changed.emit(self.materials)
        self.swatches_changed.emit(self.swatches)
        self.projection_changed.emit(self.projection)
        self.selection_changed.emit(None)
        self.edits_changed.emit(self.edits)
        self.shading_changed.emit(self.shading_edits())
        text = f"{self.materials.k} materials ({'saved clustering' if found.reused else 'clustered now'})"
        if found.edits is not None:
            text += f"; {len(found.edits)} saved edit(s) loaded from {EDITS_FILE}"
        if found.edits_error:
            text += f"; saved edits not loaded: {found.edits_error}"
        self.message.emit(text + ".")

    # ---- selection and picking ----------------------------------------------------------------
    def select(self, material: int | None) -> None:
        if self.materials is None or material == self.selected:
            return
        if material is not None and not 0 <= material < self.materials.k:
            return
        self.selected = material
        self.selection_changed.emit(material)

    def material_at(self, point: np.ndarray) -> int | None:
        """The material of a normalised surface point (its h, nearest cell, the cell's material)."""
        if self.materials is None or self.run is None:
            return None
        with torch.no_grad():
            h = self.run.shader.features(torch.as_tensor(np.asarray(point, np.float32)).reshape(1, 3))
        return int(self.materials.labels(h.float())[0])

    def pick(self, point: np.ndarray) -> int | None:
        """A click on the surface at normalised `point`: select its material and remember the point."""
        if not self.available or self.run is None:
            return None
        centre, scale = self.run.normalization
        self.point = np.asarray(point, np.float64) / float(scale) + np.asarray(centre, np.float64)
        self.point_changed.emit(self.point)
        material = self.material_at(point)
        self.select(material)
        return material

    # ---- edits --------------------------------------------------------------------------------
    def replace(self, target: int, weight: float = 1.0, radius: float | None = None) -> bool:
        """Replace the selected material by `target` (blend `weight`), everywhere or within `radius`
        (world units) of the picked point. One undoable step."""
        if self.materials is None or self.selected is None or not self.available:
            return False
        region = None
        if radius is not None:
            if self.point is None:
                self.message.emit("Pick a point on the surface first: the region is centred there.")
                return False
            region = Region(tuple(float(c) for c in self.point), float(radius))
        try:
            op = ReplaceMaterial(self.selected, int(target), float(weight), region)
        except ValueError as exc:
            self.message.emit(f"Cannot make that edit: {exc}")
            return False
        where = "all of it" if region is None else f"within {radius:.3g} of the picked point"
        text = f"Replace material {op.source} by {op.target} ({100 * op.weight:.0f} %, {where})"
        self.undo_stack.push(EditCommand(self, self.edits, self.edits.appended(op), text))
        return True

    def remove_edit(self, index: int) -> None:
        if 0 <= index < len(self.edits):
            self.undo_stack.push(EditCommand(self, self.edits, self.edits.removed(index), f"Remove edit {index + 1}"))

    def _set_edits(self, edits: MaterialEdits) -> None:
        """Apply an edit list (from the undo stack): viewport, panel and edits.json follow."""
        self.edits = edits
        self.edits_changed.emit(edits)
        self.shading_changed.emit(self.shading_edits())
        self._save()

    def shading_edits(self):
        """The edits in shading form (render.viewer.FeatureEdits), or None when there are none."""
        if self.materials is None or self.run is None or not len(self.edits):
            return None
        return feature_edits(self.materials, self.edits, self.run.normalization)

    def shading_inputs(self) -> ShadingInputs:
        """What the viewport's neural modes show of this model: projection, edits, cells, selection.

        Edits and materials belong to the shader at rest; while none is available only the
        projection and the selection remain.
        """
        m = self.materials if self.available else None
        return ShadingInputs(
            projection=self.projection,
            edits=self.shading_edits() if m is not None else None,
            centroids=None if m is None else m.centroids,
            highlight=self.selected,
            cell_material=None if m is None else m.cell_material,
        )

    def _save(self) -> None:
        from recon.materials import save_edits

        if self.materials is None or self.run_dir is None:
            return
        path = self.run_dir / EDITS_FILE
        try:
            save_edits(path, self.edits, self.materials)
        except (OSError, ReconstructError, ValueError) as exc:
            self.message.emit(f"Could not save {path}: {exc}")
            return
        log.info("saved %d material edit(s) to %s", len(self.edits), path)
