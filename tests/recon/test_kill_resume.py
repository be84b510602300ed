"""A killed run loses nothing: `kill -9` at random moments, `resume`, and the result is the uninterrupted one.

Real processes, no mocks. Checkpoints (with mesh, shader and run.json) are written every two
iterations; every other kill waits for a write in progress (a temporary file present), the others
come at a random moment. After every kill the folder must
be readable by what `eval DIR` and `export` read; the final mesh and shader must be byte-identical
to those of a run that was never interrupted (CPU, one thread: see the README's "Checkpoints").
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon.run_folder import RunFolder

pytestmark = pytest.mark.gl

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 16
KILLS = 4


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "recon.cli", *args]


def _run_args(dataset: Path, out: Path) -> list[str]:
    return _command("run", str(dataset), "--out", str(out), "--iterations", str(ITERATIONS), "--image-scale", "1",
                    "--renderer", "gl", "--device", "cpu", "--checkpoint-every", "2")


def _resume_args(out: Path) -> list[str]:
    return _command("resume", str(out), "--renderer", "gl", "--device", "cpu")


def _iteration(out: Path) -> int:
    try:
        return json.loads((out / "run.json").read_text())["iteration"]
    except (OSError, ValueError, KeyError):
        return -1


def _writing(out: Path) -> bool:
    """Whether a write is in progress: one of `recon.atomic`'s temporary files exists."""
    return any(path.name.endswith(".tmp") for folder in (out, out / "checkpoint") if folder.is_dir() for path in folder.iterdir())


def _kill_after_progress(command: list[str], out: Path, rng: random.Random, mid_write: bool) -> bool:
    """Start `command`, wait until run.json moves past where it was, kill -9 a random moment later.

    With `mid_write` the kill comes instead as soon as a temporary file shows a write in progress
    after that. Returns True when the process finished on its own first.
    """
    start = _iteration(out)
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _iteration(out) <= start and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if mid_write:
        while not _writing(out) and process.poll() is None and time.monotonic() < deadline:
            pass
    else:
        time.sleep(rng.uniform(0.0, 0.4))
    if process.poll() is not None:
        assert process.returncode == 0, process.stderr.read().decode()
        return True
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    return False


def test_kill_9_and_resume_gives_the_uninterrupted_result(small_demo, tmp_path) -> None:
    straight = tmp_path / "straight"
    done = subprocess.run(_run_args(small_demo, straight), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed"
    rng = random.Random(13)
    kills = killed_mid_write = 0
    finished = False
    while not finished:
        resumable = (out / "checkpoint" / "state.safetensors").is_file() and (out / "run.json").is_file()
        command = _resume_args(out) if resumable else _run_args(small_demo, out)
        if kills >= KILLS:
            result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr
            break
        finished = _kill_after_progress(command, out, rng, mid_write=kills % 2 == 1)
        kills += not finished
        killed_mid_write += not finished and _writing(out)  # its temporary file is still there
        if (out / "checkpoint" / "state.safetensors").is_file():
            folder = RunFolder(out)
            folder.record()  # what eval DIR reads, then the mesh and shader export and eval read
            mesh = folder.appearance().mesh
            assert mesh.num_faces > 0

    assert (out / "mesh.ply").read_bytes() == (straight / "mesh.ply").read_bytes()
    assert (out / "shader.safetensors").read_bytes() == (straight / "shader.safetensors").read_bytes()
    assert json.loads((out / "run.json").read_text())["iteration"] == ITERATIONS
    assert not list(out.rglob("*.tmp"))
    assert killed_mid_write >= 1  # at least one kill landed inside a write (and resume cleared up after it)


def test_resume_removes_temporaries_a_killed_write_left(small_demo, tmp_path) -> None:
    out = tmp_path / "r"
    done = subprocess.run(_run_args(small_demo, out)[:-2] + ["--checkpoint-every", "100"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stale = [out / ".mesh.ply.0123456789ab.tmp", out / "checkpoint" / ".state.safetensors.ba9876543210.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = out / "notes.tmp"  # not one of ours: left alone
    keep.write_text("mine")
    result = subprocess.run(_resume_args(out) + ["--iterations", "1"], cwd=ROOT, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale) and keep.exists()


def test_run_starts_again_where_a_kill_came_before_the_first_checkpoint(small_demo, tmp_path) -> None:
    from recon.cli import main

    out = tmp_path / "r"
    (out / "checkpoint").mkdir(parents=True)
    stale = out / "checkpoint" / ".state.safetensors.0123456789ab.tmp"  # the first checkpoint, half written
    stale.write_bytes(b"half")
    assert main(["run", str(small_demo), "--out", str(out), "--iterations", "1", "--image-scale", "1",
                 "--renderer", "gl", "--device", "cpu"]) == 0
    assert (out / "checkpoint" / "state.safetensors").is_file() and not stale.exists()
