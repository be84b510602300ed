"""The checkpoint file every method writes: one safetensors file, its bookkeeping as JSON metadata.

One file written atomically (temp + rename) means a crash or Ctrl-C mid-write leaves the previous
checkpoint intact, and tensors and bookkeeping can never disagree. Nothing is pickled. Every
method's file holds what `recon.methods.session.Session` has in common — config, iteration, the
world normalisation, the views it was started on, the loss history, the shader's weights, its
optimisers and the sampling RNG — under the same names, plus what the method adds; the format
tag says which method wrote it, so one method's file is never read as another's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from recon.atomic import write_bytes_atomic
from recon.data.scene import Scene
from recon.errors import ReconstructError, SessionError

FILE = "state.safetensors"


@dataclass(frozen=True)
class CheckpointKind:
    """A method's checkpoint format: its tag, version, and its name in messages."""

    format: str
    version: int
    title: str


def optimizer_tensors(prefix: str, state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state_dict split into tensors (`prefix/index/key`) and JSON-able bookkeeping."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state(prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device) -> dict:
    """Inverse of `optimizer_tensors`: the state_dict to load, its tensors on `device`."""
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


def write_checkpoint(
    folder: Path,
    kind: CheckpointKind,
    session: Any,
    optimizers: dict[str, torch.optim.Optimizer],
    record: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `folder/state.safetensors` atomically: the session's common state, its `optimizers` by
    name, and the method's own `record` entries and `tensors`; returns the path."""
    out = {f"shader/{k}": v.detach().cpu().contiguous() for k, v in session.shader.state_dict().items()}
    out["rng"] = session.generator.get_state()
    out.update({k: v.detach().cpu().contiguous() for k, v in (tensors or {}).items()})
    centre, scale = session.normalization
    bookkeeping = {
        "format": kind.format,
        "version": kind.version,
        "config": session.config.to_dict(),
        "iteration": session.iteration,
        "normalization": {"centre": np.asarray(centre).tolist(), "scale": float(scale)},
        "views": len(session.scene.views),
        "history": session.history,
        **(record or {}),
    }
    for name, optimizer in optimizers.items():
        state, bookkeeping[name] = optimizer_tensors(name, optimizer.state_dict())
        out.update(state)
    data = save_tensors(out, metadata={"record": json.dumps(bookkeeping)})
    return write_bytes_atomic(Path(folder) / FILE, data)


def read_record(folder: Path, kind: CheckpointKind) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(bookkeeping record, tensors) of a checkpoint of `kind`, or a SessionError naming the file."""
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
    if not isinstance(record, dict) or record.get("format") != kind.format or record.get("version") != kind.version:
        raise SessionError(f"{path}: not {kind.title} checkpoint of version {kind.version}")
    return record, tensors


def check_views(folder: Path, record: dict[str, Any], scene: Scene) -> None:
    """Refuse to resume on a dataset with another number of views than the run started on."""
    if record["views"] != len(scene.views):
        raise SessionError(
            f"{folder}: the checkpoint has {record['views']} views but the dataset has {len(scene.views)}; "
            "resume with the dataset (and image scale) the run started with"
        )


def saved_config(folder: Path, config_type: type, saved: dict[str, Any]) -> Any:
    """The run's config from its checkpoint record, or a SessionError naming the file."""
    try:
        return config_type.from_dict(saved)
    except (ReconstructError, TypeError, ValueError) as exc:
        raise SessionError(f"{Path(folder) / FILE}: {exc}") from None


def restore_common(
    session: Any, folder: Path, record: dict[str, Any], tensors: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """Put back what `write_checkpoint` saved of every session: normalisation, shader, optimisers,
    RNG, iteration and history (a SessionError naming the file when an optimiser's state does not fit)."""
    # float64 from the JSON numbers directly: through a float32 tensor the centre lost its last bits on resume
    session.normalization = (np.asarray(record["normalization"]["centre"], dtype=np.float64), float(record["normalization"]["scale"]))
    session.shader.load_state_dict({k.split("/", 1)[1]: v.to(session.device) for k, v in tensors.items() if k.startswith("shader/")})
    try:
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(optimizer_state(name, tensors, record[name], session.device))
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise SessionError(f"{Path(folder) / FILE}: bad optimiser state ({exc.__class__.__name__}: {exc})") from None
    session.generator.set_state(tensors["rng"])
    session.iteration = record["iteration"]
    session.history = record["history"]
