"""The visual hull of an opened dataset, computed in the background: the mesh shown before Start.

Before a run there is no mesh, so the viewport would show only camera frusta around empty space.
The hull of the masks (`recon.mesh.visual_hull`, the surface a run starts from) shows where the
object is, and its box is what the viewport frames. One computation at a time: a scene opened
meanwhile waits for the running one, replacing any scene that was already waiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject

from app.background import BackgroundJob
from recon.data import Scene
from recon.mesh import visual_hull

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class HullPreview:
    """The hull of `scene` in its normalised cube (the viewer's space)."""

    scene: Scene
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int64

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of the hull: the object's box."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


def hull_preview(scene: Scene) -> HullPreview:
    """The visual hull of the scene's masks at a run's default resolution, normalised."""
    world = visual_hull(scene.views, scene.bbox)
    centre, scale = scene.normalization()
    vertices = (world.vertices.double().numpy() - centre) * scale
    return HullPreview(scene, vertices.astype(np.float32), world.faces.numpy())


class HullPreviewer(BackgroundJob):
    """`request(scene)`; `finished` carries a HullPreview, `failed` why there is none."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("the visual hull preview", parent)
        self._waiting: Scene | None = None
        self.finished.connect(self._next)
        self.failed.connect(self._next)

    def request(self, scene: Scene) -> None:
        """Compute the hull of `scene` now, or after the one being computed."""
        if self.busy:
            self._waiting = scene
            return
        self.start_work(lambda _report: hull_preview(scene), str(scene.source))

    def _next(self, *_: object) -> None:
        scene, self._waiting = self._waiting, None
        if scene is not None:
            self.request(scene)
