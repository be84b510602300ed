"""A run never silently stalls or keeps a tangle: broken starts refused, tangles rolled back, rollbacks capped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from recon import runner
from recon.data import load
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


def test_a_step_that_tangles_the_mesh_is_rolled_back(small_demo, monkeypatch) -> None:
    session = NDSSession(load(small_demo), small_config(init="sphere", intersection_every=1), renderer="gl")
    list(session.run(2))
    before = session.vertices.detach().clone()
    adam_step = session.vertex_optimizer.step

    def folding_step(*args, **kwargs):
        adam_step(*args, **kwargs)
        _fold_cap(session)

    monkeypatch.setattr(session.vertex_optimizer, "step", folding_step)
    record = session.step()
    assert record.event is not None and "rollback" in record.event and "intersect" in record.event
    assert torch.equal(session.vertices.detach(), before)


def test_a_remesh_into_a_tangle_is_rejected(small_demo, monkeypatch) -> None:
    import recon.methods.nds as nds

    def tangling_remesh(mesh, edge_length):  # stands for a remesher that leaves the surface crossing itself
        vertices = mesh.vertices.clone()
        pole = int(vertices[:, 0].argmax())
        vertices[pole] += torch.tensor([-1.2, 0.05, 0.0])
        return mesh.with_vertices(vertices)

    monkeypatch.setattr(nds, "remesh", tangling_remesh)
    session = NDSSession(load(small_demo), small_config(init="sphere", remesh_at=(1,), intersection_every=0), renderer="gl")
    session.step()
    faces = session.mesh.faces
    record = session.step()
    assert record.event is not None and "remesh rejected" in record.event and "intersect" in record.event
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
