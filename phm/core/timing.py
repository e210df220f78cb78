"""Wall time and peak memory at the end of each stage of a job (foundation: imports nothing from the project)."""

from __future__ import annotations

import resource
import time


class Stages:
    """`done(name)` closes a stage: its seconds, and the process's peak resident memory so far (GiB)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.rows: dict[str, dict[str, float]] = {}

    def done(self, name: str) -> None:
        now = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        self.rows[name] = {"seconds": round(now - self._last, 3), "peak_gib": round(peak, 2)}
        self._last = now
