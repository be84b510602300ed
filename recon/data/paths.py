"""Containment of the files a dataset names: an image path may not lead outside the dataset.

COLMAP image names and NeRF/ngp `file_path`s come from files a stranger may have written; joined
as they are, an absolute or `../` name (or a symlink) reads any file the user can read. Loaders
pass every such path through `contained`, which refuses it unless the user allowed it explicitly
(`reconstruct … --allow-outside-dataset`, which sets `allow_outside` for the command).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from recon.errors import DatasetError

_ALLOW_OUTSIDE: ContextVar[bool] = ContextVar("allow_outside_dataset", default=False)


@contextlib.contextmanager
def allow_outside(allowed: bool = True) -> Iterator[None]:
    """Within the block, dataset files may lie outside their dataset folder (the user said so)."""
    token = _ALLOW_OUTSIDE.set(allowed)
    try:
        yield
    finally:
        _ALLOW_OUTSIDE.reset(token)


def contained(root: Path, file: Path, source: Path, what: str) -> Path:
    """`file` unchanged when it resolves (symlinks followed) inside `root`; else a DatasetError.

    `source` is the file that named it (the error names both), `what` says which entry it was.
    """
    if _ALLOW_OUTSIDE.get():
        return file
    base = Path(root).resolve()
    target = Path(file).resolve()
    if target != base and base not in target.parents:
        raise DatasetError(
            source,
            f"{what} {str(file)!r} leads outside the dataset folder {base}; "
            "pass --allow-outside-dataset if that is intended",
        )
    return file
