"""`reconstruct export`: a run folder's mesh with its shader's colours baked, edits optional.

GLB and OBJ get a texture atlas by default, PLY vertex colours (`recon.export.export_baked`).

The edits file is checked against the run's stored clustering (made by `reconstruct materials`)
and applied between h and c while baking, exactly as the viewer applies it when shading.
"""

from __future__ import annotations

from pathlib import Path

from recon.export import export_baked
from recon.run_folder import RunAppearance, RunFolder
from render.viewer.features import FeatureEdits


def run_feature_edits(folder: RunFolder, run: RunAppearance, edits_file: Path | str) -> FeatureEdits:
    """An edits file checked against the run's stored clustering, in shading form."""
    from recon.materials import feature_edits, load_edits, stored_materials

    materials = stored_materials(folder.path, run)
    return feature_edits(materials, load_edits(edits_file, materials), run.normalization)


def export_run(
    run_dir: Path | str,
    file_type: str = "ply",
    out: Path | str | None = None,
    edits_file: Path | str | None = None,
    texture: bool | None = None,
    texture_size: int | None = None,
) -> tuple[list[Path], int]:
    """Write the baked mesh (default DIR/mesh_colored.FORMAT); returns (paths written, mesh first; faces)."""
    folder = RunFolder(run_dir).require()
    run = folder.appearance()
    edits = run_feature_edits(folder, run, edits_file) if edits_file else None
    path = Path(out) if out else folder.path / f"mesh_colored.{file_type}"
    mesh = run.mesh
    written = export_baked(run.shader, mesh.vertices, mesh.faces, mesh.vertex_normals(), run.normalization, path,
                           file_type, texture, texture_size, edits)  # fmt: skip
    return written, mesh.num_faces
