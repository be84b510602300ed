"""A run never silently stalls or keeps a tangle: broken starts refused, tangles undone, rollbacks capped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from recon import runner
from recon.data import load
from recon.mesh import self_intersecting_pairs
from recon.methods.config import NDSConfig
from recon.methods.nds import NDSSession, SessionError, StalledError

pytestmark = pytest.mark.gl

SMALL_SHADER = {"hidden_h": 32, "features": 32, "hidden_c": 16}


def small_config(**changes) -> NDSConfig:
    base = NDSConfig(iterations=20, remesh_at=(), hull_resolution=16, checkpoint_every=1000)
    return base.replace(shader={**base.shader.to_dict(), **SMALL_SHADER}, **changes)


def test_a_non_manifold_init_mesh_is_refused_naming_file_and_defect(small_demo, tmp_path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    a, b = sphere.faces[0][:2]
    fin = np.vstack([sphere.vertices, [sphere.vertices[a] + [0.0, 0.0, 0.2]]])
    path = tmp_path / "finned.ply"
    trimesh.Trimesh(fin, np.vstack([sphere.faces, [[a, b, len(fin) - 1]]]), process=False).export(path)
    with pytest.raises(SessionError, match="non-manifold") as err:
        NDSSession(load(small_demo), small_config(init=str(path)), renderer="gl")
    assert str(path) in str(err.value)


def _fold_cap(session: NDSSession) -> None:
    """Pull the sphere's +x pole through the far side: a spike that crosses the surface, no face flipped or degenerate."""
    with torch.no_grad():
        pole = int(session.mesh.vertices[:, 0].argmax())
        session.offsets[pole] += torch.tensor([-1.2, 0.05, 0.0])


def _fold_once(session: NDSSession, monkeypatch) -> None:
    """The session's next descent step also folds the cap through the sphere (later steps are plain)."""
    adam_step = session.vertex_optimizer.step
    calls = []

    def folding_step(*args, **kwargs):
        adam_step(*args, **kwargs)
        if not calls:
            _fold_cap(session)
        calls.append(1)

    monkeypatch.setattr(session.vertex_optimizer, "step", folding_step)


def test_a_tangle_goes_back_where_it_was_at_the_last_clean_check_and_the_rest_keeps_its_steps(small_demo, monkeypatch) -> None:
    from recon.mesh.checks import self_intersecting_pairs

    session = NDSSession(load(small_demo), small_config(init="sphere", intersection_every=3), renderer="gl")
    list(session.run(3))  # the third step checks: nothing crosses, this is where a tangle goes back to
    clean = session.vertices.detach().clone()
    pole = int(session.mesh.vertices[:, 0].argmax())
    lr = session.lr_vertices
    _fold_once(session, monkeypatch)
    session.step()  # folds; not a checking step
    assert len(self_intersecting_pairs(session.vertices.detach(), session.mesh.faces)) > 0
    session.step()
    record = session.step()  # the next check
    assert record.event is not None and record.event.startswith("untangled:") and "back to iteration 3" in record.event
    after = session.vertices.detach()
    assert torch.equal(after[pole], clean[pole])  # the spike is gone, to where it was 3 steps ago
    assert len(self_intersecting_pairs(after, session.mesh.faces)) == 0
    moved = (after - clean).norm(dim=1) > 0
    assert moved.float().mean() > 0.8  # everywhere else the three steps are kept
    assert session.lr_vertices == lr and session.rollbacks_in_a_row == 0


def test_a_tangle_no_patch_clears_sends_the_whole_mesh_back(small_demo, monkeypatch) -> None:
    """When growing patches does not clear a tangle (here: no rounds allowed), the last clean check whole."""
    import recon.methods.nds as nds

    monkeypatch.setattr(nds, "UNTANGLE_ROUNDS", 0)
    session = NDSSession(load(small_demo), small_config(init="sphere", intersection_every=2), renderer="gl")
    list(session.run(2))
    clean = session.vertices.detach().clone()
    lr = session.lr_vertices
    _fold_once(session, monkeypatch)
    session.step()
    record = session.step()
    assert record.event is not None and "rollback" in record.event and "went back to iteration 2" in record.event
    assert torch.allclose(session.vertices.detach(), clean, atol=1e-6)
    assert session.lr_vertices == pytest.approx(lr / 2)


def test_the_clean_state_survives_a_checkpoint_and_older_checkpoints_start_one(small_demo, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    scene = load(small_demo)
    session = NDSSession(scene, small_config(init="sphere", intersection_every=2), renderer="gl")
    list(session.run(3))
    path = session.save(tmp_path / "ckpt")
    resumed = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    assert torch.equal(resumed._clean, session._clean) and not torch.equal(resumed._clean, resumed.offsets)
    assert (resumed._clean_pairs, resumed._clean_iteration) == (0, 2)
    header = json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])
    record = json.loads(header["__metadata__"]["record"])
    for key in ("clean_pairs", "clean_iteration"):
        del record[key]
    tensors = {k: v for k, v in load_file(path).items() if k != "clean_offsets"}  # as written before untangling
    save_file(tensors, path, metadata={"record": json.dumps(record)})
    older = NDSSession.load(tmp_path / "ckpt", scene, renderer="gl")
    assert torch.equal(older._clean, older.offsets.detach()) and older._clean_iteration == 3


def _session_remeshed_by(small_demo, monkeypatch, push) -> tuple[NDSSession, torch.Tensor]:
    """A session on a sphere whose remesh (at step 1) is the mesh with `push` applied to its
    vertices: a remesher that leaves the surface crossing itself. Returns it and its faces before."""
    import recon.methods.nds as nds

    def tangling_remesh(mesh, edge_length):
        return mesh.with_vertices(push(mesh.vertices.clone()))

    monkeypatch.setattr(nds, "remesh", tangling_remesh)
    session = NDSSession(load(small_demo), small_config(init="sphere", remesh_at=(1,), intersection_every=0), renderer="gl")
    session.step()
    return session, session.mesh.faces


def test_a_remesh_with_a_vertex_through_the_other_side_is_relaxed_and_kept(small_demo, monkeypatch) -> None:
    def one_vertex_through(vertices):
        vertices[int(vertices[:, 0].argmax())] += torch.tensor([-1.2, 0.05, 0.0])
        return vertices

    session, _ = _session_remeshed_by(small_demo, monkeypatch, one_vertex_through)
    record = session.step()
    assert record.event is not None and record.event.startswith("remeshed")
    assert len(self_intersecting_pairs(session.vertices.detach(), session.mesh.faces)) == 0


def test_a_remesh_into_a_tangle_relaxing_cannot_undo_is_rejected(small_demo, monkeypatch) -> None:
    def cap_twisted(vertices):  # the cap x > r/2 turned half round the x axis: its band crosses itself all round
        cap = vertices[:, 0] > 0.5 * vertices[:, 0].max()
        vertices[cap, 1:] = -vertices[cap, 1:]
        return vertices

    session, faces = _session_remeshed_by(small_demo, monkeypatch, cap_twisted)
    record = session.step()
    assert record.event is not None and "remesh rejected" in record.event
    assert session.mesh.faces is faces


def test_consecutive_rollbacks_stop_the_run_keeping_the_last_good_state(small_demo, tmp_path, monkeypatch) -> None:
    session = NDSSession(load(small_demo), small_config(init="sphere", max_rollbacks=4), renderer="gl")
    list(session.run(2))
    good = session.snapshot()
    monkeypatch.setattr(session, "_bad_gradients", lambda total: "forced for the test")
    with pytest.raises(StalledError, match="last 4 steps were all rolled back"):
        runner.run(session, tmp_path / "out")
    assert session.iteration == 6
    mesh = trimesh.load(tmp_path / "out" / "mesh.ply", process=False)
    np.testing.assert_allclose(mesh.vertices, good.world_vertices, atol=1e-6)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "rolled back" in record["stalled"] and record["iteration"] == 6
