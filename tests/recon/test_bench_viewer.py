"""`reconstruct bench viewer` runs every available path at a tiny size and reports its JSON fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader
from recon.shader import NeuralShader, ShaderConfig, save_shader

pytestmark = pytest.mark.gl


def _run_folder(root: Path, method: str) -> Path:
    """A run folder as `reconstruct run --method METHOD` leaves it, as far as the viewer bench reads it."""
    torch.manual_seed(0)
    if method == "dvr":
        shader = DVRTextureShader(DVRFieldConfig(hidden=16, blocks=2, pe_octaves=1))
    else:
        shader = NeuralShader(ShaderConfig(pe_octaves=2, hidden_h=16, layers_h=1, features=8, hidden_c=16, layers_c=1))
    centre, scale = np.array([1.0, 2.0, 3.0]), 0.5
    save_shader(shader, (centre, scale), root / "shader")
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8 / scale)  # world units
    sphere.apply_translation(centre)
    sphere.export(root / "mesh.ply")
    return root


@pytest.mark.parametrize("method", ["nds", "dvr"])
def test_bench_viewer_json_reports_every_available_path(tmp_path: Path, method: str) -> None:
    run = _run_folder(tmp_path, method)
    result = subprocess.run(
        [sys.executable, "-m", "recon.cli", "bench", "viewer", "--size", "40x32", "--frames", "2", "--run", str(run), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["size"] == [40, 32] and doc["frames"] == 2 and str(run) in doc["shader"]
    assert ("texture field" in doc["shader"]) == (method == "dvr")
    paths = [row["path"] for row in doc["paths"]]
    assert "cpu" in paths and "glsl" in paths
    for row in doc["paths"]:
        for key in ("gbuffer_ms", "shading_ms", "display_ms", "total_ms", "fps"):
            assert row[key] > 0, (row["path"], key)
        assert row["covered_pixels"] > 50  # the sphere, mapped into the shader's cube, is in view
        assert row["max_abs_diff"] <= 2 / 255
    if "interop" not in paths:
        assert doc["unavailable"]["interop"]


def test_bench_viewer_rejects_a_bad_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recon.cli", "bench", "viewer", "--size", "wide"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2 and "WIDTHxHEIGHT" in result.stderr
