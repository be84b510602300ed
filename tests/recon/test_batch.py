"""`reconstruct batch` on a real local Ray instance (2 CPUs): isolation, idempotence, worker death."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recon.batch import BatchOptions, discover, run_batch, run_state
from recon.errors import ReconstructError

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[cluster]')")

pytestmark = pytest.mark.gl  # the datasets are the demo, rendered with the GL rasterizer

RUN = {"iterations": 30, "image_scale": 1.0, "renderer": "gl", "device": "cpu"}


@pytest.fixture(scope="module")
def collection(small_demo: Path, tmp_path_factory) -> Path:
    """Two copies of the small demo and one broken NeRF-style dataset (its JSON is cut short)."""
    root = tmp_path_factory.mktemp("collection")
    for name in ("pot_a", "pot_b"):
        shutil.copytree(small_demo, root / name)
    broken = root / "broken"
    broken.mkdir()
    (broken / "transforms_train.json").write_text('{"camera_angle_x": 0.69, "frames": [')
    (root / "notes").mkdir()  # not a dataset: ignored inside a collection
    return root


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recon.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_DEDUP_LOGS": "0"})  # fmt: skip


def test_discover_takes_datasets_and_folders_of_them(collection: Path, tmp_path: Path) -> None:
    items = discover([collection], tmp_path)
    assert [i.name for i in items] == ["broken", "pot_a", "pot_b"]
    assert items[1].out == (tmp_path / "pot_a").resolve()
    assert [i.name for i in discover([collection / "pot_b"], tmp_path)] == ["pot_b"]
    with pytest.raises(ReconstructError, match="neither a dataset nor a folder of datasets"):
        discover([collection / "notes"], tmp_path)
    with pytest.raises(ReconstructError, match="two datasets are named 'pot_a'"):
        discover([collection / "pot_a", collection / "pot_a"], tmp_path)


def test_a_collection_end_to_end_then_again(collection: Path, tmp_path: Path) -> None:
    """Two runs finish and one dataset fails with its one line; the exit code says so; batch.json
    and the table agree with the run folders; a second invocation skips what finished."""
    out = tmp_path / "out"
    args = ("batch", str(collection), "--out", str(out), "--iterations", "30", "--image-scale", "1",
            "--renderer", "gl", "--device", "cpu", "--cpus-per-run", "1", "--holdout", "4", "--set", "weight_normal=0.2")  # fmt: skip
    result = _cli(*args)
    assert result.returncode == 1, result.stderr  # one dataset failed
    record = json.loads((out / "batch.json").read_text())
    rows = {row["name"]: row for row in record["runs"]}
    assert rows["broken"]["status"] == "failed" and "transforms_train.json" in rows["broken"]["error"]
    assert "\n" not in rows["broken"]["error"] and "Traceback" not in result.stdout + result.stderr
    for name in ("pot_a", "pot_b"):
        run = json.loads((out / name / "run.json").read_text())
        assert rows[name]["status"] == "done" and rows[name]["iterations"] == run["iteration"] == 30
        assert rows[name]["faces"] == run["mesh"]["faces"] > 0
        assert 0 < rows[name]["chamfer_rel"] < 0.2 and 5 < rows[name]["psnr"] < 60  # gt_mesh.ply; 3 views held out
        assert run["holdout"] and (out / name / "mesh.ply").exists()
        assert run["config"]["weight_normal"] == 0.2  # --set reaches every run
        assert name in result.stdout and f"{100 * rows[name]['chamfer_rel']:.3f}" in result.stdout
    assert not record["all_succeeded"]

    again = _cli(*args[:1], str(collection / "pot_a"), str(collection / "pot_b"), *args[2:])
    assert again.returncode == 0, again.stderr
    rows = {row["name"]: row for row in json.loads((out / "batch.json").read_text())["runs"]}
    assert {row["status"] for row in rows.values()} == {"skipped"}
    assert rows["pot_a"]["iterations"] == 30


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_a_killed_worker_is_retried_and_resumes_its_checkpoint(local_ray, collection: Path, tmp_path: Path) -> None:
    items = discover([collection / "pot_a"], tmp_path)
    killed: list[int] = []

    def kill_once(state: dict) -> None:
        entry = state.get("pot_a")
        if not killed and entry and entry["iteration"] >= 102:  # past the checkpoint at 100
            killed.append(entry["pid"])
            os.kill(entry["pid"], signal.SIGKILL)

    options = BatchOptions({**RUN, "iterations": 200}, cpus_per_run=1, retries=1)
    (row,) = run_batch(items, options, on_progress=kill_once)
    assert killed, "the run finished before it could be killed"
    assert row.status == "done" and row.attempts == 2 and row.iterations == 200, row
    record = json.loads((tmp_path / "pot_a" / "run.json").read_text())
    assert record["iteration"] == 200 and run_state(tmp_path / "pot_a") == "done"

    options = BatchOptions({**RUN, "iterations": 200}, cpus_per_run=1, retries=0)
    (again,) = run_batch(items, options)
    assert again.status == "skipped" and again.attempts == 1
