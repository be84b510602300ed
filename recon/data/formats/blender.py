"""TODO: blender loader."""

from __future__ import annotations

from pathlib import Path

NAME = "blender"
LOOKS_FOR = "TODO"


def detect(path: Path) -> Path | None:
    return None


def read(root: Path, image_scale: float):
    raise NotImplementedError
