"""A run's speed from its running time only, so a pause neither lowers the it/s nor stretches the ETA."""

from __future__ import annotations

import time
from collections.abc import Callable


class RunClock:
    """Iterations per second since `start`, time spent paused (or stopped) left out."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._first = self._last = 0
        self._banked = 0.0  # running seconds before the current stretch
        self._since: float | None = None  # start of the current running stretch; None while paused

    def start(self, iteration: int) -> None:
        """A run starts (or resumes from a checkpoint) at `iteration`, running."""
        self._first = self._last = iteration
        self._banked = 0.0
        self._since = self._clock()

    def pause(self) -> None:
        if self._since is not None:
            self._banked += self._clock() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def record(self, iteration: int) -> None:
        """The run has done `iteration` steps."""
        self._last = iteration

    @property
    def seconds(self) -> float:
        """Running time so far."""
        return self._banked + (self._clock() - self._since if self._since is not None else 0.0)

    @property
    def rate(self) -> float | None:
        """Iterations per running second, or None before the first step."""
        steps, seconds = self._last - self._first, self.seconds
        return steps / seconds if steps > 0 and seconds > 0 else None
