"""The CLI as other tools use it: a subprocess, its stdout JSON, its exit code and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recon.data.formats import nds
from recon.data.scene import View
from recon.shader import load_shader
from render.camera import Camera


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recon.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, list[View]]:
    views = []
    for i in range(4):
        angle = np.pi / 2 * i
        eye = np.array([2.5 * np.cos(angle), 0.8, 2.5 * np.sin(angle)])
        cam = Camera.look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]), 45.0, 40, 32)
        mask = np.zeros((32, 40), np.float32)
        mask[10:22, 14:26] = 1
        views.append(View(f"cam{i}", np.dstack([mask] * 3), mask, cam))
    bbox = np.array([[-0.4, -0.3, -0.4], [0.4, 0.3, 0.4]])
    return nds.write(views, bbox, tmp_path / "set"), views


def test_info_json_is_world_to_camera_opencv(dataset) -> None:
    path, views = dataset
    result = run_cli("info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "nds"
    assert np.allclose(doc["bbox"], [[-0.4, -0.3, -0.4], [0.4, 0.3, 0.4]])
    assert [v["name"] for v in doc["views"]] == [v.name for v in views]
    for entry, view in zip(doc["views"], views):
        assert (entry["width"], entry["height"]) == (40, 32)
        assert np.allclose(entry["K"], view.camera.K, atol=1e-12)
        assert np.allclose(entry["R"], view.camera.R, atol=1e-12)
        assert np.allclose(entry["t"], view.camera.t, atol=1e-12)


def test_info_text_names_format_and_bbox_source(dataset) -> None:
    result = run_cli("info", str(dataset[0]))
    assert result.returncode == 0, result.stderr
    assert "nds" in result.stdout and "4 at 40×32" in result.stdout and "(given)" in result.stdout


def test_convert_round_trip(dataset, tmp_path) -> None:
    src, views = dataset
    dst = tmp_path / "copy"
    result = run_cli("convert", str(src), str(dst))
    assert result.returncode == 0, result.stderr
    again = json.loads(run_cli("info", str(dst), "--json").stdout)
    assert np.allclose([v["R"] for v in again["views"]], [v.camera.R for v in views], atol=1e-12)


@pytest.mark.parametrize(
    "args",
    [
        ("info", "/no/such/folder"),
        ("info", "{tmp}"),
        ("convert", "{tmp}", "{tmp}/out"),
        ("info", "{bad}"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, tmp_path, dataset) -> None:
    src, _ = dataset
    (src / "cam2_r.txt").write_text("1 0 0\n0 1 0\n0 0 nan\n")
    args = [a.format(tmp=tmp_path / "empty", bad=src) for a in args]
    (tmp_path / "empty").mkdir(exist_ok=True)
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reconstruct: error:"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def finished_run(small_demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    result = run_cli("run", str(small_demo), "--out", str(out), "--iterations", "6", "--image-scale", "1", "--renderer", "gl")
    assert result.returncode == 0, result.stderr
    return out


def test_run_writes_the_run_folder(finished_run) -> None:
    import trimesh

    for name in ("mesh.ply", "shader.safetensors", "shader.json", "run.json", "checkpoint/state.safetensors"):
        assert (finished_run / name).is_file(), name
    record = json.loads((finished_run / "run.json").read_text())
    assert record["iteration"] == 6 and len(record["losses"]) == 6
    assert record["image_scale"] == 1.0 and record["renderer"] == "gl"
    assert set(record["losses"][0]) >= {"silhouette", "shading", "laplacian", "normal", "total"}
    mesh = trimesh.load(finished_run / "mesh.ply", process=False)
    assert len(mesh.faces) == record["mesh"]["faces"]


def test_run_json_records_the_method_and_the_config_recon_runs_plans(finished_run, small_demo) -> None:
    from recon.runs import RunOptions, plan

    record = json.loads((finished_run / "run.json").read_text())
    options = RunOptions(small_demo, finished_run, iterations=6, image_scale=1.0, device="cpu")
    assert record["method"] == "nds" and record["config"] == plan(options).config.to_dict()


def test_set_changes_settings_by_name_and_run_json_keeps_them(small_demo, tmp_path) -> None:
    out = tmp_path / "r"
    result = run_cli("run", str(small_demo), "--out", str(out), "--iterations", "2", "--image-scale", "1", "--renderer",
                     "gl", "--set", "views_per_step=2", "--set", "shader.hidden_h=16", "--set", "weight_normal=1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "run.json").read_text())["config"]
    assert (config["views_per_step"], config["shader"]["hidden_h"], config["weight_normal"]) == (2, 16, 1.0)
    assert config["shader"]["features"] == 256  # the group's other fields as they were


@pytest.mark.parametrize(
    ("setting", "message"),
    [("views_per_step=two", "expected an integer"), ("view_per_step=2", "no such setting"), ("views_per_step", "NAME=VALUE"),
     ("views_per_step=0", "views_per_step=0")],
)  # fmt: skip
def test_a_bad_set_is_one_line_before_anything_is_loaded(small_demo, tmp_path, setting, message) -> None:
    result = run_cli("run", str(small_demo), "--out", str(tmp_path / "r"), "--set", setting)
    assert result.returncode == 2 and not (tmp_path / "r").exists()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reconstruct: error:") and message in lines[0], result.stderr


def test_settings_lists_what_set_takes_with_the_values_auto_gives() -> None:
    result = run_cli("settings", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["method"] == "nds" and listed["auto"]["views_per_step"] == 1
    assert (listed["auto"]["shader.features"], listed["fixed_scale"]["shader.features"]) == (128, 256)
    text = run_cli("settings", "--method", "rts-sdf")
    assert text.returncode == 0 and "--set NAME=VALUE" in text.stdout
    assert any(line.split()[:1] == ["lr_grid"] for line in text.stdout.splitlines())


def test_resume_continues_and_refuses_a_second_run_in_place(finished_run, small_demo) -> None:
    again = run_cli("run", str(small_demo), "--out", str(finished_run), "--iterations", "6")
    assert again.returncode == 2 and "resume" in again.stderr
    before = json.loads((finished_run / "run.json").read_text())
    result = run_cli("resume", str(finished_run), "--iterations", "2", "--renderer", "gl")
    assert result.returncode == 0, result.stderr
    record = json.loads((finished_run / "run.json").read_text())
    assert record["iteration"] == 8
    # run.json keeps the run's totals: both sessions, and the time of the whole run
    assert [(s["from"], s["to"]) for s in record["sessions"]] == [(0, 6), (6, 8)]
    assert record["seconds"] == pytest.approx(before["seconds"] + record["sessions"][1]["seconds"])
    assert "s in all)" in result.stdout


def test_eval_and_export(finished_run, small_demo) -> None:
    import trimesh

    result = run_cli("eval", str(finished_run / "mesh.ply"), "--reference", str(small_demo / "gt_mesh.ply"), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert 0 < figures["chamfer_rel"] < 0.2 and figures["accuracy"] > 0
    result = run_cli("eval", str(finished_run), "--views", str(small_demo), "--json")
    assert result.returncode == 0, result.stderr
    views = json.loads(result.stdout)
    assert views["views"] == 12 and 5 < views["psnr"] < 60 and views["silhouette_iou"] > 0.7
    out = finished_run / "colored.glb"
    result = run_cli("export", str(finished_run), "--format", "glb", "--out", str(out), "--texture-size", "256")
    assert result.returncode == 0, result.stderr
    assert "texture atlas" in result.stdout
    (mesh,) = trimesh.load(out).geometry.values()
    assert len(mesh.faces) > 0
    # The shader's colours, as trimesh shows them (a material beside vertex colours showed white).
    colours = mesh.visual.to_color().vertex_colors[:, :3]
    assert colours.mean() < 240 and colours.std(0).max() > 0.5
    result = run_cli("export", str(finished_run), "--format", "glb", "--vertex-colors", "--out", str(out))
    assert result.returncode == 0 and "vertex colours" in result.stdout, result.stderr
    result = run_cli("export", str(finished_run), "--format", "ply", "--texture")
    assert result.returncode == 2 and "PLY has no texture" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("run", "/no/such/set", "--out", "{tmp}/o"),
        ("run", "{tmp}", "--out", "{tmp}/o", "--image-scale", "big"),
        ("resume", "{tmp}"),
        ("eval", "{tmp}/none.ply", "--reference", "{tmp}/none.ply"),
        ("eval", "{tmp}"),
        ("export", "{tmp}/nothing"),
        ("export", "{tmp}"),
    ],
)
def test_engine_commands_on_bad_input_exit_nonzero_with_one_line(args, tmp_path) -> None:
    result = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("reconstruct: error:"), result.stderr


HELD = ["view_000", "view_004", "view_008"]  # --holdout 4 of the 12 small-demo views


@pytest.fixture(scope="module")
def holdout_run(small_demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("holdout") / "r"
    result = run_cli(
        "run", str(small_demo), "--out", str(out), "--iterations", "4", "--image-scale", "1", "--renderer", "gl",
        "--holdout", "4",
    )
    assert result.returncode == 0, result.stderr
    return out


def test_holdout_is_recorded_and_never_reaches_training(holdout_run, small_demo, tmp_path) -> None:
    import trimesh

    from recon.data import load

    record = json.loads((holdout_run / "run.json").read_text())
    assert record["holdout"] == HELD and record["holdout_every"] == 4
    assert record["dataset"]["views"] == 9
    # The same run on a copy of the dataset that lacks the held-out views is identical, bit for bit.
    scene = load(small_demo)
    kept = [v for v in scene.views if v.name not in HELD]
    copy = nds.write(kept, scene.bbox, tmp_path / "without")
    out = tmp_path / "r"
    result = run_cli("run", str(copy), "--out", str(out), "--iterations", "4", "--image-scale", "1", "--renderer", "gl")
    assert result.returncode == 0, result.stderr
    # Two processes occasionally differ in the last bits (a rare run-to-run nondeterminism, see the README),
    # so losses and meshes are compared to float precision; a held-out view reaching training would change
    # them by orders of magnitude more.
    losses = json.loads((out / "run.json").read_text())["losses"]
    assert [r["event"] for r in losses] == [r["event"] for r in record["losses"]]
    for got, want in zip(losses, record["losses"], strict=True):
        assert {k: v for k, v in got.items() if k != "event"} == pytest.approx(
            {k: v for k, v in want.items() if k != "event"}, rel=1e-5
        )
    a, b = (trimesh.load(p / "mesh.ply", process=False) for p in (out, holdout_run))
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)


def test_eval_compares_exactly_the_held_out_views(holdout_run, small_demo) -> None:
    result = run_cli("eval", str(holdout_run), "--views", str(small_demo), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["split"] == "held-out" and doc["views"] == 3
    assert [v["name"] for v in doc["per_view"]] == HELD
    assert 5 < doc["psnr"] < 60 and 0 < doc["silhouette_iou"] <= 1
    every = json.loads(run_cli("eval", str(holdout_run), "--views", str(small_demo), "--all-views", "--json").stdout)
    assert every["split"] == "all" and every["views"] == 12


def test_resume_keeps_the_same_views_held_out(holdout_run) -> None:
    result = run_cli("resume", str(holdout_run), "--iterations", "1", "--renderer", "gl")
    assert result.returncode == 0, result.stderr
    record = json.loads((holdout_run / "run.json").read_text())
    assert record["iteration"] == 5 and record["holdout"] == HELD and record["dataset"]["views"] == 9


def test_bad_holdout_is_one_line(small_demo, tmp_path) -> None:
    result = run_cli("run", str(small_demo), "--out", str(tmp_path / "o"), "--holdout", "1")
    assert result.returncode == 2 and "at least 2" in result.stderr and "Traceback" not in result.stderr


def test_auto_image_scale_on_the_cpu_starts_on_halved_images(small_demo, tmp_path) -> None:
    out = tmp_path / "auto"
    result = run_cli("run", str(small_demo), "--out", str(out), "--iterations", "4", "--device", "cpu", "--renderer", "gl")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["coarse_images"] is True and record["config"]["splat_shading"] is True
    assert record["config"]["pe_from_remesh"] == 2 and load_shader(out / "shader.json")[0].config.hidden_h == 128
    assert record["image_scale"] == 1.0  # the 64² demo is under CPU_MAX_SIDE: loaded as it is


@pytest.mark.gl
def test_demo_of_the_part_measures_chamfer_and_concavities(tmp_path, monkeypatch, capsys) -> None:
    """`reconstruct demo --scene part` end to end, in-process on a 12-view 64 px part (the shipped one
    renders 40 views at 512²); what it prints is what run.json records."""
    from recon import cli, demo

    shipped = demo.load_recipe
    monkeypatch.setattr(demo, "load_recipe", lambda scene: shipped(views=12, size=64, scene=scene))
    out = tmp_path / "run"
    args = ["demo", "--scene", "part", "--iterations", "30", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--image-scale", "1", "--device", "cpu", "--renderer", "gl"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["iteration"] == 30 and "machined-part" in printed
    assert record["dataset"]["views"] == 12 and record["dataset"]["resolution"] == [64, 64]
    assert f"{100 * record['chamfer']['chamfer_rel']:.3f} %" in printed
    far = record["concavity"]["far_surface"]
    assert 0 < far["far_fraction"] < 1 and 0 <= far["far_outside_share"] <= 1
    assert f"{100 * far['far_fraction']:.1f} % of the true surface" in printed
    regions = record["concavity"]["primitives"]
    assert list(regions) == ["block", "boss", "wide_slot", "narrow_slot", "drilled_hole"]
    assert sum(r["share"] for r in regions.values()) == pytest.approx(1.0)
    assert f"block {100 * regions['block']['share']:.0f} %, {100 * regions['block']['area']:.0f} %" in printed
    cavities = record["concavity"]["cavities"]
    assert sorted(cavities) == ["narrow_slot", "wide_slot"]
    for name, cavity in cavities.items():
        assert cavity["depth"] == pytest.approx(0.2, abs=0.01) and cavity["columns"] > 0
        assert f"{name} carved to {100 * cavity['carved']:.1f} %" in printed
    topology = record["topology"]
    assert topology["truth"] == {"components": 1, "euler": 0, "genus": 1, "watertight": True}  # the drilled hole
    assert topology["reconstruction"]["watertight"] and topology["reconstruction"]["components"] >= 1
    assert "against the truth's 1 in 1" in printed
