"""The reconstruction methods by name: what run.json records, what the CLI and GUI offer.

Adding a method means one module that defines `METHOD = Method(...)` (a frozen config type and a
session type with the protocol of `recon.methods.session.Session`) and one line in `MODULES`.
Modules are imported on first use, so listing or looking up a method costs nothing until it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recon.errors import ReconstructError

MODULES: dict[str, str] = {
    "nds": "recon.methods.nds",
    "rts-sdf": "recon.methods.rts_sdf",
    "dvr": "recon.methods.dvr",
}
DEFAULT = "nds"


@dataclass(frozen=True)
class Method:
    """One reconstruction method, as the run module and both front ends see it.

    Attributes:
        name: the key in run.json and on the command line.
        title: what the GUI lists.
        config_type: the frozen settings type (`from_dict`, `to_dict`, `replace`).
        session_type: the session class (`Session` protocol; `load` resumes a checkpoint folder).
        make_config: (iterations or None, **changes) → config; a given iteration count wins over
            any schedule in `changes` and keeps the method's schedule in proportion.
        auto_changes: device → the config changes `--image-scale auto` brings on that device.
        describe_levels: (width, height, config) → the working resolution(s) in words, for the
            front ends to show (e.g. "128×128, then 256×256 from iteration 1500").
    """

    name: str
    title: str
    config_type: type
    session_type: type
    make_config: Callable[..., Any]
    auto_changes: Callable[[str], dict[str, Any]]
    describe_levels: Callable[[int, int, Any], str]


def method_names() -> list[str]:
    return list(MODULES)


def get_method(name: str | None) -> Method:
    """The method registered as `name` (None: the default, for run folders from before run.json named it)."""
    name = DEFAULT if name is None else name
    if name not in MODULES:
        raise ReconstructError(f"unknown method {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name]).METHOD
