"""A run's clustering on disk: `materials.safetensors` (tensors) + `materials.json` (the record).

Stored beside the run so that edits, which name materials by id, always meet the same materials:
`edits.json` records the clustering's k and fingerprint, and the clustering records the digest of
the shader it was made from, so neither can silently apply to another. No pickle: safetensors
and JSON only. Both files are written atomically, tensors first; the JSON carries their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from recon.atomic import write_bytes_atomic, write_text_atomic
from recon.errors import FileError
from recon.jsonfile import read_json_object
from recon.materials.discover import Materials
from recon.run_folder import RunFolder
from render.viewer.features import FeatureProjection

log = logging.getLogger(__name__)

FORMAT_NAME = "reconstruct.materials"
FORMAT_VERSION = 1


class MaterialsFileError(FileError):
    """A stored clustering cannot be read: `path` is the file at fault."""


def materials_paths(run_dir: Path | str) -> tuple[Path, Path]:
    """(tensors, record) paths of the clustering stored in a run folder."""
    return RunFolder(run_dir).materials_files


def save_materials(run_dir: Path | str, materials: Materials) -> tuple[Path, Path]:
    """Write the clustering into a run folder; returns both paths."""
    tensors_path, record_path = materials_paths(run_dir)
    p = materials.projection
    tensors = {
        "centroids": materials.centroids,
        "cell_material": materials.cell_material,
        "representatives": materials.representatives,
        "area_share": materials.area_share,
        "mean_color": materials.mean_color,
        "projection.mean": p.mean,
        "projection.basis": p.basis,
        "projection.low": p.low,
        "projection.high": p.high,
    }
    tensors = {
        k: v.detach().to("cpu", torch.int64 if k == "cell_material" else torch.float32).contiguous()
        for k, v in tensors.items()
    }
    blob = safetensors.torch.save(tensors, metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION)})
    record = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "k": materials.k,
        "fingerprint": materials.fingerprint,
        "shader_sha256": materials.shader_digest,
        "seed": materials.seed,
        "samples": materials.samples,
        "auto_k": materials.auto_k,
        "cells": int(materials.centroids.shape[0]),
        "silhouette": {str(k): v for k, v in materials.silhouette.items()},
        "materials": [m.to_dict() for m in materials.info()],
        "tensors": {"file": tensors_path.name, "sha256": hashlib.sha256(blob).hexdigest()},
    }
    write_bytes_atomic(tensors_path, blob)
    write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")
    log.info("saved %d materials to %s", materials.k, record_path)
    return tensors_path, record_path


def _read_record(path: Path) -> dict[str, Any]:
    record = read_json_object(path, MaterialsFileError, missing="no stored materials; run `reconstruct materials DIR` first")
    if record.get("format") != FORMAT_NAME:
        raise MaterialsFileError(path, f"not a materials record (expected \"format\": \"{FORMAT_NAME}\")")
    if record.get("version") != FORMAT_VERSION:
        raise MaterialsFileError(path, f"unsupported version {record.get('version')!r} (this build reads {FORMAT_VERSION})")
    return record


def load_materials(run_dir: Path | str) -> Materials:
    """Read the clustering stored in a run folder.

    Raises:
        MaterialsFileError: missing, corrupt, or of another format; the message names the file.
    """
    tensors_path, record_path = materials_paths(run_dir)
    record = _read_record(record_path)
    try:
        blob = tensors_path.read_bytes()
    except OSError as e:
        raise MaterialsFileError(tensors_path, f"cannot read the materials tensors: {e}") from e
    if hashlib.sha256(blob).hexdigest() != (record.get("tensors") or {}).get("sha256"):
        raise MaterialsFileError(tensors_path, f"does not match the checksum in {record_path.name} (corrupt, or from another save)")
    try:
        t = safetensors.torch.load(blob)
        materials = Materials(
            centroids=t["centroids"],
            cell_material=t["cell_material"],
            representatives=t["representatives"],
            area_share=t["area_share"],
            mean_color=t["mean_color"],
            projection=FeatureProjection(t["projection.mean"], t["projection.basis"], t["projection.low"], t["projection.high"]),
            seed=int(record["seed"]),
            samples=int(record["samples"]),
            auto_k=bool(record["auto_k"]),
            shader_digest=str(record["shader_sha256"]),
            silhouette={int(k): float(v) for k, v in record.get("silhouette", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MaterialsFileError(record_path, f"incomplete materials record or tensors ({type(e).__name__}: {e})") from e
    if (
        materials.k != record.get("k")
        or materials.fingerprint != record.get("fingerprint")
        or materials.cell_material.shape != materials.centroids.shape[:1]
        or not bool(((materials.cell_material >= 0) & (materials.cell_material < materials.k)).all())
    ):
        raise MaterialsFileError(record_path, "k or fingerprint do not match the stored tensors")
    return materials
