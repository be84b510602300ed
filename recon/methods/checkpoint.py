"""Checkpoints that resume an NDS session bit for bit: one safetensors file, JSON in its metadata.

One file written atomically (temp + rename) means a crash or Ctrl-C mid-write leaves the previous
checkpoint intact, and tensors and bookkeeping can never disagree. Nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from recon.atomic import write_bytes_atomic
from recon.data.scene import Scene
from recon.errors import SessionError
from recon.mesh import Mesh, check_mesh
from recon.mesh.checks import self_intersecting_pairs
from recon.methods.checkpoint_checks import check_record, check_tensors
from recon.methods.config import ConfigError, NDSConfig
from recon.shader import NeuralShader
from recon.validate import Invalid

if TYPE_CHECKING:
    from recon.methods.nds import NDSSession

FILE = "state.safetensors"
FORMAT = "reconstruct.nds-checkpoint"
VERSION = 1


def optimizer_tensors(prefix: str, state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state(prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            _, index, key = name.split("/", 2)
            # Adam keeps its step count on the CPU unless capturable; everything else on the device.
            state.setdefault(int(index), {})[key] = value if key == "step" else value.to(device)
    for name, value in meta["scalars"].items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(session: NDSSession, folder: Path) -> Path:
    """Write `folder/state.safetensors` atomically; returns its path."""
    tensors = {
        "mesh/vertices": session.mesh.vertices.detach().cpu().contiguous(),
        "mesh/faces": session.mesh.faces.detach().cpu().contiguous(),
        "offsets": session.offsets.detach().cpu().contiguous(),
        "clean_offsets": session._clean.detach().cpu().contiguous(),
        "rng": session.generator.get_state(),
    }
    tensors.update({f"shader/{k}": v.detach().cpu().contiguous() for k, v in session.shader.state_dict().items()})
    tensors.update({f"tile_residuals/{k}": v.detach().cpu().contiguous() for k, v in session.tile_residuals.items()})
    vopt, vmeta = optimizer_tensors("vertex_optimizer", session.vertex_optimizer.state_dict())
    sopt, smeta = optimizer_tensors("shader_optimizer", session.shader_optimizer.state_dict())
    tensors.update(vopt)
    tensors.update(sopt)
    centre, scale = session.normalization
    record = {
        "format": FORMAT,
        "version": VERSION,
        "config": session.config.to_dict(),
        "iteration": session.iteration,
        "lr_vertices": session.lr_vertices,
        "lr_schedule": session.lr_schedule,
        "weight_laplacian": session.weight_laplacian,
        "weight_normal": session.weight_normal,
        "rollbacks_in_a_row": session.rollbacks_in_a_row,
        "clean_pairs": session._clean_pairs,
        "clean_iteration": session._clean_iteration,
        "normalization": {"centre": centre.tolist(), "scale": scale},
        "views": len(session.cameras),
        "history": session.history,
        "vertex_optimizer": vmeta,
        "shader_optimizer": smeta,
    }
    data = save_tensors(tensors, metadata={"record": json.dumps(record)})
    return write_bytes_atomic(Path(folder) / FILE, data)


def read_record(
    folder: Path, kind: tuple[str, int, str] = (FORMAT, VERSION, "NDS")
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(bookkeeping record, tensors) of a checkpoint, or a SessionError naming the file.

    `kind`: (format tag, version, method's name for messages) the file must have (DVR's sessions
    keep their own format in the same kind of file).
    """
    fmt, version, title = kind
    path = Path(folder) / FILE
    if not path.is_file():
        raise SessionError(f"{path}: no checkpoint here (is this a run folder written by `reconstruct run`?)")
    try:
        data = path.read_bytes()
        tensors = load_tensors(data)
        header_len = int.from_bytes(data[:8], "little")
        record = json.loads(json.loads(data[8 : 8 + header_len])["__metadata__"]["record"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise SessionError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != fmt or record.get("version") != version:
        raise SessionError(f"{path}: not a {title} checkpoint of version {version}")
    return record, tensors


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
    record, tensors = read_record(folder)
    try:
        check_record(record)
    except Invalid as exc:
        raise SessionError(f"{Path(folder) / FILE}: bad checkpoint record: {exc}") from None
    if record["views"] != len(scene.views):
        raise SessionError(
            f"{folder}: the checkpoint has {record['views']} views but the dataset has {len(scene.views)}; "
            "resume with the dataset (and image scale) the run started with"
        )
    try:
        # Checkpoints from before `splat_shading` existed resume with the shading they ran with.
        config = NDSConfig.from_dict({"splat_shading": False, **record["config"]})
    except (ConfigError, TypeError, ValueError) as exc:
        raise SessionError(f"{folder / FILE}: {exc}") from None
    _check_contents(folder / FILE, tensors, config, record["views"])
    mesh = Mesh(tensors["mesh/vertices"], tensors["mesh/faces"])
    session = cls(scene, config, device=device, renderer=renderer, profile=profile, initial_mesh=mesh)
    # float64 from the JSON numbers directly: through a float32 tensor the centre lost its last bits on resume
    session.normalization = (np.asarray(record["normalization"]["centre"], dtype=np.float64), float(record["normalization"]["scale"]))
    with torch.no_grad():
        session.offsets.copy_(tensors["offsets"].to(session.device))
    session.shader.load_state_dict(
        {k.split("/", 1)[1]: v.to(session.device) for k, v in tensors.items() if k.startswith("shader/")}
    )
    try:
        session.vertex_optimizer.load_state_dict(
            optimizer_state("vertex_optimizer", tensors, record["vertex_optimizer"], session.device)
        )
        session.shader_optimizer.load_state_dict(
            optimizer_state("shader_optimizer", tensors, record["shader_optimizer"], session.device)
        )
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise SessionError(f"{folder / FILE}: bad optimiser state ({exc.__class__.__name__}: {exc})") from None
    session.generator.set_state(tensors["rng"])
    session.tile_residuals = {  # older checkpoints: none; the tiles' residuals start at 1
        k.split("/", 1)[1]: v.to(session.device) for k, v in tensors.items() if k.startswith("tile_residuals/")
    }
    session.iteration = record["iteration"]
    session.lr_vertices = record["lr_vertices"]
    session.lr_schedule = record.get("lr_schedule", record["lr_vertices"])  # older checkpoints: no recovery above it
    session.weight_laplacian = record["weight_laplacian"]
    session.weight_normal = record["weight_normal"]
    session.history = record["history"]
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
