"""A run folder across sessions and read back for showing: run.json keeps the run's totals over
resumes, the loss history reads back as step records, reading never writes, and a broken folder is
refused naming the file and the fix. Real runs on a tiny dataset (CPU, GL rasterizer)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recon import runs
from recon.loss_history import step_records
from recon.run_checks import check_run_record
from recon.run_folder import RunFolder, RunFolderError, fresh_run_folder
from recon.run_totals import earlier_sessions
from recon.saved_run import read_saved_run
from recon.validate import Invalid

pytestmark = pytest.mark.gl


def _run(dataset: Path, out: Path, iterations: int, **options) -> dict:
    opened = runs.open_run(runs.RunOptions(dataset, out, iterations=iterations, image_scale=1.0, device="cpu",
                                           renderer="gl", **options))
    try:
        return runs.drive(opened)
    finally:
        opened.session.close()


def _resume(out: Path, **options) -> tuple[dict, list[dict]]:
    """Resume and drive; also returns run.json as it was on disk when the first new step ended."""
    opened = runs.resume_run(runs.ResumeOptions(out, device="cpu", renderer="gl", **options))
    seen: list[dict] = []

    def on_step(_record) -> None:
        if not seen:
            seen.append(json.loads((out / "run.json").read_text()))

    try:
        return runs.drive(opened, on_step=on_step), seen
    finally:
        opened.session.close()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_json_keeps_the_runs_totals_across_resumes(small_dataset, tmp_path) -> None:
    out = tmp_path / "run"
    first = _run(small_dataset, out, 4)
    assert first["iteration"] == 4 and len(first["sessions"]) == 1
    assert first["sessions"][0]["from"] == 0 and first["sessions"][0]["to"] == 4
    assert first["seconds"] == first["sessions"][0]["seconds"] > 0

    second, seen = _resume(out, more=3)
    # Already at the resume's first write (before any new step), run.json holds the earlier time:
    # a kill then loses nothing of the run's totals.
    assert seen[0]["seconds"] == pytest.approx(first["seconds"]) and seen[0]["sessions"] == first["sessions"]
    assert second["iteration"] == 7 and [(s["from"], s["to"]) for s in second["sessions"]] == [(0, 4), (4, 7)]
    assert second["sessions"][0] == first["sessions"][0]
    assert second["seconds"] == pytest.approx(sum(s["seconds"] for s in second["sessions"]))
    assert second["seconds"] > first["seconds"]
    assert [row["iteration"] for row in second["losses"]] == list(range(1, 8))  # the whole history
    check_run_record(json.loads((out / "run.json").read_text()))


def test_a_run_json_from_before_sessions_counts_its_seconds_as_one() -> None:
    assert earlier_sessions({"iteration": 150, "seconds": 419.5}) == [{"from": 0, "to": 150, "seconds": 419.5}]
    assert earlier_sessions({"iteration": 0}) == []


def test_reading_a_run_for_showing_writes_nothing_and_matches_the_run(small_dataset, tmp_path) -> None:
    out = tmp_path / "run"
    record = _run(small_dataset, out, 3, holdout_last=True)
    before = _digests(out)
    saved = read_saved_run(out)
    assert _digests(out) == before and saved.finished
    assert saved.snapshot.iteration == 3 and saved.snapshot.faces.shape[0] == record["mesh"]["faces"]
    assert [r.iteration for r in saved.history] == [1, 2, 3]
    assert set(saved.history[0].losses) == {"silhouette", "shading", "laplacian", "normal"}
    assert saved.history[-1].total == pytest.approx(record["losses"][-1]["total"])
    # The scene as the run saw it: held-out view left out, and the run's own normalisation.
    assert [v.name for v in saved.scene.views] == ["v0", "v1", "v2", "v3"] and not saved.missing_scene
    centre, scale = saved.scene.normalization()
    np.testing.assert_allclose(centre, saved.snapshot.normalization[0], atol=1e-12)
    assert scale == pytest.approx(saved.snapshot.normalization[1], rel=1e-12)

    shutil.rmtree(small_dataset)  # the dataset moved away: the run is still shown, saying why the photos are not
    saved = read_saved_run(out)
    assert saved.scene is None and str(small_dataset) in saved.missing_scene and "not there any more" in saved.missing_scene
    assert saved.snapshot.faces.shape[0] == record["mesh"]["faces"]


def test_a_broken_run_folder_names_the_file_and_the_fix(small_dataset, tmp_path) -> None:
    out = tmp_path / "run"
    _run(small_dataset, out, 2)
    (out / "mesh.ply").unlink()
    with pytest.raises(RunFolderError, match=r"mesh\.ply: no such mesh file; .*reconstruct resume .* --iterations 0"):
        read_saved_run(out)
    # ... and that fix works: the checkpoint writes the mesh again, the run's totals kept.
    seconds = json.loads((out / "run.json").read_text())["seconds"]
    result, _ = _resume(out, more=0)
    assert (out / "mesh.ply").is_file() and result["iteration"] == 2 and result["seconds"] == pytest.approx(seconds)
    read_saved_run(out)

    (out / "shader.json").write_text("{")
    with pytest.raises(RunFolderError, match=r"shader\.json: .*reconstruct resume"):
        read_saved_run(out)
    (out / "run.json").write_text('{"dataset": ')
    with pytest.raises(RunFolderError, match=r"run\.json: not valid JSON"):
        read_saved_run(out)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"losses": {"total": 1}}, "'losses' must be a list"),
        ({"losses": [{"iteration": 1, "total": "big"}]}, "'losses\\[0\\].total' must be a number"),
        ({"losses": [{"total": 1.0}]}, "'losses\\[0\\].iteration' is missing"),
        ({"seconds": -1}, "'seconds' must not be negative"),
        ({"sessions": [{"from": 0, "to": 3}]}, "'sessions\\[0\\].seconds' is missing"),
        ({"config": {"iterations": "many"}}, "'config.iterations' must be an integer"),
    ],
)
def test_run_checks_refuse_bad_progress_history_and_totals(entries, message) -> None:
    with pytest.raises(Invalid, match=message):
        check_run_record({"dataset": {"source": "/data/x"}, **entries})
    check_run_record({"dataset": {"source": "/data/x"}, "losses": [{"iteration": 1, "total": "nan"}], "seconds": 2.5,
                      "sessions": [{"from": 0, "to": 1, "seconds": 2.5}], "config": {"iterations": 1}})


def test_history_rows_become_step_records_with_only_the_loss_terms() -> None:
    rows = [
        {"iteration": 1, "rgb": 0.5, "occupancy": "nan", "surface_rays": 12, "samples": 64, "total": 0.75, "event": None},
        {"iteration": 2, "rgb": 0.25, "occupancy": 0.1, "surface_rays": 10, "samples": 64, "total": 1, "event": "remeshed"},
    ]
    first, second = step_records(rows)
    assert set(first.losses) == {"rgb", "occupancy"} and np.isnan(first.losses["occupancy"])
    assert (second.iteration, second.total, second.event) == (2, 1.0, "remeshed")


def test_a_fresh_run_folder_is_chosen_beside_one_in_use(tmp_path) -> None:
    def occupy(path: Path) -> Path:
        (path / "checkpoint").mkdir(parents=True)
        (path / "checkpoint" / "state.safetensors").write_bytes(b"")
        return path

    assert fresh_run_folder(tmp_path / "new") == tmp_path / "new"
    occupy(tmp_path / "dino")
    assert fresh_run_folder(tmp_path / "dino") == tmp_path / "dino-2"
    (tmp_path / "dino-2").mkdir()  # something else there already: never written into
    assert fresh_run_folder(tmp_path / "dino") == tmp_path / "dino-3"
    assert fresh_run_folder(occupy(tmp_path / "dino-3")) == tmp_path / "dino-4"
    stamped = occupy(tmp_path / "small-20250101-120000")
    assert fresh_run_folder(stamped) == tmp_path / "small-20250101-120000-2"
    assert RunFolder(tmp_path / "dino").looks_like_run and not RunFolder(tmp_path / "dino-2").looks_like_run
