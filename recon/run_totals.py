"""A run's totals across the sessions that made it (the first one and every resume), for run.json.

A run is often made in several sessions: stopped in the GUI, killed, resumed. run.json's
`seconds` is the time of the whole run and `sessions` lists each session that took steps
(`{"from": iteration, "to": iteration, "seconds": s}`), so a resume never replaces the run's
time by its own (a 419 s run read 0.123 s after a resume that had nothing left to do).
`iteration` and `losses` are the run's already: the checkpoint carries the iteration and history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Session = dict[str, Any]  # {"from": int, "to": int, "seconds": float}


def earlier_sessions(record: Mapping[str, Any]) -> list[Session]:
    """The sessions a run.json lists (checked by `recon.run_checks`); an older run.json without
    `sessions` counts its `seconds` as one session from iteration 0."""
    sessions = record.get("sessions")
    if isinstance(sessions, list):
        return [dict(s) for s in sessions]
    if isinstance(record.get("seconds"), (int, float)):
        return [{"from": 0, "to": int(record.get("iteration", 0)), "seconds": float(record["seconds"])}]
    return []


def run_totals(earlier: Sequence[Mapping[str, Any]], start: int, iteration: int, seconds: float) -> dict[str, Any]:
    """run.json's `seconds` and `sessions` for a session that began at `start`, is at `iteration`
    and has taken `seconds` so far; it counts once it has taken a step."""
    sessions = [dict(s) for s in earlier]
    if iteration > start:
        sessions.append({"from": start, "to": iteration, "seconds": seconds})
    return {"seconds": sum(float(s["seconds"]) for s in sessions), "sessions": sessions}
