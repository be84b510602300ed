"""User-facing errors: every one names the file (or thing) at fault and what to do about it."""

from __future__ import annotations

from pathlib import Path


class ReconstructError(Exception):
    """Base of every error the CLI and GUI report as one line instead of a traceback."""


class FileError(ReconstructError):
    """A file (or folder) is refused: `path` is the one at fault, `message` what is wrong with it."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class DatasetError(FileError):
    """A dataset cannot be read: `path` is the file or folder at fault."""


class SessionError(ReconstructError):
    """A session cannot be built or resumed (bad checkpoint, mismatching dataset)."""


class StalledError(SessionError):
    """`max_rollbacks` steps in a row were rolled back: the session is at its last good state."""
