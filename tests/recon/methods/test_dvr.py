"""The DVR method: a run on a synthetic sphere gives a closed mesh and a readable run folder, resumes
bit for bit, and refuses bad settings with a message.

The dataset is ray-cast analytically (no OpenGL): a sphere of radius 0.5 whose colour depends on
position only, seen by a ring of small cameras.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from recon.data import View, load
from recon.data.formats.nds import write
from recon.methods.config import ConfigError
from recon.methods.dvr import DVRConfig, DVRSession, dvr_config
from recon.methods.registry import get_method, method_names
from recon.run_folder import RunFolder
from render.camera import Camera
from render.raymarch import camera_rays

RADIUS = 0.5
TINY_FIELD = {"hidden": 32, "blocks": 1, "pe_octaves": 0}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sphere_views(count: int = 8, size: int = 24) -> list[View]:
    """Views of the sphere |p| = RADIUS from a ring at distance 2.5 (and a little above and below)."""
    views = []
    for i in range(count):
        angle = 2 * np.pi * i / count
        eye = np.array([2.5 * np.cos(angle), 2.5 * np.sin(angle), 0.8 * (-1) ** i])
        camera = Camera.look_at(eye, np.zeros(3), np.array([0.0, 0.0, 1.0]), 40.0, size, size)
        jj, ii = np.meshgrid(np.arange(size), np.arange(size))
        pixels = torch.tensor(np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], 1), dtype=torch.float64)
        rays = camera_rays(camera, pixels, dtype=torch.float64)
        o, w = rays.origins.numpy(), rays.directions.numpy()
        b = (o * w).sum(1)
        disc = b**2 - ((o * o).sum(1) - RADIUS**2)
        hit = disc > 0
        depth = -b - np.sqrt(np.maximum(disc, 0))
        points = o + depth[:, None] * w
        colour = np.where(hit[:, None], 0.5 + 0.8 * points, 0.0).clip(0, 1)
        views.append(View(f"v{i:02d}", colour.reshape(size, size, 3).astype(np.float32),
                          hit.reshape(size, size).astype(np.float32), camera))
    return views


@pytest.fixture(scope="module")
def sphere_dataset(tmp_path_factory):
    bbox = np.array([[-0.7, -0.7, -0.7], [0.7, 0.7, 0.7]])
    return write(sphere_views(), bbox, tmp_path_factory.mktemp("sphere") / "data")


def tiny_config(**changes) -> DVRConfig:
    base = dict(iterations=40, rays=96, samples=(8, 16), samples_at=(20,), lr=1e-2, field=TINY_FIELD,
                mesh_resolution=12, mesh_refinements=1, checkpoint_every=1000)
    return DVRConfig().replace(**{**base, **changes})


def test_dvr_is_a_registered_method() -> None:
    assert "dvr" in method_names()
    method = get_method("dvr")
    assert method.session_type is DVRSession
    assert method.auto_changes("cuda") == {}
    cpu = method.make_config(None, **method.auto_changes("cpu"))
    assert cpu.field.hidden < DVRConfig().field.hidden and cpu.rays < DVRConfig().rays
    assert "rays per step" in method.describe_levels(64, 48, cpu)


def test_a_short_run_gives_a_closed_coloured_mesh_and_a_readable_run_folder(sphere_dataset, tmp_path) -> None:
    from recon import runner

    session = DVRSession(load(sphere_dataset), tiny_config(iterations=120, samples_at=(60,)))
    out = RunFolder(tmp_path / "run")
    record = runner.run(session, out, method="dvr")
    assert record["method"] == "dvr" and record["iteration"] == 120
    assert json.loads(out.record_file.read_text())["config"]["field"] == {**TINY_FIELD, "init_occupancy_logit": 0.0}
    losses = [h["freespace"] + h["occupancy"] for h in session.history]
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    mesh = trimesh.load(out.mesh_file, process=False)
    assert len(mesh.faces) > 0 and mesh.is_watertight
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    radii = np.linalg.norm(mesh.vertices, axis=1)  # converges to the sphere: radius 0.5
    assert abs(np.median(radii) - RADIUS) < 0.05 and np.percentile(radii, 90) < 0.7
    # What every method leaves: the shader files read back as a shader, and export bakes t.
    appearance = out.appearance()
    x = torch.zeros(4, 3)
    n = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    assert torch.equal(appearance.shader(x, n, n), appearance.shader(x, -n, n))  # position-only
    from recon.run_export import export_run

    written, faces = export_run(out.path, "ply")
    assert faces == len(mesh.faces) and written[0].is_file()


def test_resume_equals_an_uninterrupted_run_bit_for_bit(sphere_dataset, tmp_path) -> None:
    scene = load(sphere_dataset)
    config = tiny_config(iterations=10, samples_at=(4,))
    straight = DVRSession(scene, config)
    list(straight.run())

    first = DVRSession(scene, config)
    list(first.run(6))
    first.save(tmp_path / "ckpt")
    resumed = DVRSession.load(tmp_path / "ckpt", scene)
    assert resumed.iteration == 6
    list(resumed.run())

    for (name, a), (_, b) in zip(straight.shader.state_dict().items(), resumed.shader.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.history == resumed.history
    assert torch.equal(straight.generator.get_state(), resumed.generator.get_state())


def test_run_resume_export_and_eval_through_the_cli(sphere_dataset, tmp_path, monkeypatch) -> None:
    from recon.cli import main
    from recon.methods import dvr

    # The CPU default's field and output grid cost seconds a call; the wiring is what is tested here.
    tiny = {k: v for k, v in tiny_config().to_dict().items() if k not in ("iterations", "checkpoint_every", "seed")}
    monkeypatch.setattr(dvr, "CPU_CHANGES", tiny)
    out = tmp_path / "run"
    code = main(["run", str(sphere_dataset), "--out", str(out), "--method", "dvr", "--iterations", "80",
                 "--device", "cpu"])
    assert code in (0, None)
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "dvr" and record["iteration"] == 80
    assert record["config"]["field"]["hidden"] == TINY_FIELD["hidden"]
    code = main(["resume", str(out), "--iterations", "2"])
    assert code in (0, None)
    assert json.loads((out / "run.json").read_text())["iteration"] == 82
    assert main(["export", str(out), "--format", "ply", "--out", str(tmp_path / "baked.ply")]) in (0, None)
    assert (tmp_path / "baked.ply").is_file()
    assert main(["eval", str(out), "--views", str(sphere_dataset), "--json"]) in (0, None)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"rays": 0}, "rays=0"),
        ({"samples": (16, 1)}, "samples"),
        ({"samples_at": (10,)}, "samples_at"),  # one fewer than samples: here 3 stages need 2 starts
        ({"lr": -1.0}, "lr=-1.0"),
        ({"mesh_resolution": 1}, "mesh_resolution"),
        ({"field": {"hidden": 0}}, "field"),
        ({"nope": 1}, "unknown DVR setting"),
    ],
)
def test_bad_settings_are_refused_with_a_message(changes, words) -> None:
    with pytest.raises(ConfigError, match=words):
        DVRConfig().replace(**({"samples": (16, 32, 64)} if "samples_at" in changes else {}), **changes)


def test_init_is_refused_for_dvr() -> None:
    with pytest.raises(ConfigError, match="NDS setting"):
        dvr_config(None, init="sphere")
    assert dvr_config(100, init="hull").samples_at == (17, 33, 83)


def test_a_checkpoint_of_another_method_is_refused(sphere_dataset, tmp_path) -> None:
    from recon.errors import SessionError

    (tmp_path / "ckpt").mkdir()
    with pytest.raises(SessionError, match="no checkpoint"):
        DVRSession.load(tmp_path / "ckpt", load(sphere_dataset))


def test_the_texture_shader_is_position_only() -> None:
    """(Its viewer weights: tests/recon/methods/test_dvr_viewer.py.)"""
    from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader

    shader = DVRTextureShader(DVRFieldConfig(**TINY_FIELD))
    x = torch.rand(5, 3) * 2 - 1
    n = torch.nn.functional.normalize(torch.randn(5, 3), dim=1)
    assert torch.equal(shader(x, n, n), shader.field.texture(x))
    assert torch.equal(shader(x, n, n), shader(x, -n, n.flip(0)))


def test_shader_files_round_trip_the_texture_field(tmp_path) -> None:
    from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader
    from recon.shader import NeuralShader, load_shader, save_shader

    shader = DVRTextureShader(DVRFieldConfig(**TINY_FIELD))
    _, config = save_shader(shader, (np.zeros(3), 2.0), tmp_path / "shader")
    assert json.loads(config.read_text())["format"] == "reconstruct.dvr_texture"
    loaded, normalization = load_shader(tmp_path / "shader")
    assert isinstance(loaded, DVRTextureShader) and normalization[1] == 2.0
    x = torch.rand(5, 3)
    assert torch.equal(loaded(x, x, x), shader(x, x, x))
    assert isinstance(load_shader(save_shader(NeuralShader(), (np.zeros(3), 1.0), tmp_path / "nds")[1])[0], NeuralShader)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_the_same_steps_on_cuda_follow_the_cpu(sphere_dataset) -> None:
    """The CUDA path is the CPU's code on another device: a few steps from the same start give the
    CPU's losses and leave the field on the GPU."""
    scene = load(sphere_dataset)
    config = tiny_config(iterations=3, samples_at=(2,))
    runs = {}
    for device in ("cpu", "cuda"):
        session = DVRSession(scene, config, device=device)
        runs[device] = list(session.run())
        assert all(p.device.type == device for p in session.shader.parameters())
    for a, b in zip(runs["cpu"], runs["cuda"]):
        assert a.view == b.view and a.total == pytest.approx(b.total, rel=1e-3, abs=1e-5)
