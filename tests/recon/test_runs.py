"""The run API without running: what "auto" means per device, the method registry, run folders, JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recon.data import CPU_MAX_SIDE, AutoScale
from recon.errors import FileError, ReconstructError
from recon.jsonfile import read_json_object
from recon.methods.config import NDSConfig
from recon.methods.registry import get_method, method_names
from recon.run_folder import RunFolder, RunFolderError
from recon.runs import RunOptions, describe_levels, plan, resolution, resolve_device

OPTIONS = RunOptions(dataset=Path("dataset"), out=Path("out"), device="cpu")


def test_auto_on_the_cpu_is_halved_images_and_the_shorter_schedule() -> None:
    p = plan(OPTIONS)
    assert p.device == "cpu" and p.scale == AutoScale(CPU_MAX_SIDE)
    assert p.config.coarse_images and p.config.iterations == 1750 and p.config.remesh_at == (500, 1000, 1500)
    fixed = plan(RunOptions(dataset=Path("d"), out=Path("o"), device="cpu", image_scale=1.0)).config
    assert (p.config.last_stage_views, p.config.last_stage_anneal) == (2, 0.1)
    assert (fixed.last_stage_views, fixed.last_stage_anneal) == (1, 1.0)
    assert (p.config.web_spacing, fixed.web_spacing) == (2.0, 0.0)  # webs cut at remeshing on the CPU's auto only
    assert (p.config.shading_tile, p.config.shading_fraction) == (16, 0.5)
    shader = p.config.shader
    assert (shader.hidden_h, shader.features) == (128, 128) and p.config.pe_unlock_iteration == 1000
    assert (shader.pe_octaves, shader.layers_h, shader.hidden_c, shader.layers_c) == (4, 3, 128, 2)  # the paper's


def test_a_given_iteration_count_keeps_the_remeshing_fractions_and_a_fixed_scale_changes_nothing() -> None:
    assert plan(RunOptions(Path("d"), Path("o"), device="cpu", iterations=100)).config.remesh_at == (25, 50, 75)
    fixed = plan(RunOptions(Path("d"), Path("o"), device="cpu", image_scale=0.5, seed=4))
    assert fixed.scale == 0.5 and fixed.config == NDSConfig(seed=4)  # the paper's shader too


def test_auto_on_cuda_is_the_paper() -> None:
    assert resolution(None, "cuda") == (1.0, {})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_a_device_is_refused_in_one_line() -> None:
    with pytest.raises(ReconstructError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto")[0] == "cpu"


def test_levels_are_described_as_the_run_will_use_them() -> None:
    assert describe_levels(plan(RunOptions(Path("d"), Path("o"), device="cpu", image_scale=1.0)), 256, 128) == "256×128"
    assert describe_levels(plan(OPTIONS), 256, 128) == "128×64, then 256×128 from iteration 1500"


def test_the_registry_finds_nds_and_refuses_unknown_methods() -> None:
    assert "nds" in method_names() and get_method(None).name == "nds"
    assert get_method("nds").config_type is NDSConfig
    with pytest.raises(ReconstructError, match="unknown method 'nope'"):
        get_method("nope")


def test_a_run_folder_names_its_files_and_reads_its_record(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.record_file.name == "run.json" and folder.checkpoint.name == "checkpoint"
    assert not folder.holds_run
    with pytest.raises(RunFolderError, match="run.json: missing"):
        folder.record()
    folder.record_file.write_text(json.dumps({"holdout": "v4", "dataset": {"source": "/data/x"}}))
    assert folder.heldout_names() == ["v4"] and folder.dataset_source() == Path("/data/x")
    folder.record_file.write_text(json.dumps({}))
    with pytest.raises(RunFolderError, match="dataset.source"):
        folder.dataset_source()
    with pytest.raises(RunFolderError, match="not a run folder"):
        RunFolder(tmp_path / "nothing").require()


def test_read_json_object_names_the_file_and_the_problem(tmp_path) -> None:
    path = tmp_path / "x.json"
    with pytest.raises(FileError, match="x.json: gone"):
        read_json_object(path, FileError, missing="gone")
    path.write_text("[1, 2]")
    with pytest.raises(FileError, match="expected a JSON object at the top level, got list"):
        read_json_object(path, FileError)
    path.write_text('{"a": ')
    with pytest.raises(FileError, match="not valid JSON"):
        read_json_object(path, FileError)
    path.write_text('{"a": 1}')
    assert read_json_object(path, FileError) == {"a": 1}
