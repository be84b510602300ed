"""The RtS-SDF method: a signed-distance grid rendered through RtS isosurfaces, driven like NDS."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import trimesh

from recon.data import load
from recon.errors import ReconstructError, SessionError
from recon.methods.config import ConfigError
from recon.methods.registry import get_method, method_names
from recon.methods.rts_sdf import RtsSdfConfig, RtsSdfSession, describe_levels, rts_sdf_config
from recon.run_folder import RunFolder

pytestmark = pytest.mark.gl

SMALL_SHADER = {"hidden_h": 64, "features": 64, "hidden_c": 32}


def small_config(**changes) -> RtsSdfConfig:
    base = RtsSdfConfig(iterations=10, resolutions=(16, 24), upsample_at=(6,), hull_resolution=16, checkpoint_every=1000)
    return base.replace(shader={**base.shader.to_dict(), **SMALL_SHADER}, **changes)


def test_the_registry_and_the_front_ends_offer_it() -> None:
    assert "rts-sdf" in method_names()
    method = get_method("rts-sdf")
    assert method.session_type is RtsSdfSession and method.config_type is RtsSdfConfig
    assert method.auto_changes("cpu") == {"coarse_images": True} and method.auto_changes("cuda") == {}
    from recon.cli import build_parser

    args = build_parser().parse_args(["run", "d", "--out", "o", "--method", "rts-sdf"])
    assert args.method == "rts-sdf"


def test_an_iteration_count_keeps_the_upsampling_fractions() -> None:
    assert rts_sdf_config().upsample_at == (1400,)
    assert rts_sdf_config(200).upsample_at == (160,)
    config = rts_sdf_config(10, resolutions=[16, 24, 32])
    assert config.upsample_at == (6, 8) and config.iterations == 10
    assert rts_sdf_config(1).upsample_at == (1,)  # never 0: the first step is on the coarse grid
    assert describe_levels(256, 128, config.replace(coarse_images=True)) == (
        "128×64, then 256×128 from iteration 8; grid 16³ → 24³ → 32³"
    )


def test_bad_settings_are_refused_in_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"optimizer='lbfgs' \(sgd or adam\)"):
        RtsSdfConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="resolutions=.*8..512"):
        RtsSdfConfig(resolutions=(4,), upsample_at=())
    with pytest.raises(ConfigError, match="upsample_at=.*one positive, increasing iteration per stage"):
        RtsSdfConfig(resolutions=(32, 64), upsample_at=())
    with pytest.raises(ConfigError, match=r"init='mesh.ply' \(hull or sphere"):
        rts_sdf_config(10, init="mesh.ply")
    with pytest.raises(ConfigError, match="lr_grid=0, max_step=-1"):
        RtsSdfConfig(lr_grid=0, max_step=-1)
    with pytest.raises(ConfigError, match="unknown rts-sdf setting"):
        RtsSdfConfig.from_dict({"remesh_at": [1]})
    assert isinstance(ConfigError("x"), ReconstructError)  # the CLI prints it as one line


def test_a_short_run_writes_a_watertight_mesh_and_a_run_folder_that_resumes(small_demo, tmp_path) -> None:
    from recon import runner
    from recon.runs import ResumeOptions, drive, resume_run

    scene = load(small_demo)
    session = RtsSdfSession(scene, small_config(iterations=8), renderer="gl")
    record = runner.run(session, tmp_path / "run", method="rts-sdf")
    folder = RunFolder(tmp_path / "run")
    assert record["method"] == "rts-sdf" and record["iteration"] == 8
    saved = folder.record()
    assert saved["config"]["resolutions"] == [16, 24] and len(saved["losses"]) == 8
    assert set(saved["losses"][0]) >= {"silhouette", "shading", "eikonal", "curvature", "total"}
    assert any((entry["event"] or "").startswith("grid upsampled: 16³ → 24³") for entry in saved["losses"])

    mesh = trimesh.load(folder.mesh_file, process=False)
    assert mesh.is_watertight and len(mesh.faces) > 100
    bbox = scene.bbox
    assert (mesh.vertices.min(0) > bbox[0] - 0.1 * (bbox[1] - bbox[0])).all()  # world units, around the object
    assert (mesh.vertices.max(0) < bbox[1] + 0.1 * (bbox[1] - bbox[0])).all()
    appearance = folder.appearance()
    assert appearance.mesh.num_faces == len(mesh.faces)

    run = resume_run(ResumeOptions(tmp_path / "run", renderer="gl", more=2))
    assert isinstance(run.session, RtsSdfSession) and run.session.iteration == 8 and run.total == 10
    assert drive(run)["iteration"] == 10


def test_resume_equals_an_uninterrupted_run_bit_for_bit(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    config = small_config(coarse_images=True, iterations=8, upsample_at=(5,))
    straight = RtsSdfSession(scene, config, renderer="gl")
    list(straight.run())

    for stop in (3, 5):  # before, and exactly at, the upsampling (the checkpoint holds the coarse grid)
        first = RtsSdfSession(scene, config, renderer="gl")
        list(first.run(stop))
        first.save(tmp_path / f"ckpt{stop}")
        resumed = RtsSdfSession.load(tmp_path / f"ckpt{stop}", scene, renderer="gl")
        assert resumed.iteration == stop
        list(resumed.run())
        assert torch.equal(straight.grid, resumed.grid), stop
        for (name, a), (_, b) in zip(straight.shader.state_dict().items(), resumed.shader.state_dict().items()):
            assert torch.equal(a, b), (stop, name)
        assert straight.history == resumed.history


def test_sgd_resumes_bit_for_bit_too(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    config = small_config(optimizer="sgd", lr_grid=0.3, max_step=0.1, iterations=4, resolutions=(16,), upsample_at=())
    straight = RtsSdfSession(scene, config, renderer="gl")
    list(straight.run())
    first = RtsSdfSession(scene, config, renderer="gl")
    list(first.run(2))
    first.save(tmp_path / "ckpt")
    resumed = RtsSdfSession.load(tmp_path / "ckpt", scene, renderer="gl")
    list(resumed.run())
    assert torch.equal(straight.grid, resumed.grid)
    moved = (straight.grid - RtsSdfSession(scene, config, renderer="gl").grid).abs().max()
    assert 0 < moved <= 4 * 0.1 * straight.cell + 1e-6  # max_step: at most 0.1 cell a step (x 4 steps)


def test_freespace_reaches_inside_an_island_the_masks_see_through(small_demo) -> None:
    """A blob in empty space: the image terms move only lattice values on its sampled edges (its
    rim); the rays of the background pixels it covers push its inside out too, and only out."""
    scene = load(small_demo)
    grads = {}
    for weight in (0.0, 1.0):
        session = RtsSdfSession(scene, small_config(resolutions=(48,), upsample_at=(), weight_freespace=weight), renderer="gl")
        distance = (session.lattice_now.points() - torch.tensor([0.75, 0.75, 0.75])).norm(dim=-1)
        with torch.no_grad():
            session.grid[distance < 0.25] = -0.5  # deeper than the band the regularisers act on
        core = distance < 0.25 - 2.5 * session.cell  # beyond the rim's edges and their normals' neighbours
        surface = session.surface()
        for view in range(len(session.cameras)):  # the first view that shows the blob against the background
            losses, total = session._losses(view, surface)
            if weight == 0 or losses["freespace"] > 0:
                break
        session.grid.grad = None
        total.backward()
        grads[weight] = session.grid.grad[core]
    assert core.sum() > 50
    assert (grads[0.0] == 0).all()
    assert (grads[1.0] <= 0).all() and (grads[1.0] < 0).sum() > 0.3 * core.sum()


def test_specks_are_pruned_and_never_exported(small_demo) -> None:
    """Inside components under `min_component` lattice points go (the largest stays); bigger ones stay."""
    scene = load(small_demo)
    config = small_config(iterations=2, resolutions=(32,), upsample_at=(), prune_every=1, min_component=20, weight_freespace=0)
    session = RtsSdfSession(scene, config, renderer="gl")
    points = session.lattice_now.points()
    speck = (points - torch.tensor([0.8, 0.8, 0.8])).norm(dim=-1) < 1.2 * session.cell  # 7 points
    lump = (points - torch.tensor([-0.8, -0.8, -0.8])).norm(dim=-1) < 0.2  # ~ 30 points
    with torch.no_grad():
        session.grid[speck | lump] = -0.5
    session._surface = None
    assert 0 < speck.sum() < 20 <= lump.sum()
    exported = trimesh.Trimesh(*session.mesh_arrays(), process=False)
    assert (session.grid.detach()[speck] < 0).all()  # exporting changes nothing
    assert len(exported.split(only_watertight=False)) == 2  # the object and the lump
    list(session.run())
    assert (session.grid.detach()[speck] > 0).all() and (session.grid.detach()[lump] < 0).any()
    assert "pruned" in (session.history[1]["event"] or "")  # at iteration 1 (prune_every=1, not at 0)


def test_a_sphere_start_moves_towards_the_masks(small_demo) -> None:
    scene = load(small_demo)
    config = small_config(init="sphere", iterations=20, resolutions=(24,), upsample_at=(), optimizer="adam", lr_grid=1e-2)
    session = RtsSdfSession(scene, config, renderer="gl")
    before = session.silhouette_error()
    list(session.run())
    assert session.silhouette_error() < 0.8 * before
    assert (session.grid.detach()[[0, -1]] > 0).all()  # the shell stays outside: a closed level set


def test_a_checkpoint_of_another_method_or_dataset_is_refused(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    session = RtsSdfSession(scene, small_config(), renderer="gl")
    session.save(tmp_path / "ckpt")
    fewer = dataclasses.replace(scene, views=scene.views[:5])
    with pytest.raises(SessionError, match="has 12 views but the dataset has 5"):
        RtsSdfSession.load(tmp_path / "ckpt", fewer, renderer="gl")
    path = tmp_path / "ckpt" / "state.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SessionError, match="unreadable checkpoint"):
        RtsSdfSession.load(tmp_path / "ckpt", scene, renderer="gl")
    with pytest.raises(SessionError, match="no checkpoint here"):
        RtsSdfSession.load(tmp_path / "nothing", scene, renderer="gl")


def test_reconstruct_run_with_the_method_from_the_cli(small_demo, tmp_path, capsys) -> None:
    from recon.cli import main

    out = tmp_path / "cli"
    code = main(["run", str(small_demo), "--out", str(out), "--method", "rts-sdf", "--iterations", "2",
                 "--image-scale", "0.5", "--device", "cpu", "--renderer", "gl"])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "rts-sdf" and record["iteration"] == 2
    assert trimesh.load(Path(out) / "mesh.ply", process=False).is_watertight
    code = main(["run", str(small_demo), "--out", str(tmp_path / "bad"), "--method", "rts-sdf", "--init", "x.ply",
                 "--device", "cpu"])
    assert code != 0
    assert "init='x.ply' (hull or sphere" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_the_same_steps_on_cuda_follow_the_cpu(small_demo) -> None:
    """The CUDA path is the CPU's code on another device: the grid stays there, and a few steps from
    the same start give the CPU's losses (float32 shader on both; GL sampling is shared)."""
    scene = load(small_demo)
    config = small_config(iterations=3, resolutions=(16,), upsample_at=(), shader_precision="float32")
    runs = {}
    for device in ("cpu", "cuda"):
        session = RtsSdfSession(scene, config, device=device, renderer="gl")
        records = list(session.run())
        assert session.grid.device.type == device and session.grid.grad.device.type == device
        runs[device] = (records, session.grid.detach().cpu())
    (cpu, grid_cpu), (cuda, grid_cuda) = runs["cpu"], runs["cuda"]
    for a, b in zip(cpu, cuda):
        assert a.view == b.view and a.total == pytest.approx(b.total, rel=1e-3, abs=1e-5)
    assert torch.allclose(grid_cpu, grid_cuda, atol=1e-4)
