"""A method's settings changed by name (`--set NAME=VALUE`): parsed, type-checked, applied last.

Every method's config is a frozen dataclass with `to_dict` and `replace` (the NDS one in
`recon.methods.config`); its range checks run in `replace`. What they cannot see is a value of
the wrong kind ("two" for a count would fail inside a comparison with a traceback), so each value
is checked here against the kind of the setting it replaces, and a nested setting (the shader's
widths) changes only the fields named, the others keeping what the device's defaults gave them.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from recon.errors import ReconstructError


class SettingError(ReconstructError):
    """A `--set` assignment names no setting or gives it a value of the wrong kind."""


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """['views_per_step=2', 'shader.hidden_h=256', 'init=sphere'] → {'views_per_step': 2, 'shader': {'hidden_h': 256}, ...}.

    A value is read as JSON (numbers, true/false, lists) and otherwise kept as text; a dotted name
    reaches into a nested setting. A name given twice keeps its last value, as options do.
    """
    changes: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        path = name.strip().split(".")
        if not sep or not all(path):
            raise SettingError(f"--set {text!r}: expected NAME=VALUE, e.g. --set views_per_step=2 or --set shader.hidden_h=256")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        target = changes
        for key in path[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise SettingError(f"--set {text!r}: {key} was given a value, so it has no field {path[-1]!r}")
        target[path[-1]] = value
    return changes


def parse_line(text: str) -> dict[str, Any]:
    """One line of assignments separated by spaces, quoted as in a shell where a value holds one
    (`init="my mesh.ply" remesh_at="[500, 1000]"`): the desktop app's Settings field."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SettingError(f"settings {text!r}: {exc}") from None
    return parse_assignments(words)


def apply_settings(config: Any, changes: Mapping[str, Any]) -> Any:
    """`config` with `changes` set, each checked against the kind of the value it replaces."""
    if not changes:
        return config
    return config.replace(**_checked(config.to_dict(), changes, ""))


def flat_settings(config: Any) -> dict[str, Any]:
    """Every setting of `config` by the name `--set` takes (a group's fields as GROUP.FIELD), JSON-able."""
    flat: dict[str, Any] = {}

    def walk(values: Mapping[str, Any], prefix: str) -> None:
        for name, value in values.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{name}.")
            else:
                flat[f"{prefix}{name}"] = list(value) if isinstance(value, tuple) else value

    walk(config.to_dict(), "")
    return flat


def _checked(current: Mapping[str, Any], changes: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out = dict(current)
    for name, value in changes.items():
        where = f"{prefix}{name}"
        if name not in current:
            known = ", ".join(sorted(current))
            raise SettingError(f"--set {where}: no such setting; known{' in ' + prefix[:-1] if prefix else ''}: {known}")
        old = current[name]
        if isinstance(old, Mapping):
            if not isinstance(value, Mapping):
                raise SettingError(f"--set {where}: a group of settings; set its fields as {where}.NAME=VALUE")
            out[name] = _checked(old, value, f"{where}.")
        else:
            out[name] = _of_kind(where, value, old)
    return out


def _of_kind(where: str, value: Any, old: Any) -> Any:
    """`value` if it is of `old`'s kind (an integer where a float was is taken as that float)."""
    if isinstance(old, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(old, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(old, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        value = float(value) if ok else value
    elif isinstance(old, (list, tuple)):
        ok, kind = isinstance(value, (list, tuple)), "a list such as [500,1000]"
    elif isinstance(old, str):
        ok, kind = isinstance(value, str), "text"
    else:
        ok, kind = True, ""
    if not ok:
        raise SettingError(f"--set {where}={json.dumps(value)}: expected {kind} (now {json.dumps(old)})")
    return value
