"""Shape and type checks for what a file holds, so a bad file is refused before anything uses it.

Readers call these on the parsed content and turn `Invalid` into their own error naming the file,
so a well-formed file of the wrong structure ends in one line instead of a KeyError deep inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch


class Invalid(ValueError):
    """What is wrong with one entry of a file; the reader adds the file's name."""


def entry(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """`data[key]`, which must exist and be of `kind` (a bool is never taken for a number)."""
    name = f"{where}{key}"
    if not isinstance(data, Mapping):
        raise Invalid(f"{where.rstrip('.') or 'top level'} must be an object")
    if key not in data:
        raise Invalid(f"'{name}' is missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise Invalid(f"'{name}' must be {_names(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise Invalid(f"'{name}' must be {_names(kinds)}, got {type(value).__name__}")
    return value


def number(data: Mapping[str, Any], key: str, where: str = "", positive: bool = False) -> float:
    """A finite number (and > 0 when `positive`)."""
    value = float(entry(data, key, (int, float), where))
    if not math.isfinite(value) or (positive and value <= 0):
        raise Invalid(f"'{where}{key}' must be a finite{' positive' if positive else ''} number, got {value}")
    return value


def count(data: Mapping[str, Any], key: str, where: str = "", minimum: int = 0) -> int:
    """An integer ≥ `minimum`."""
    value = entry(data, key, int, where)
    if value < minimum:
        raise Invalid(f"'{where}{key}' must be at least {minimum}, got {value}")
    return value


def vector(value: Any, size: int, what: str) -> list[float]:
    """A list of `size` finite numbers."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == size
    if not ok or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        raise Invalid(f"'{what}' must be a list of {size} finite numbers")
    return [float(x) for x in value]


def tensor(
    tensors: Mapping[str, torch.Tensor], name: str, dtypes: tuple[torch.dtype, ...], shape: tuple[int | None, ...]
) -> torch.Tensor:
    """`tensors[name]` with one of `dtypes` and `shape` (None matches any size), finite if floating."""
    if name not in tensors:
        raise Invalid(f"tensor '{name}' is missing")
    value = tensors[name]
    if value.dtype not in dtypes:
        raise Invalid(f"tensor '{name}' has dtype {value.dtype}, expected {' or '.join(str(d) for d in dtypes)}")
    if value.dim() != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise Invalid(f"tensor '{name}' has shape {tuple(value.shape)}, expected {wanted}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise Invalid(f"tensor '{name}' holds NaN or Inf")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    words = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object", bool: "a boolean"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)
