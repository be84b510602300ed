"""NDS's checkpoint: what resumes a session bit for bit beyond every method's common state.

The file and the common state (config, shader, optimisers, RNG, history) are
`recon.methods.checkpoint_file`'s; NDS adds its base mesh, vertex offsets, the last clean
state for untangling, the tile residuals and its schedules, and checks all of them on loading:
a checkpoint is user input like any other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from recon.data.scene import Scene
from recon.errors import SessionError
from recon.mesh import Mesh, check_mesh
from recon.mesh.checks import self_intersecting_pairs
from recon.methods.checkpoint_checks import check_record, check_tensors
from recon.methods.checkpoint_file import FILE, CheckpointKind, check_views, read_record, restore_common, saved_config, write_checkpoint
from recon.methods.config import NDSConfig
from recon.shader import NeuralShader
from recon.validate import Invalid

if TYPE_CHECKING:
    from recon.methods.nds import NDSSession

KIND = CheckpointKind("reconstruct.nds-checkpoint", 1, "an NDS")


def _optimizers(session: NDSSession) -> dict[str, torch.optim.Optimizer]:
    return {"vertex_optimizer": session.vertex_optimizer, "shader_optimizer": session.shader_optimizer}


def save_checkpoint(session: NDSSession, folder: Path) -> Path:
    """Write `folder/state.safetensors` atomically; returns its path."""
    tensors = {
        "mesh/vertices": session.mesh.vertices,
        "mesh/faces": session.mesh.faces,
        "offsets": session.offsets,
        "clean_offsets": session._clean,
        **{f"tile_residuals/{k}": v for k, v in session.tile_residuals.items()},
    }
    record = {
        "lr_vertices": session.lr_vertices,
        "lr_schedule": session.lr_schedule,
        "weight_laplacian": session.weight_laplacian,
        "weight_normal": session.weight_normal,
        "rollbacks_in_a_row": session.rollbacks_in_a_row,
        "clean_pairs": session._clean_pairs,
        "clean_iteration": session._clean_iteration,
    }
    return write_checkpoint(folder, KIND, session, _optimizers(session), record, tensors)


def _check_contents(path: Path, tensors: dict[str, torch.Tensor], config: NDSConfig, views: int) -> None:
    """Refuse tensors that do not fit the config, or a mesh that `check_mesh` finds broken."""

    shader = NeuralShader(config.shader)
    try:
        shapes = {k: v.shape for k, v in shader.state_dict().items()}
        check_tensors(tensors, shapes, [p.shape for p in shader.parameters()], views)
    except Invalid as exc:
        raise SessionError(f"{path}: bad checkpoint: {exc}") from None
    problems = check_mesh(tensors["mesh/vertices"] + tensors["offsets"], tensors["mesh/faces"])
    if problems:
        raise SessionError(f"{path}: the checkpoint's mesh is broken ({'; '.join(problems)})")


def load_checkpoint(
    cls: type[NDSSession], folder: Path, scene: Scene, device, renderer: str, profile: bool
) -> NDSSession:
    """Rebuild the session saved in `folder` on `scene` (the same views) and restore every state."""
    record, tensors = read_record(folder, KIND)
    try:
        check_record(record)
    except Invalid as exc:
        raise SessionError(f"{Path(folder) / FILE}: bad checkpoint record: {exc}") from None
    check_views(folder, record, scene)
    # Checkpoints from before `splat_shading` existed resume with the shading they ran with.
    config = saved_config(folder, NDSConfig, {"splat_shading": False, **record["config"]})
    _check_contents(folder / FILE, tensors, config, record["views"])
    mesh = Mesh(tensors["mesh/vertices"], tensors["mesh/faces"])
    session = cls(scene, config, device=device, renderer=renderer, profile=profile, initial_mesh=mesh)
    with torch.no_grad():
        session.offsets.copy_(tensors["offsets"].to(session.device))
    restore_common(session, folder, record, tensors, _optimizers(session))
    session.tile_residuals = {  # older checkpoints: none; the tiles' residuals start at 1
        k.split("/", 1)[1]: v.to(session.device) for k, v in tensors.items() if k.startswith("tile_residuals/")
    }
    session.lr_vertices = record["lr_vertices"]
    session.lr_schedule = record.get("lr_schedule", record["lr_vertices"])  # older checkpoints: no recovery above it
    session.weight_laplacian = record["weight_laplacian"]
    session.weight_normal = record["weight_normal"]
    session.rollbacks_in_a_row = record.get("rollbacks_in_a_row", 0)  # older checkpoints: none counted
    if "clean_offsets" in tensors and "clean_pairs" in record:
        with torch.no_grad():
            session._mark_clean(record["clean_pairs"], record["clean_iteration"])
            session._clean.copy_(tensors["clean_offsets"].to(session.device))
    else:  # older checkpoints: the state resumed from is where a tangle goes back to
        crossings = len(self_intersecting_pairs(session.vertices.detach(), session.mesh.faces))
        session._mark_clean(crossings, session.iteration)
    session._good = session._capture()
    return session
