"""What a run folder's run.json must hold for `resume` and `eval DIR` to use it.

run.json is written by `recon.runner.write_outputs`; one edited or from elsewhere is refused here,
entry by entry, before any of it is used (the CLI adds the file's name).
"""

from __future__ import annotations

from typing import Any

from recon.validate import Invalid, count, number


def check_run_record(record: Any) -> None:
    """The entries `resume` and `eval` read: dataset source, image scale, held-out views."""
    if not isinstance(record, dict):
        raise Invalid(f"expected a JSON object at the top level, got {type(record).__name__}")
    dataset = record.get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else None
    if not isinstance(source, str) or not source:
        raise Invalid("'dataset.source' must name the run's dataset (a path)")
    if "image_scale" in record:
        scale = number(record, "image_scale", positive=True)
        if scale > 4:
            raise Invalid(f"'image_scale' must be in (0, 4], got {scale}")
    holdout = record.get("holdout")
    names = [holdout] if isinstance(holdout, str) else holdout
    if holdout is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise Invalid("'holdout' must be a view name or a list of view names")
    if "holdout_every" in record:
        count(record, "holdout_every")
