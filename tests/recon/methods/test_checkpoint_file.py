"""The checkpoint file every method writes: common state under common names, one method's file never
read as another's, and a state that does not fit named with the file instead of a traceback."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from recon.data import load
from recon.errors import SessionError
from recon.methods.checkpoint_file import FILE
from recon.methods.registry import get_method, method_names


def _session(name: str, scene):
    method = get_method(name)
    return method.session_type(scene, method.make_config(None), renderer="gl")


def _rewrite(path, change) -> None:
    """Rewrite a checkpoint with `change(record)` applied to its JSON record."""
    with safe_open(str(path), "pt") as f:
        record = json.loads(f.metadata()["record"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(record)
    save_file(tensors, str(path), metadata={"record": json.dumps(record)})


@pytest.mark.parametrize("name", method_names())
def test_every_method_writes_the_common_state_under_the_same_names(name, small_demo, tmp_path) -> None:
    scene = load(small_demo)
    _session(name, scene).save(tmp_path)
    with safe_open(str(tmp_path / FILE), "pt") as f:
        record = json.loads(f.metadata()["record"])
        keys = set(f.keys())
    assert {"format", "version", "config", "iteration", "normalization", "views", "history"} <= set(record)
    assert record["format"] == f"reconstruct.{name}-checkpoint" and record["views"] == len(scene.views)
    assert "rng" in keys and any(k.startswith("shader/") for k in keys)
    assert any(k.endswith("optimizer") for k in record)


@pytest.mark.parametrize("name", method_names())
def test_an_optimiser_state_that_does_not_fit_is_named_with_the_file(name, small_demo, tmp_path) -> None:
    scene = load(small_demo)
    _session(name, scene).save(tmp_path)

    def drop_param_groups(record: dict) -> None:
        for key in [k for k in record if k.endswith("optimizer")]:
            record[key]["param_groups"] = []

    _rewrite(tmp_path / FILE, drop_param_groups)
    with pytest.raises(SessionError, match=f"{tmp_path / FILE}: bad"):
        get_method(name).session_type.load(tmp_path, scene, renderer="gl")


@pytest.mark.parametrize(("wrote", "reads"), [("nds", "rts-sdf"), ("rts-sdf", "dvr"), ("dvr", "nds")])
def test_one_methods_file_is_not_read_as_anothers(wrote, reads, small_demo, tmp_path) -> None:
    scene = load(small_demo)
    _session(wrote, scene).save(tmp_path)
    with pytest.raises(SessionError, match=f"{tmp_path / FILE}: not an? .*checkpoint of version 1"):
        get_method(reads).session_type.load(tmp_path, scene, renderer="gl")


def test_a_config_the_method_refuses_is_named_with_the_file(small_demo, tmp_path) -> None:
    scene = load(small_demo)
    _session("dvr", scene).save(tmp_path)
    _rewrite(tmp_path / FILE, lambda record: record["config"].update(no_such_setting=1))
    with pytest.raises(SessionError, match=f"{tmp_path / FILE}: unknown DVR setting"):
        get_method("dvr").session_type.load(tmp_path, scene, renderer="gl")
