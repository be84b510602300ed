"""Per-stage wall-clock accounting (the NDS supplementary's Table 3), free when switched off."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class Profiler:
    """Accumulates seconds per named stage; nested names use '/' ("step/shading")."""

    def __init__(self, enabled: bool = False, device: torch.device | None = None) -> None:
        self.enabled = enabled
        self.sync = enabled and device is not None and device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.totals[name] += time.perf_counter() - start
            self.counts[name] += 1

    def table(self) -> list[dict[str, float | int | str]]:
        """Rows sorted by stage name: stage, total seconds, calls, mean milliseconds."""
        return [
            {"stage": k, "seconds": round(v, 6), "calls": self.counts[k], "mean_ms": round(1000 * v / self.counts[k], 3)}
            for k, v in sorted(self.totals.items())
        ]
