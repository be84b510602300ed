"""What a checkpoint must hold before a session is rebuilt from it (`checkpoint.load_checkpoint`).

A checkpoint is a well-formed safetensors file whose JSON record and tensors could still be
wrong: written by another version, edited, or crafted. Each check raises `recon.validate.Invalid`
with the entry at fault; the loader adds the file's name, so a bad checkpoint is one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from recon.validate import Invalid, count, entry, number, tensor, vector

_FLOATS = (torch.float32,)


def check_record(record: Any) -> None:
    """The bookkeeping record: types and ranges of every entry the loader reads."""
    if not isinstance(record, dict):
        raise Invalid("the record must be a JSON object")
    entry(record, "config", dict)
    count(record, "iteration")
    count(record, "views", minimum=1)
    number(record, "lr_vertices", positive=True)
    if "lr_schedule" in record:
        number(record, "lr_schedule", positive=True)
    number(record, "weight_laplacian")
    number(record, "weight_normal")
    if "rollbacks_in_a_row" in record:
        count(record, "rollbacks_in_a_row")
    if "clean_pairs" in record:
        count(record, "clean_pairs")
        count(record, "clean_iteration")
    normalization = entry(record, "normalization", dict)
    vector(entry(normalization, "centre", list, "normalization."), 3, "normalization.centre")
    number(normalization, "scale", "normalization.", positive=True)
    history = entry(record, "history", list)
    if not all(isinstance(row, dict) for row in history):
        raise Invalid("'history' must be a list of objects")
    for name in ("vertex_optimizer", "shader_optimizer"):
        meta = entry(record, name, dict)
        groups = entry(meta, "param_groups", list, f"{name}.")
        if len(groups) != 1 or not isinstance(groups[0], dict):
            raise Invalid(f"'{name}.param_groups' must hold one object")
        where = f"{name}.param_groups[0]."
        number(groups[0], "lr", where, positive=True)
        number(groups[0], "eps", where, positive=True)
        entry(groups[0], "params", list, where)
        betas = vector(entry(groups[0], "betas", list, where), 2, f"{where}betas")
        if not all(0 <= b < 1 for b in betas):
            raise Invalid(f"'{where}betas' must lie in [0, 1)")
        entry(meta, "scalars", dict, f"{name}.")


def check_tensors(
    tensors: Mapping[str, torch.Tensor],
    shader_shapes: Mapping[str, torch.Size],
    shader_params: list[torch.Size],
    views: int | None = None,
) -> None:
    """Mesh, offsets, RNG, shader and optimiser tensors: present, of the right dtype and shape, finite.

    `shader_shapes` is the state dict's shapes of a shader of the checkpoint's config,
    `shader_params` its parameters' shapes in optimiser order, `views` the record's view count.
    """
    vertices = tensor(tensors, "mesh/vertices", _FLOATS, (None, 3))
    faces = tensor(tensors, "mesh/faces", (torch.int64,), (None, 3))
    if len(vertices) < 4 or len(faces) < 4:
        raise Invalid(f"the mesh has {len(vertices)} vertices and {len(faces)} faces; a closed surface needs at least 4 of each")
    if int(faces.min()) < 0 or int(faces.max()) >= len(vertices):
        raise Invalid(f"face indices outside 0..{len(vertices) - 1}")
    tensor(tensors, "offsets", _FLOATS, tuple(vertices.shape))
    if "clean_offsets" in tensors:
        tensor(tensors, "clean_offsets", _FLOATS, tuple(vertices.shape))
    tensor(tensors, "rng", (torch.uint8,), tuple(torch.Generator().get_state().shape))
    for name, value in tensors.items():
        if name.startswith("tile_residuals/"):
            rows, _, cols = name.split("/", 1)[1].partition("x")
            if not (rows.isdigit() and cols.isdigit()):
                raise Invalid(f"tensor '{name}' does not name a tile grid (rowsxcols)")
            tensor(tensors, name, _FLOATS, (views, int(rows), int(cols)))
            if bool((value < 0).any()):
                raise Invalid(f"tensor '{name}' holds negative residuals")
    for name, shape in shader_shapes.items():
        tensor(tensors, f"shader/{name}", _FLOATS, tuple(shape))
    extra = sorted(k for k in tensors if k.startswith("shader/") and k.split("/", 1)[1] not in shader_shapes)
    if extra:
        raise Invalid(f"unexpected shader tensors {extra[:3]}")
    params = {"vertex_optimizer": [vertices.shape], "shader_optimizer": shader_params}
    for name, value in tensors.items():
        prefix, _, rest = name.partition("/")
        if prefix not in params:
            continue
        index, _, key = rest.partition("/")
        if not index.isdigit() or int(index) >= len(params[prefix]) or not key:
            raise Invalid(f"tensor '{name}' is not an entry of the {prefix.replace('_', ' ')}")
        if key != "step" and value.shape != params[prefix][int(index)]:
            raise Invalid(f"tensor '{name}' has shape {tuple(value.shape)}, expected {tuple(params[prefix][int(index)])}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise Invalid(f"tensor '{name}' holds NaN or Inf")
