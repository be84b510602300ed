"""One reader for the JSON files this project writes and reads (datasets, shader, materials, edits, runs).

Every such file holds one JSON object; each reader used to repeat the same four refusals with
slightly different words. `read_json_object` gives them once, raised as the caller's own
`FileError` subclass so the message still names the file and the kind of file at fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recon.errors import FileError


def read_json_object(path: Path | str, error: type[FileError], missing: str = "file is missing") -> dict[str, Any]:
    """The top-level object of the JSON file at `path`, or `error(path, why)`.

    `missing` is the message for a file that does not exist (what to do about it differs by kind).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, missing) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, f"cannot read the file ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); is it truncated?") from None
    if not isinstance(data, dict):
        raise error(path, f"expected a JSON object at the top level, got {type(data).__name__}")
    return data
