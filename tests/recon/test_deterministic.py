"""--deterministic: recorded in run.json and kept by resume (on the CPU every run is deterministic anyway)."""

from __future__ import annotations

import json

import pytest
import torch

from recon.cli import main

pytestmark = pytest.mark.gl


@pytest.fixture
def restore_mode():
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_deterministic_is_recorded_and_resume_keeps_it(small_demo, tmp_path, restore_mode) -> None:
    out = tmp_path / "r"
    args = ["--image-scale", "1", "--renderer", "gl", "--device", "cpu"]
    assert main(["run", str(small_demo), "--out", str(out), "--iterations", "2", "--deterministic", *args]) == 0
    assert json.loads((out / "run.json").read_text())["deterministic"] is True
    torch.use_deterministic_algorithms(False)
    assert main(["resume", str(out), "--iterations", "1", "--renderer", "gl", "--device", "cpu"]) == 0
    assert torch.are_deterministic_algorithms_enabled()
    record = json.loads((out / "run.json").read_text())
    assert record["deterministic"] is True and record["iteration"] == 3
