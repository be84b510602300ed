"""Exports from the latest snapshot in a background thread: mesh with baked colours, shader weights.

Material edits (render.viewer.FeatureEdits from the Materials panel) are baked into the mesh
colours the way `reconstruct export --edits` bakes them: recon's `bake_vertex_colors(edits=…)`.

Baking evaluates the shader at every vertex and a GLB of a large mesh takes seconds, so the work
runs off the UI thread and reports progress; every file goes through recon's atomic writers, so a
crash or a full disk never leaves half a file under the chosen name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QThread, Signal
from PySide6.QtGui import QImage

from recon.atomic import write_bytes_atomic
from recon.errors import ReconstructError
from recon.methods.nds import Snapshot
from recon.shader import NeuralShader, ShaderConfig
from render.viewer.features import FeatureEdits

log = logging.getLogger(__name__)

MESH_FORMATS = ("ply", "obj", "glb")


def shader_from_snapshot(snapshot: Snapshot, config: ShaderConfig) -> NeuralShader:
    """A CPU NeuralShader holding the snapshot's weights (eval mode)."""
    shader = NeuralShader(config)
    shader.load_state_dict(snapshot.shader_state)
    return shader.eval()


def export_snapshot_mesh(
    snapshot: Snapshot, config: ShaderConfig, path: Path, bake: bool = True, edits: FeatureEdits | None = None
) -> Path:
    """The snapshot's mesh in world units, colours baked from its shader (ω = n) with `edits`, format by suffix."""
    from recon.export import bake_vertex_colors, export_mesh
    from recon.mesh import Mesh

    vertices = torch.from_numpy(snapshot.world_vertices)
    faces = torch.from_numpy(snapshot.faces)
    colors = None
    if bake:
        normals = Mesh(vertices, faces).vertex_normals()
        shader = shader_from_snapshot(snapshot, config)
        colors = bake_vertex_colors(shader, vertices, normals, snapshot.normalization, edits=edits)
    return export_mesh(vertices.numpy(), faces.numpy(), path, colors=colors)


def export_snapshot_shader(snapshot: Snapshot, config: ShaderConfig, path: Path) -> Path:
    """`<stem>.safetensors` + `<stem>.json` with the run's normalisation; returns the JSON path."""
    from recon.shader import save_shader

    _, config_path = save_shader(shader_from_snapshot(snapshot, config), snapshot.normalization, Path(path))
    return config_path


def save_png_atomic(image: QImage, path: Path) -> Path:
    """Encode on the calling thread, then replace `path` atomically."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise ReconstructError(f"{path}: could not encode the screenshot as PNG")
    buffer.close()
    return write_bytes_atomic(path, bytes(data.data()))


class _ExportJob(QObject):
    progress = Signal(str)
    finished = Signal(str)  # the path written
    failed = Signal(str)

    def __init__(self, kind: str, snapshot: Snapshot, config: ShaderConfig, path: Path, edits: FeatureEdits | None) -> None:
        super().__init__()
        self.kind, self.snapshot, self.config, self.path, self.edits = kind, snapshot, config, path, edits

    def run(self) -> None:
        try:
            if self.kind == "mesh":
                edited = f" with {self.edits.count} material edit row(s)" if self.edits is not None else ""
                self.progress.emit(f"Baking colours for {len(self.snapshot.vertices)} vertices{edited} …")
                written = export_snapshot_mesh(self.snapshot, self.config, self.path, edits=self.edits)
            elif self.kind == "shader":
                self.progress.emit("Writing the shader weights …")
                written = export_snapshot_shader(self.snapshot, self.config, self.path)
            else:
                raise ReconstructError(f"unknown export {self.kind!r}")
            self.finished.emit(str(written))
        except (ReconstructError, OSError, ValueError) as exc:
            self.failed.emit(f"{self.path}: {exc}")
        except Exception as exc:
            log.exception("export to %s failed", self.path)
            self.failed.emit(f"{self.path}: unexpected error ({exc.__class__.__name__}: {exc})")


class Exporter(QObject):
    """One export at a time in a QThread; `finished` / `failed` arrive on the owner's thread."""

    progress = Signal(str)
    finished = Signal(str)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._job: _ExportJob | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(
        self, kind: str, snapshot: Snapshot, config: ShaderConfig, path: Path, edits: FeatureEdits | None = None
    ) -> None:
        """Export in the background; `edits` (mesh only) are baked into the colours."""
        if self.busy:
            raise RuntimeError("an export is already running")
        self._thread = QThread()
        self._job = _ExportJob(kind, snapshot, config, Path(path), edits)
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.progress.connect(self.progress)
        self._job.finished.connect(self._on_finished)
        self._job.failed.connect(self._on_failed)
        self._thread.start()

    def wait(self) -> None:
        """Let a running export finish (shutdown): its file is either whole or not there."""
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()

    def _cleanup(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._thread = self._job = None

    def _on_finished(self, path: str) -> None:
        self._cleanup()
        self.finished.emit(path)

    def _on_failed(self, message: str) -> None:
        self._cleanup()
        self.failed.emit(message)
