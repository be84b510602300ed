"""What a run folder's run.json must hold for `resume` and `eval DIR` to use it.

run.json is written by `recon.runner.write_outputs`; one edited or from elsewhere is refused here,
entry by entry, before any of it is used (the CLI adds the file's name).
"""

from __future__ import annotations

from typing import Any

from recon.validate import Invalid, count, entry, number

NON_FINITE = ("nan", "inf", "-inf")  # how `recon.export.write_run_record` writes non-finite floats


def check_run_record(record: Any) -> None:
    """The entries `resume`, `eval` and the GUI read: dataset source, image scale, held-out views,
    progress (iteration, scheduled iterations), loss history and the run's totals."""
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
    if "iteration" in record:
        count(record, "iteration")
    config = record.get("config")
    if config is not None:
        if not isinstance(config, dict):
            raise Invalid("'config' must be an object")
        if "iterations" in config:
            count(config, "iterations", "config.")
    if "losses" in record:
        _check_losses(entry(record, "losses", list))
    if "seconds" in record and number(record, "seconds") < 0:
        raise Invalid(f"'seconds' must not be negative, got {record['seconds']}")
    if "sessions" in record:
        for i, session in enumerate(entry(record, "sessions", list)):
            where = f"sessions[{i}]."
            count(session, "from", where)
            count(session, "to", where)
            if number(session, "seconds", where) < 0:
                raise Invalid(f"'{where}seconds' must not be negative")


def _check_losses(rows: list) -> None:
    """One object per iteration: its number and the total, a number or a non-finite marker."""
    for i, row in enumerate(rows):
        where = f"losses[{i}]."
        count(row, "iteration", where)
        total = entry(row, "total", (int, float, str), where)
        if isinstance(total, str) and total not in NON_FINITE:
            raise Invalid(f"'{where}total' must be a number, got {total!r}")
