"""A run folder's materials: reuse the stored clustering when it still fits, otherwise cluster and store it.

The stored clustering is reused when it was made from this run's current shader (its weights'
digest) and with the requested k (any k when none is asked for); otherwise — first use, `--k`
changed, the run was resumed and its shader moved on — the surface is clustered again and the
new clustering replaces the stored one. Edits made on the old one are then refused on load
(their fingerprint no longer matches) instead of silently re-targeting other materials.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recon.errors import ReconstructError
from recon.materials.discover import DEFAULT_SAMPLES, Materials, discover_materials, shader_digest
from recon.materials.store import MaterialsFileError, load_materials, materials_paths, save_materials
from recon.run_folder import RunAppearance, RunFolder

log = logging.getLogger(__name__)


def load_run_appearance(run_dir: Path | str) -> RunAppearance:
    """Mesh and shader of a run folder (`RunFolder.appearance`)."""
    return RunFolder(run_dir).appearance()


def run_materials(
    run_dir: Path | str,
    run: RunAppearance | None = None,
    k: int | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    recluster: bool = False,
) -> tuple[Materials, bool]:
    """The run's materials and whether they came from the stored clustering (rule in the module docstring).

    Raises:
        ReconstructError: k < 1, or the run folder cannot be read.
    """
    if k is not None and k < 1:
        raise ReconstructError(f"--k must be at least 1, got {k}")
    run = run if run is not None else load_run_appearance(run_dir)
    _, record_path = materials_paths(run_dir)
    if record_path.exists() and not recluster:
        try:
            stored = load_materials(run_dir)
        except MaterialsFileError as exc:
            log.warning("ignoring the stored clustering: %s", exc)
        else:
            if stored.shader_digest != shader_digest(run.shader):
                log.warning("%s was made from another shader (the run went on since); clustering again", record_path)
            elif k is None or k == stored.k:
                return stored, True
    materials = discover_materials(run.shader, run.normalized_vertices(), run.mesh.faces, k=k, samples=samples, seed=seed)
    save_materials(run_dir, materials)
    return materials, False


def stored_materials(run_dir: Path | str, run: RunAppearance) -> Materials:
    """The stored clustering, refused if it is missing or belongs to another shader (for edits)."""
    materials = load_materials(run_dir)
    if materials.shader_digest != shader_digest(run.shader):
        _, record_path = materials_paths(run_dir)
        raise MaterialsFileError(
            record_path, "made from another shader than the run's current one; run `reconstruct materials DIR` again"
        )
    return materials
