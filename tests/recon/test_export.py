"""Mesh export (PLY/OBJ/GLB, colours), shader baking, and run records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from recon.errors import ReconstructError
from recon.export import (
    EXPORTERS,
    ExportError,
    bake_vertex_colors,
    export_mesh,
    srgb_to_linear,
    versions,
    write_run_record,
)
from recon.shader import NeuralShader, ShaderConfig


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (float32), faces (int64), and distinct colours on a small icosphere."""
    m = trimesh.creation.icosphere(subdivisions=2)
    v = m.vertices.astype(np.float32) * 2 + np.float32([10, -5, 3])  # world coordinates, not unit
    rgb = np.random.default_rng(0).integers(0, 256, (len(v), 3)) / 255.0
    return v, m.faces.astype(np.int64), rgb


def _read_back(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertices, faces, rgba uint8 or None) as trimesh reads the file."""
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):  # glTF: colours sit in the visual's vertex attributes
        (mesh,) = loaded.geometry.values()
        attrs = getattr(mesh.visual, "vertex_attributes", {})
        colors = attrs["color"] if "color" in attrs else getattr(mesh.visual, "vertex_colors", None)
    else:
        mesh, colors = loaded, loaded.visual.vertex_colors
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), None if colors is None else np.asarray(colors)


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_srgb_formats_round_trip(tmp_path: Path, sphere, fmt: str) -> None:
    v, f, rgb = sphere
    path = export_mesh(v, f, tmp_path / "new" / "dir" / f"mesh.{fmt}", colors=rgb)
    assert path.is_file()
    rv, rf, rc = _read_back(path)
    assert rv.shape == v.shape and rf.shape == f.shape
    np.testing.assert_allclose(rv, v, atol=1e-5)
    np.testing.assert_array_equal(rf, f)
    np.testing.assert_array_equal(rc[:, :3], np.round(rgb * 255).astype(np.uint8))


def test_obj_writes_colour_on_the_vertex_lines(tmp_path: Path, sphere) -> None:
    v, f, rgb = sphere
    text = export_mesh(v, f, tmp_path / "m.obj", colors=rgb).read_text()
    v_lines = [line.split() for line in text.splitlines() if line.startswith("v ")]
    assert len(v_lines) == len(v) and all(len(p) == 7 for p in v_lines)
    np.testing.assert_allclose(np.array(v_lines[0][4:], float), rgb[0], atol=1e-6)


def test_glb_colours_are_linear_and_unlit(tmp_path: Path, sphere) -> None:
    v, f, _ = sphere
    grey = np.full(v.shape, 0.5)
    path = export_mesh(v, f, tmp_path / "m.glb", colors=grey)
    rv, rf, rc = _read_back(path)
    assert rv.shape == v.shape and rf.shape == f.shape
    np.testing.assert_allclose(rv, v, atol=1e-5)
    np.testing.assert_allclose(rc[:, :3] / 255.0, 0.214, atol=1 / 255)  # sRGB 0.5 → linear 0.214
    assert np.all(rc[:, 3] == 255)

    blob = path.read_bytes()
    json_len = int.from_bytes(blob[12:16], "little")
    tree = json.loads(blob[20 : 20 + json_len])
    assert len(blob) == int.from_bytes(blob[8:12], "little") and len(blob) % 4 == 0
    assert "KHR_materials_unlit" in tree["extensionsUsed"]
    (material,) = tree["materials"]
    assert material["pbrMetallicRoughness"]["metallicFactor"] == 0.0
    assert all(p["material"] == 0 for m in tree["meshes"] for p in m["primitives"])


def test_srgb_to_linear_known_values() -> None:
    np.testing.assert_allclose(srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0])), [0.0, 0.04045 / 12.92, 0.21404, 1.0], atol=1e-5)


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_without_colours(tmp_path: Path, sphere, fmt: str) -> None:
    v, f, _ = sphere
    rv, rf, _ = _read_back(export_mesh(v, f, tmp_path / f"m.{fmt}"))
    assert rv.shape == v.shape and rf.shape == f.shape


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_atomic_write_leaves_no_temp_files(tmp_path: Path, sphere, fmt: str) -> None:
    v, f, rgb = sphere
    target = tmp_path / f"m.{fmt}"
    target.write_text("old")
    export_mesh(v, f, target, colors=rgb)
    export_mesh(v, f, target, colors=rgb)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() != b"old"


def test_failed_export_keeps_the_old_file(tmp_path: Path, sphere, monkeypatch) -> None:
    v, f, _ = sphere
    target = tmp_path / "m.ply"
    target.write_text("old")

    def boom(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setitem(EXPORTERS, "ply", boom)
    with pytest.raises(RuntimeError):
        export_mesh(v, f, target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.ply"]


def test_unknown_format_lists_the_known_ones(tmp_path: Path, sphere) -> None:
    v, f, _ = sphere
    with pytest.raises(ExportError, match="unknown mesh format 'stl'.*glb, obj, ply") as err:
        export_mesh(v, f, tmp_path / "m.stl")
    assert isinstance(err.value, ReconstructError)
    assert not any(tmp_path.iterdir())


def test_bad_arrays_are_refused(tmp_path: Path, sphere) -> None:
    v, f, rgb = sphere
    with pytest.raises(ExportError, match="colors"):
        export_mesh(v, f, tmp_path / "m.ply", colors=rgb[:-1])
    with pytest.raises(ExportError, match="face indices"):
        export_mesh(v, f + len(v), tmp_path / "m.ply")


def test_bake_vertex_colors(sphere) -> None:
    v, f, _ = sphere
    mesh = trimesh.Trimesh(v, f, process=False)
    normals = np.array(mesh.vertex_normals)
    centre, scale = np.array([10.0, -5.0, 3.0]), 0.5
    shader = NeuralShader(ShaderConfig(hidden_h=32, features=16, hidden_c=16))
    shader.train()
    rgb = bake_vertex_colors(shader, v, normals, (centre, scale))
    assert rgb.shape == (len(v), 3) and rgb.dtype == np.float32
    assert np.all((rgb >= 0) & (rgb <= 1))
    assert shader.training  # mode restored

    with torch.no_grad():
        n = torch.as_tensor(normals, dtype=torch.float32)
        expected = shader(torch.as_tensor((v - centre) * scale, dtype=torch.float32), n, n)
    np.testing.assert_allclose(rgb, expected.numpy(), atol=1e-6)

    # A fixed view direction, and tensors as input, work too; chunking does not change results.
    import recon.export as export_module

    fixed = bake_vertex_colors(shader, torch.as_tensor(v), torch.as_tensor(normals), (centre, scale), view=np.array([0, 0, 2.0]))
    old = export_module.BAKE_CHUNK
    try:
        export_module.BAKE_CHUNK = 7
        chunked = bake_vertex_colors(shader, v, normals, (centre, scale), view=np.array([0, 0, 1.0]))
    finally:
        export_module.BAKE_CHUNK = old
    np.testing.assert_allclose(fixed, chunked, atol=1e-6)
    assert not np.allclose(fixed, rgb)


def test_run_record(tmp_path: Path) -> None:
    record = {
        "config": {"iterations": np.int64(2000), "lr": np.float32(1e-3), "out": tmp_path, "sizes": (1, 2)},
        "metrics": [{"loss": torch.tensor(0.25), "psnr": float("inf"), "v": np.arange(3)}],
        "versions": versions(),
    }
    path = write_run_record(tmp_path / "run" / "run.json", record)
    data = json.loads(path.read_text())  # strict JSON
    assert data["config"]["iterations"] == 2000 and math.isclose(data["config"]["lr"], 1e-3, rel_tol=1e-6)
    assert data["config"]["out"] == str(tmp_path) and data["config"]["sizes"] == [1, 2]
    assert data["metrics"][0] == {"loss": 0.25, "psnr": "inf", "v": [0, 1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]
    with pytest.raises(TypeError, match="object"):
        write_run_record(tmp_path / "bad.json", {"x": object()})


def test_versions_names_the_essentials() -> None:
    v = versions()
    assert {"python", "platform", "torch", "numpy", "reconstruct"} <= set(v)
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
