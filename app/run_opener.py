"""A run folder in the window: read it off the UI thread, and what Resume may do with the run shown.

A run folder opened to look at (File → Open, a drop, `reconstruct-gui RUN_DIR`) is shown as it is:
`recon.saved_run` reads it without writing. Resume then continues the run the window shows (that
folder, or the last run once it ended) only where a user would expect it to: a stopped run to its
schedule, a finished one only when the Iterations box asks for more than it did. So Resume never
rewrites a finished run, and nothing in an opened folder changes until the user starts, resumes
or edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.background import BackgroundJob
from recon.saved_run import SavedRun, progress, read_saved_run


class RunOpener(BackgroundJob):
    """Reads one run folder at a time in a QThread (its dataset load takes seconds);
    `opened` (a `recon.saved_run.SavedRun`) / `failed` arrive on the owner's thread."""

    opened = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("opening a run folder", parent)
        self.finished.connect(self.opened)

    def start(self, path: Path) -> None:
        self.start_work(lambda report: read_saved_run(path, report), str(path))


@dataclass(frozen=True)
class ResumeOffer:
    """What the Resume button does at rest: continue `folder` until `until` (None: its own schedule), or not, and why."""

    folder: Path
    enabled: bool
    until: int | None
    why: str


@dataclass(frozen=True)
class ShownRun:
    """The run folder the window shows at rest and its run.json; `dataset_missing` says why it cannot be resumed."""

    folder: Path
    record: dict[str, Any]
    dataset_missing: str = ""

    def offer(self, asked: int | None) -> ResumeOffer:
        """What Resume does with `asked` iterations in the Iterations box (None: "auto")."""
        done, planned = progress(self.record)
        name = self.folder.name
        if self.dataset_missing:
            return ResumeOffer(self.folder, False, None, f"Resuming needs the run's photos, but {self.dataset_missing}.")
        if done < planned:  # stopped or killed: on to its schedule, or further when the box asks for more
            until = asked if asked is not None and asked > planned else None
            why = f"Resume continues the run in {name} from iteration {done} to {until or planned}."
            return ResumeOffer(self.folder, True, until, why)
        if asked is not None and asked > done:
            why = f"Resume continues the finished run in {name} from iteration {done} to {asked}."
            return ResumeOffer(self.folder, True, asked, why)
        why = (f"The run in {name} finished all its {done} iterations. To continue it, set Iterations above {done} "
               "and press Resume; until then nothing in its folder is written.")
        return ResumeOffer(self.folder, False, None, why)


def describe(saved: SavedRun) -> str:
    """The status line for a run folder just opened: what it is, and why photos are missing if they are."""
    done, planned = progress(saved.record)
    state = f"finished, {done} iterations" if saved.finished else f"stopped at iteration {done} of {planned}"
    text = f"Run {saved.folder.path.name} ({state}), shown as saved; nothing is written until you start, resume or edit."
    if saved.missing_scene:
        text += f" No cameras or photos: {saved.missing_scene}."
    return text
