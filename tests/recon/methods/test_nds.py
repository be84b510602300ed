"""The NDS session: it reconstructs, resumes bit for bit, and never keeps a broken state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from recon.data import load
from recon.eval import chamfer
from recon.methods.config import ConfigError, NDSConfig
from recon.mesh import check_mesh, ops
from recon.methods.nds import NDSSession, SessionError

pytestmark = pytest.mark.gl

SMALL_SHADER = {"hidden_h": 64, "features": 64, "hidden_c": 32}


def small_config(**changes) -> NDSConfig:
    base = NDSConfig(iterations=60, remesh_at=(30,), hull_resolution=16, checkpoint_every=1000)
    return base.replace(shader={**base.shader.to_dict(), **SMALL_SHADER}, **changes)


def _gbuffer(session: NDSSession, view: int):
    """The session's G-buffer of `view` at its current image level, as a step builds it."""
    vertices, faces, camera = session.vertices, session.mesh.faces, session.cameras[view]
    frags, clip = session.renderer.sample(vertices, faces, camera)
    return session.renderer.evaluate(vertices, faces, camera, frags, clip, session.mesh.vertex_normals(vertices))


def _chamfer_rel(session: NDSSession, gt: trimesh.Trimesh) -> float:
    snap = session.snapshot()
    return chamfer((snap.world_vertices, snap.faces), gt, n_samples=20_000)["chamfer_rel"]


def test_short_reconstruction_lowers_losses_and_chamfer(small_demo) -> None:
    scene = load(small_demo)
    gt = trimesh.load(small_demo / "gt_mesh.ply", process=False)
    # From a sphere far from the pot, so that every measure has room to fall.
    config = small_config(init="sphere", iterations=80, remesh_at=(40,), lr_vertices=5e-3)
    session = NDSSession(scene, config, renderer="gl")
    before, silhouette_before = _chamfer_rel(session, gt), session.silhouette_error()
    records = list(session.run())
    assert len(records) == 80 and session.done
    assert session.silhouette_error() < 0.6 * silhouette_before
    shading = [r.losses["shading"] for r in records]
    assert np.mean(shading[-10:]) < 0.6 * np.mean(shading[:10])
    assert _chamfer_rel(session, gt) < 0.8 * before
    assert any(r.event and r.event.startswith("remeshed") for r in records)
    assert session.mesh.num_faces > 3000


@pytest.mark.parametrize("tile", [0, 4], ids=["scattered pixels", "residual-guided tiles"])
def test_resume_equals_an_uninterrupted_run_bit_for_bit(small_demo, tmp_path, tile) -> None:
    scene = load(small_demo)
    config = small_config(
        iterations=12, remesh_at=(7,), shading_tile=tile, shading_fraction=0.4, last_stage_views=2, last_stage_anneal=0.5
    )
    straight = NDSSession(scene, config, renderer="gl")
    list(straight.run())

    first = NDSSession(scene, config, renderer="gl")
    list(first.run(5))
    first.save(tmp_path / "ckpt")
    resumed = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    assert resumed.iteration == 5
    list(resumed.run())

    assert torch.equal(straight.vertices, resumed.vertices)
    assert torch.equal(straight.mesh.faces, resumed.mesh.faces)
    for (name, a), (_, b) in zip(straight.shader.state_dict().items(), resumed.shader.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.history == resumed.history
    assert straight.tile_residuals.keys() == resumed.tile_residuals.keys() and (len(straight.tile_residuals) > 0) == (tile > 0)
    for key, value in straight.tile_residuals.items():
        assert torch.equal(value, resumed.tile_residuals[key]), key


def test_positional_encoding_joins_from_zero_at_its_remesh_and_resumes_bit_for_bit(small_demo, tmp_path) -> None:
    """With `pe_from_remesh` the octaves' weights in h's first layer stay exactly 0 until that
    remesh (the shader is a function of the raw position), then learn; the raw position's learn
    throughout; a run resumed before the unlock ends where an uninterrupted one does."""
    scene = load(small_demo)
    config = small_config(iterations=10, remesh_at=(3, 6), pe_from_remesh=2)
    assert config.pe_unlock_iteration == 6
    session = NDSSession(scene, config, renderer="gl")
    first = session.shader.h[0].weight.detach().clone()
    assert not first[:, 3:].any() and first[:, :3].any()
    list(session.run(4))
    weights = session.shader.h[0].weight.detach()
    assert not weights[:, 3:].any() and not torch.equal(weights[:, :3], first[:, :3])
    session.save(tmp_path / "ckpt")
    list(session.run())
    assert session.shader.h[0].weight.detach()[:, 3:].abs().amax(dim=0).gt(0).all()  # every octave column learnt
    resumed = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    list(resumed.run())
    for (name, a), (_, b) in zip(session.shader.state_dict().items(), resumed.shader.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(session.vertices, resumed.vertices)
    with pytest.raises(ConfigError, match="pe_from_remesh"):
        NDSConfig(remesh_at=(3,), pe_from_remesh=2)


def test_forced_nan_is_rolled_back(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    list(session.run(3))
    good = session.vertices.detach().clone()
    lr = session.lr_vertices
    with torch.no_grad():
        session.offsets[0, 1] = float("nan")
    record = session.step()
    assert record.event is not None and record.event.startswith("rollback: invalid state before step")
    assert torch.isfinite(session.vertices).all()
    assert session.lr_vertices == pytest.approx(lr / 2, rel=0.02)  # halved, then one good step's growth
    assert (session.vertices.detach() - good).abs().max() < 0.05  # back near the last good state


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("which", ["offsets", "last shader bias"])
def test_a_non_finite_gradient_with_a_finite_loss_is_rolled_back(small_demo, bad, which) -> None:
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    list(session.run(2))
    weights = {k: v.clone() for k, v in session.shader.state_dict().items()}
    offsets = session.offsets.detach().clone()
    target = session.offsets if which == "offsets" else list(session.shader.parameters())[-1]
    hook = target.register_hook(lambda grad: grad.index_fill(0, torch.tensor([0]), bad))
    record = session.step()
    hook.remove()
    assert record.event is not None and "gradients are not finite" in record.event
    assert torch.isfinite(torch.tensor(record.total))
    assert torch.equal(session.offsets.detach(), offsets)
    for k, v in session.shader.state_dict().items():
        assert torch.equal(v, weights[k]), k


@pytest.mark.parametrize("tile", [0, 4], ids=["scattered pixels", "residual-guided tiles"])
def test_nan_in_the_shader_is_rolled_back_too(small_demo, tmp_path, tile) -> None:
    scene = load(small_demo)
    session = NDSSession(scene, small_config(shading_tile=tile), renderer="gl")
    list(session.run(2))
    weights = {k: v.clone() for k, v in session.shader.state_dict().items()}
    residuals = {k: v.clone() for k, v in session.tile_residuals.items()}
    with torch.no_grad():
        next(session.shader.parameters()).fill_(float("nan"))
    record = session.step()
    assert "not finite" in record.event
    for k, v in session.shader.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for k, v in session.tile_residuals.items():  # a NaN residual would poison every later draw
        assert torch.equal(v, residuals[k]), k
    session.save(tmp_path / "ckpt")
    NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")


def test_a_step_that_remeshes_and_rolls_back_reports_both(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    list(session.run(30))  # the next step remeshes (remesh_at=(30,))
    faces = session.mesh.num_faces
    for image in session.images:
        image.fill_(float("nan"))  # so that same step's loss is not finite
    record = session.step()
    assert record.event.startswith("remeshed: ") and "; rollback: loss is not finite" in record.event
    assert session.history[-1]["event"] == record.event
    assert session.mesh.num_faces > faces  # the remesh stands; only the step was undone


def test_snapshot_is_an_immutable_copy(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    snap = session.snapshot()
    snap.vertices[:] = 0
    next(iter(snap.shader_state.values())).zero_()
    assert session.vertices.abs().sum() > 0
    list(session.run(2))
    assert not np.array_equal(session.snapshot().vertices, snap.vertices)
    centre, scale = session.normalization
    assert np.allclose(snap.world_vertices, snap.vertices / scale + centre, atol=1e-5)


def test_bad_settings_and_checkpoints_are_refused(small_demo, tmp_path) -> None:
    with pytest.raises(ConfigError, match="shading_fraction"):
        NDSConfig(shading_fraction=0)
    with pytest.raises(ConfigError, match="shading_tile"):
        NDSConfig(shading_tile=-1)
    with pytest.raises(ConfigError, match="unknown"):
        NDSConfig.from_dict({"iterationz": 3})
    scene = load(small_demo)
    with pytest.raises(SessionError, match="no checkpoint"):
        NDSSession.load(tmp_path, scene)
    (tmp_path / "state.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(SessionError, match="unreadable"):
        NDSSession.load(tmp_path, scene)


def test_smooth_steps_resume_bit_for_bit_and_roll_back(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    config = small_config(iterations=8, remesh_at=(4,), smooth_steps=5.0)
    straight = NDSSession(scene, config, renderer="gl")
    list(straight.run())
    first = NDSSession(scene, config, renderer="gl")
    list(first.run(3))
    first.save(tmp_path / "ckpt")
    resumed = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    assert resumed.config.smooth_steps == 5.0
    list(resumed.run())
    assert torch.equal(straight.vertices, resumed.vertices) and straight.history == resumed.history
    # A step is diffused: one vertex's NaN spoils its neighbourhood, and the rollback undoes it all.
    good = resumed.vertices.detach().clone()
    resumed.config = resumed.config.replace(iterations=9)
    with torch.no_grad():
        resumed.offsets[0, 1] = float("nan")
    assert not torch.isfinite(resumed.vertices).all()
    record = resumed.step()
    assert record.event is not None and record.event.startswith("rollback")
    assert torch.isfinite(resumed.vertices).all() and (resumed.vertices.detach() - good).abs().max() < 0.05
    with pytest.raises(ConfigError, match="smooth_steps"):
        NDSConfig(smooth_steps=-1)




def test_splat_shading_renders_the_shading_term_through_the_splat(small_demo) -> None:
    """The flag is honoured: with it the shaded samples are splatted (one image for both terms)."""
    scene = load(small_demo)
    runs = {}
    for splat_shading in (False, True):
        session = NDSSession(scene, small_config(iterations=3, splat_shading=splat_shading), renderer="gl", profile=True)
        runs[splat_shading] = (list(session.run()), {row["stage"] for row in session.profiler.table()})
    assert "splatting" in runs[True][1] and "splatting" not in runs[False][1]
    assert runs[True][0][0].losses["silhouette"] == pytest.approx(runs[False][0][0].losses["silhouette"], rel=0.05)
    assert runs[True][0][0].losses["shading"] != runs[False][0][0].losses["shading"]


def test_shading_tiles_are_whole_tiles_and_give_the_shading_term_of_every_sample(small_demo) -> None:
    """With `shading_tile` the term's pixels are whole tiles, just enough of them, and shading only
    the samples near them changes neither the term nor its gradients."""
    tile, fraction = 4, 0.3
    session = NDSSession(load(small_demo), small_config(shading_tile=tile, shading_fraction=fraction), renderer="gl")
    gbuffer = _gbuffer(session, 0)
    index, region = session._shaded_pixels(0, gbuffer)

    inside = gbuffer.covered[0] & (session.masks[0] > 0.5)
    height, width = inside.shape
    chosen = torch.zeros(height * width, dtype=torch.bool)
    chosen[index] = True
    chosen = chosen.reshape(height, width)
    rows, cols = -(-height // tile), -(-width // tile)
    per_tile = torch.nn.functional.pad(chosen, (0, cols * tile - width, 0, rows * tile - height))
    per_tile = per_tile.reshape(rows, tile, cols, tile).sum(dim=(1, 3))
    inside_tile = torch.nn.functional.pad(inside, (0, cols * tile - width, 0, rows * tile - height))
    inside_tile = inside_tile.reshape(rows, tile, cols, tile).sum(dim=(1, 3))
    taken = per_tile > 0
    assert torch.equal(per_tile[taken], inside_tile[taken])  # whole tiles
    assert fraction * inside.sum() <= chosen.sum() < fraction * inside.sum() + inside_tile[taken].max()  # just enough
    grown = torch.nn.functional.max_pool2d(chosen[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    assert bool(region[grown].all()) and region.sum() < inside.sum()

    def term(where):
        image = session.renderer.splat(gbuffer, session.renderer.shade_samples(gbuffer, session.training_shader, where=where))
        colour = image[..., :3].reshape(-1, 3)[index]
        loss = (colour - session.images[0].reshape(-1, 3)[index]).abs().mean()
        weights = next(session.shader.parameters())
        return (loss, *torch.autograd.grad(loss, [session.offsets, weights], retain_graph=True))

    for full, tiled in zip(term(None), term(region)):
        assert torch.allclose(full, tiled, atol=1e-6, rtol=1e-5)


def test_shading_tiles_are_drawn_where_the_residual_is_and_none_is_starved(small_demo) -> None:
    tile = 4
    session = NDSSession(load(small_demo), small_config(shading_tile=tile, shading_fraction=0.2), renderer="gl")
    gbuffer = _gbuffer(session, 0)
    inside = gbuffer.covered[0] & (session.masks[0] > 0.5)
    height, width = inside.shape
    cols = -(-width // tile)
    flat = inside.flatten().nonzero().squeeze(1)
    tiles = ((flat // width // tile) * cols + (flat % width) // tile).unique()
    residuals = session._tile_residuals(height, width)
    residuals[0] = 1.0
    settled = tiles[::2]  # half the tiles already right: residual 0
    residuals[0].view(-1)[settled] = 0.0
    worst = int(tiles[1])
    residuals[0].view(-1)[worst] = 100.0
    drawn = []
    for _ in range(30):
        index, _ = session._shaded_pixels(0, gbuffer)
        drawn.append(((index // width // tile) * cols + (index % width) // tile).unique())
    assert all(worst in d for d in drawn)  # the worst tile every time
    share = sum(int(torch.isin(d, settled).sum()) for d in drawn) / sum(len(d) for d in drawn)
    assert 0.05 < share < 0.4  # settled tiles less often, but still drawn (the floor)

    index, _ = session._shaded_pixels(1, gbuffer)
    session._record_residual(1, index, torch.full((len(index), 3), 0.5))
    recorded = session._tile_residuals(height, width)[1].view(-1)
    drawn_tiles = ((index // width // tile) * cols + (index % width) // tile).unique()
    assert torch.allclose(recorded[drawn_tiles], torch.tensor(1.5))
    assert int((recorded == 1.0).sum()) == recorded.numel() - len(drawn_tiles)  # the rest: never drawn yet


def test_a_checkpoint_with_bad_tile_residuals_is_refused_naming_the_tensor(small_demo, tmp_path) -> None:
    import json

    from safetensors.torch import load_file, save_file

    scene = load(small_demo)
    session = NDSSession(scene, small_config(shading_tile=4), renderer="gl")
    list(session.run(2))
    path = session.save(tmp_path / "ckpt")
    record = json.loads(json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])["__metadata__"]["record"])
    (name, value), = [(k, v) for k, v in load_file(path).items() if k.startswith("tile_residuals/")]
    for bad in (value[:-1], -value, value.double()):
        save_file({**load_file(path), name: bad.contiguous()}, path, metadata={"record": json.dumps(record)})
        with pytest.raises(SessionError, match=f"state.safetensors: bad checkpoint: tensor '{name}'"):
            NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")


def test_coarse_images_work_halved_until_the_last_remesh_and_resume_across_the_switch(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    config = small_config(iterations=10, remesh_at=(4, 6), coarse_images=True)
    session = NDSSession(scene, config, renderer="gl")
    full = scene.views[0].camera
    assert session.coarse and session.cameras[0].width == full.width // 2
    assert session.images[0].shape == (full.height // 2, full.width // 2, 3)
    assert np.allclose(session.cameras[0].K[:2], full.K[:2] / 2)
    list(session.run(6))
    assert not session.coarse and session.cameras[0].width == full.width
    assert session.masks[0].shape == scene.views[0].mask.shape

    straight = NDSSession(scene, config, renderer="gl")
    list(straight.run())
    first = NDSSession(scene, config, renderer="gl")
    list(first.run(5))  # stop on the coarse side of the switch
    first.save(tmp_path / "ckpt")
    resumed = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    assert resumed.config.coarse_images and resumed.coarse
    list(resumed.run())
    assert torch.equal(straight.vertices, resumed.vertices) and straight.history == resumed.history


def test_a_checkpoint_from_before_splat_shading_resumes_with_the_shading_it_ran_with(small_demo, tmp_path) -> None:
    import json

    from safetensors.torch import load_file, save_file

    scene = load(small_demo)
    session = NDSSession(scene, small_config(iterations=4), renderer="gl")
    list(session.run(2))
    path = session.save(tmp_path / "ckpt")
    header = json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])
    record = json.loads(header["__metadata__"]["record"])
    del record["config"]["splat_shading"]  # as written before the setting existed
    save_file(load_file(path), path, metadata={"record": json.dumps(record)})
    assert NDSSession.load(tmp_path / "ckpt", scene, renderer="gl").config.splat_shading is False


def test_a_rolled_back_step_grows_back_to_the_schedules(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(iterations=90, remesh_at=()), renderer="gl")
    list(session.run(2))
    scheduled = session.lr_vertices
    with torch.no_grad():
        session.offsets[0, 1] = float("nan")
    session.step()
    assert session.lr_vertices == pytest.approx(scheduled / 2, rel=0.02)
    list(session.run(10))
    assert scheduled / 2 < session.lr_vertices < scheduled
    list(session.run(70))
    assert session.lr_vertices == pytest.approx(scheduled) and session.lr_schedule == scheduled


def test_the_vertex_step_falls_linearly_over_the_last_stage_to_its_share(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(iterations=21, remesh_at=(11,), last_stage_anneal=0.2), renderer="gl")
    used = []
    for _ in range(21):
        session.step()
        used.append(session.vertex_optimizer.param_groups[0]["lr"] / session.lr_vertices)
    assert session.lr_vertices == session.lr_schedule  # no rollback: the ratios below are the annealing's alone
    assert used[:11] == pytest.approx([1.0] * 11)
    assert used[11:] == pytest.approx(list(np.linspace(1.0, 0.2, 10)))


def _slide_past_neighbour(session: NDSSession, vertex: int) -> None:
    """Slide one vertex along the surface past a neighbour, folding the faces between them over."""
    faces = session.mesh.faces
    ring = faces[(faces == vertex).any(dim=1)].flatten()
    neighbour = ring[ring != vertex][0]
    with torch.no_grad():
        v = session.vertices.detach()
        session.offsets[vertex] += 2 * (v[neighbour] - v[vertex])


def test_a_few_flipped_faces_are_undone_without_a_rollback(small_demo) -> None:
    """A step that folds the faces around one vertex keeps the rest of its moves and the vertex step."""
    session = NDSSession(load(small_demo), small_config(init="sphere"), renderer="gl")  # regular rings
    list(session.run(3))
    before = session.vertices.detach().clone()
    reference = session.mesh.face_normals(before)
    lr = session.lr_vertices
    _slide_past_neighbour(session, 0)
    with torch.no_grad():
        session.offsets[1:] += 1e-4  # the rest of the "step"
    undone = session._undo_flips(reference)
    assert undone > 0
    after = session.vertices.detach()
    assert torch.equal(after[0], before[0])  # the folded vertex is back
    kept = (after - before - 1e-4).abs().max(dim=1).values < 1e-6  # vertices whose move was kept
    assert kept.float().mean() > 0.9  # only the fold's neighbourhood went back
    assert not check_mesh(after, session.mesh.faces, reference_normals=reference, max_flipped=0)
    assert session.lr_vertices == lr


def test_many_flipped_faces_are_left_to_the_rollback(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    list(session.run(3))
    reference = session.mesh.face_normals(session.vertices.detach())
    with torch.no_grad():
        turned = session.vertices.detach() * torch.tensor([-1.0, 1.0, -1.0])  # half a turn about y
        session.offsets.add_(turned - session.vertices.detach())  # most faces now face the other way
    assert session._undo_flips(reference) == 0
    assert check_mesh(session.vertices.detach(), session.mesh.faces, reference_normals=reference)


def test_the_splatted_shading_term_compares_straight_colours(small_demo) -> None:
    """The render is premultiplied and the images straight: the term divides the render's colour by
    its coverage, or silhouette pixels would look too dark and the term would pull them outwards."""
    session = NDSSession(load(small_demo), small_config(), renderer="gl")
    gbuffer = _gbuffer(session, 0)
    state = session.generator.get_state()
    _, term = session._splatted_terms(0, gbuffer)
    session.generator.set_state(state)
    index, region = session._shaded_pixels(0, gbuffer)
    image = session.renderer.splat(gbuffer, session.renderer.shade_samples(gbuffer, session.training_shader, where=region))
    rows, target = image.reshape(-1, 4)[index], session.images[0].reshape(-1, 3)[index]
    assert bool((rows[:, 3] < 0.95).any())  # the term's pixels include partly covered ones
    straight = (rows[:, :3] / rows[:, 3:] - target).abs().mean()
    premultiplied = (rows[:, :3] - target).abs().mean()
    assert torch.allclose(term, straight, rtol=1e-5) and not torch.allclose(term, premultiplied, rtol=1e-3)


def _outward_push(session: NDSSession, target) -> float:
    """Net push of the silhouette term along the outward vertex normals over every view, as a
    share of the pushes' total size: 0 = the term is flat at this surface, < 0 it shrinks it."""
    normals = session.mesh.vertex_normals(session.vertices.detach())
    net, size = 0.0, 0.0
    for view in range(len(session.cameras)):
        gbuffer = _gbuffer(session, view)
        image = session.renderer.splat(gbuffer, session.renderer.shade_samples(gbuffer, None))
        session.vertex_optimizer.zero_grad(set_to_none=True)
        (image[..., -1] - target(view)).abs().mean().backward()
        push = -(session.offsets.grad * normals).sum(dim=1)
        net, size = net + float(push.sum()), size + float(push.abs().sum())
    return net / size


def test_the_silhouette_term_is_flat_at_the_true_surface(small_demo) -> None:
    """On the true mesh the term compares the splatted render with the masks splatted alike, and
    pushes the surface less than half as hard as against the masks themselves, which shrink it
    (the render's soft edge spills past the outline, the mask's does not)."""
    session = NDSSession(load(small_demo), small_config(init=str(small_demo / "gt_mesh.ply")), renderer="gl")
    gbuffer = _gbuffer(session, 0)
    alpha = session.renderer.splat(gbuffer, session.renderer.shade_samples(gbuffer, None))[..., -1]
    term, _ = session._splatted_terms(0, gbuffer)
    assert torch.allclose(term, (alpha - session.silhouettes[0]).abs().mean(), rtol=1e-5)
    against_splatted = _outward_push(session, lambda v: session.silhouettes[v])
    against_masks = _outward_push(session, lambda v: session.masks[v])
    assert against_masks < -0.2  # at 64 px: -0.27
    assert abs(against_splatted) < 0.5 * abs(against_masks)  # -0.11


def test_steps_draw_views_per_step_then_last_stage_views(small_demo) -> None:
    config = small_config(iterations=4, remesh_at=(2,), views_per_step=2, last_stage_views=3, intersection_every=0)
    session = NDSSession(load(small_demo), config, renderer="gl", profile=True)
    list(session.run(2))
    assert session.profiler.counts["g-buffers/rasterization"] == 2 * 2
    list(session.run())
    assert session.profiler.counts["g-buffers/rasterization"] == 2 * 2 + 2 * 3


def test_a_step_averages_the_image_terms_of_its_views_and_counts_the_mesh_terms_once(small_demo) -> None:
    session = NDSSession(load(small_demo), small_config(last_stage_views=3, shading_fraction=1.0), renderer="gl")
    assert session._views_per_step() == 1
    session.iteration = session.coarse_until
    assert session._views_per_step() == 3
    vertices = session.vertices
    face_cross = ops.face_normals(vertices, session.mesh.faces, normalize=False)
    views = [0, 5, 5]
    losses, total = session._losses(views, vertices, face_cross)
    one = [session._losses([view], vertices, face_cross)[0] for view in views]
    for term in ("silhouette", "shading"):
        torch.testing.assert_close(losses[term], sum(o[term] for o in one) / 3, rtol=1e-5, atol=0)
    for term in ("laplacian", "normal"):
        torch.testing.assert_close(losses[term], one[0][term], rtol=0, atol=0)
    assert torch.equal(total, sum(losses.values()))
    assert len({round(float(o["silhouette"]), 8) for o in one}) == 2  # the views differ
