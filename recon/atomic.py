"""Atomic file writes: a reader (or a crash) never sees half a file.

Each write goes to a hidden temporary file beside the target, is flushed to disk, then
`os.replace`d over the target, which is atomic on POSIX and Windows within one folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically, creating the parent folder; returns the path.

    The temporary file is created with the process umask (like `open(path, "wb")`), so the
    result has ordinary permissions, and it is removed again if anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """UTF-8 text variant of `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))
