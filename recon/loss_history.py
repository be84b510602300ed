"""A run's loss history as the step records the front ends plot, whatever wrote it.

Sessions keep one row per iteration (`Session.history`: iteration, the weighted loss terms,
total, event, and a method's own counters such as DVR's `samples`); the runner writes the rows
into run.json's `losses` and the checkpoint keeps them, so a resumed or opened run can show its
whole history and not only the steps since it was resumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from recon.methods.session import StepRecord

NOT_TERMS = frozenset({"iteration", "total", "event", "seconds", "view"})
NON_FINITE = frozenset({"nan", "inf", "-inf"})  # how run.json writes non-finite floats


def _float(value: Any) -> float | None:
    """A loss value: a float, or run.json's word for a non-finite one. Counters (ints) are not losses."""
    if isinstance(value, float):
        return value
    if isinstance(value, str) and value in NON_FINITE:
        return float(value)
    return None


def step_records(rows: Iterable[Mapping[str, Any]]) -> list[StepRecord]:
    """One StepRecord per history row, with the row's loss terms (its floats) and total.

    Rows carry no time or view, so those are 0 and -1 in the records.
    """
    records = []
    for row in rows:
        losses = {k: v for k, v in ((k, _float(v)) for k, v in row.items() if k not in NOT_TERMS) if v is not None}
        total = row.get("total")
        total = float(total) if isinstance(total, (int, float)) else _float(total)
        event = row.get("event")
        records.append(StepRecord(int(row["iteration"]), losses, math.nan if total is None else total, 0.0, -1,
                                  event if isinstance(event, str) else None))
    return records
