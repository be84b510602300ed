"""`--set NAME=VALUE`: parsed as JSON or text, checked against the kind of the setting, applied last."""

from __future__ import annotations

import json

import pytest

from recon.methods.config import ConfigError, NDSConfig, auto_changes
from recon.methods.dvr import DVRConfig
from recon.methods.registry import get_method, method_names
from recon.settings import SettingError, apply_settings, flat_settings, parse_assignments, parse_line


def test_values_are_json_or_text_and_dotted_names_reach_into_groups() -> None:
    changes = parse_assignments(
        ["views_per_step=2", "lr_vertices=1e-3", "splat_shading=false", "remesh_at=[100,200]", "init=sphere",
         "shader.hidden_h=64", "shader.features=32", "seed=1", "seed=3"]
    )  # fmt: skip
    assert changes == {
        "views_per_step": 2, "lr_vertices": 1e-3, "splat_shading": False, "remesh_at": [100, 200], "init": "sphere",
        "shader": {"hidden_h": 64, "features": 32}, "seed": 3,
    }  # fmt: skip
    assert parse_assignments(["init=meshes/a=b.ply"]) == {"init": "meshes/a=b.ply"}  # the first '=' splits


@pytest.mark.parametrize("text", ["views_per_step", "=2", "shader.=2", ".hidden_h=2"])
def test_an_assignment_without_a_name_or_a_value_says_how_to_write_one(text) -> None:
    with pytest.raises(SettingError, match="expected NAME=VALUE"):
        parse_assignments([text])


def test_a_line_of_settings_is_split_as_a_shell_would() -> None:
    assert parse_line(' init="my mesh.ply"  remesh_at="[500, 1000]" seed=2 ') == {
        "init": "my mesh.ply", "remesh_at": [500, 1000], "seed": 2,
    }  # fmt: skip
    assert parse_line("") == {}
    with pytest.raises(SettingError, match="No closing quotation"):
        parse_line('init="open')


def test_a_group_given_a_value_has_no_fields() -> None:
    with pytest.raises(SettingError, match="shader was given a value"):
        parse_assignments(["shader=1", "shader.hidden_h=2"])


def test_a_group_keeps_the_fields_not_named() -> None:
    cpu = NDSConfig().replace(**auto_changes("cpu"))
    changed = apply_settings(cpu, {"shader": {"hidden_h": 64}, "weight_normal": 1, "remesh_at": [100, 200]})
    assert changed.shader.hidden_h == 64 and changed.shader.features == cpu.shader.features == 128
    assert changed.weight_normal == 1.0 and isinstance(changed.weight_normal, float)
    assert changed.remesh_at == (100, 200)
    assert apply_settings(NDSConfig(), {"remesh_at": ()}).remesh_at == ()  # a tuple from Python callers too
    assert changed.replace(shader=cpu.shader.to_dict(), weight_normal=0.1, remesh_at=cpu.remesh_at) == cpu
    assert apply_settings(cpu, {}) is cpu


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"views_per_step": "two"}, r'views_per_step="two": expected an integer \(now 1\)'),
        ({"views_per_step": 2.5}, "expected an integer"),
        ({"views_per_step": True}, "expected an integer"),
        ({"splat_shading": 1}, "expected true or false"),
        ({"lr_vertices": "fast"}, "expected a number"),
        ({"remesh_at": 500}, "expected a list"),
        ({"init": 3}, "expected text"),
        ({"shader": 3}, "a group of settings; set its fields as shader.NAME=VALUE"),
        ({"shader": {"hidden": 3}}, "shader.hidden: no such setting; known in shader: .*hidden_h"),
        ({"view_per_step": 2}, "view_per_step: no such setting; known: .*views_per_step"),
    ],
)
def test_a_wrong_name_or_kind_is_named_with_what_is_expected(changes, message) -> None:
    with pytest.raises(SettingError, match=message):
        apply_settings(NDSConfig(), changes)


def test_ranges_are_the_configs_own_checks() -> None:
    with pytest.raises(ConfigError, match="views_per_step=0"):
        apply_settings(NDSConfig(), {"views_per_step": 0})


def test_other_methods_configs_take_settings_the_same_way() -> None:
    config = apply_settings(DVRConfig(), {"field": {"hidden": 32}})
    assert config.field.hidden == 32 and config.field.blocks == DVRConfig().field.blocks


@pytest.mark.parametrize("name", method_names())
def test_every_listed_setting_set_back_by_name_gives_the_same_config(name) -> None:
    """What `reconstruct settings` lists is what `--set` takes: each NAME=VALUE, set on a config
    with other values, gives the listed one back."""
    method = get_method(name)
    auto, fixed = method.make_config(None, **method.auto_changes("cpu")), method.make_config(None)
    listed = flat_settings(auto)
    assert "seed" in listed and any("." in key for key in listed)  # groups are listed by their fields
    again = apply_settings(fixed, parse_assignments(f"{key}={json.dumps(value)}" for key, value in listed.items()))
    assert again == auto
