"""Exports from the latest snapshot in a background thread: mesh with baked colours, shader weights.

Material edits (render.viewer.FeatureEdits from the Materials panel) are baked into the mesh
colours the way `reconstruct export --edits` bakes them: recon's `bake_vertex_colors(edits=…)`.

Baking evaluates the shader at every vertex and a GLB of a large mesh takes seconds, so the work
runs off the UI thread and reports progress; every file goes through recon's atomic writers, so a
crash or a full disk never leaves half a file under the chosen name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject
from PySide6.QtGui import QImage

from app.background import BackgroundJob
from recon.atomic import write_bytes_atomic
from recon.errors import ReconstructError
from recon.methods.session import Snapshot
from render.viewer.features import FeatureEdits

MESH_FORMATS = ("ply", "obj", "glb")


def export_snapshot_mesh(snapshot: Snapshot, path: Path, bake: bool = True, edits: FeatureEdits | None = None) -> Path:
    """The snapshot's mesh in world units, its shader's colours (ω = n) with `edits` baked as the
    CLI bakes them (a texture atlas for GLB and OBJ, vertex colours for PLY); format by suffix."""
    from recon.export import export_baked, export_mesh
    from recon.mesh import Mesh

    vertices = torch.from_numpy(snapshot.world_vertices)
    faces = torch.from_numpy(snapshot.faces)
    if not bake:
        return export_mesh(vertices.numpy(), faces.numpy(), path)
    normals = Mesh(vertices, faces).vertex_normals()
    return export_baked(snapshot.shader(), vertices, faces, normals, snapshot.normalization, path, edits=edits)[0]


def export_snapshot_shader(snapshot: Snapshot, path: Path) -> Path:
    """`<stem>.safetensors` + `<stem>.json` with the run's normalisation; returns the JSON path."""
    from recon.shader import save_shader

    _, config_path = save_shader(snapshot.shader(), snapshot.normalization, Path(path))
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


def _export(kind: str, snapshot: Snapshot, path: Path, edits: FeatureEdits | None, report: Callable[[str], None]) -> str:
    """The export itself, on the job's thread; returns the path written."""
    if kind == "mesh":
        edited = f" with {edits.count} material edit row(s)" if edits is not None else ""
        report(f"Baking colours for {len(snapshot.vertices)} vertices{edited} …")
        return str(export_snapshot_mesh(snapshot, path, edits=edits))
    if kind == "shader":
        report("Writing the shader weights …")
        return str(export_snapshot_shader(snapshot, path))
    raise ReconstructError(f"unknown export {kind!r}")


class Exporter(BackgroundJob):
    """One export at a time in a QThread; `progress`, `finished` (the path) and `failed` arrive on the owner's thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("an export", parent)

    def start(self, kind: str, snapshot: Snapshot, path: Path, edits: FeatureEdits | None = None) -> None:
        """Export in the background; `edits` (mesh only) are baked into the colours."""
        path = Path(path)
        self.start_work(lambda report: _export(kind, snapshot, path, edits, report), str(path))
