"""Atomic file writes: a reader (or a crash) never sees half a file.

Each write goes to a hidden temporary file beside the target, is flushed to disk, then
`os.replace`d over the target, which is atomic on POSIX and Windows within one folder; the folder
is then flushed too, so the rename itself survives a power cut. A process killed mid-write leaves
its temporary file behind: `remove_stale_temporaries` clears them when a run starts or resumes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # the names `_temporary` makes


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically, creating the parent folder; returns the path.

    The temporary file is created with the process umask (like `open(path, "wb")`), so the
    result has ordinary permissions, and it is removed again if anything fails.
    """
    return write_files_atomic({Path(path): data})[0]


def write_files_atomic(files: dict[Path, bytes]) -> list[Path]:
    """Write several files, each atomically, with all data on disk before the first rename.

    Files that belong together (a shader's weights and the JSON holding their checksum) are then
    replaced within microseconds of each other instead of one full write apart.
    """
    temporaries: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporaries.append((_temporary(path, data), path))
        for tmp, path in temporaries:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temporaries:
            tmp.unlink(missing_ok=True)
        raise
    for folder in {path.parent for _, path in temporaries}:
        _fsync_folder(folder)
    return [path for _, path in temporaries]


def _temporary(path: Path, data: bytes) -> Path:
    """`data` in a new hidden file beside `path`, flushed to disk; removed again if writing fails."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the renames into it); POSIX only, Windows has no folder handles."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path | str) -> int:
    """Delete temporary files a killed writer left in `folder` and its subfolders; returns how many.

    Call it only when no other process writes there (a run starting or resuming owns its folder).
    """
    removed = 0
    for path in Path(folder).rglob("*.tmp"):
        if path.is_file() and _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write in %s", removed, folder)
    return removed


def write_text_atomic(path: Path | str, text: str) -> Path:
    """UTF-8 text variant of `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))
