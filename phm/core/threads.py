"""How many threads LightGBM uses, and how its idle threads wait, so training and scoring do not stall on a
machine shared with other work.

LightGBM parallelises each boosting round with OpenMP. By default an idle OpenMP thread spins (busy-waits) before
it sleeps, which on an idle machine saves a few microseconds per round, and on a busy one burns the very core the
thread it waits for needs: a 20,000-person training that takes 6-13 s alone took 8 minutes beside one CPU-bound
process on two cores. So, unless the user chose otherwise, `OMP_WAIT_POLICY=PASSIVE` (idle threads sleep at once).
The OpenMP runtime reads it once, when it loads, so it must be in the environment before LightGBM is imported:
importing this module sets it (`phm` and `models` import it first; a Spark session passes it to its executors).
Set `OMP_WAIT_POLICY=ACTIVE` to spin on a machine that does nothing else.

Threads: the `threads` setting (`PHM_THREADS`), else the cores this process may use (its CPU affinity and, in a
container, the CPU quota), never more. LightGBM's results do not depend on the thread count (deterministic mode,
column-wise histograms), so the setting changes speed only.
"""

from __future__ import annotations

import os
from pathlib import Path

WAIT_POLICY = "OMP_WAIT_POLICY"
os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def wait_policy() -> str:
    """The OpenMP wait policy in force for runtimes loaded from now on."""
    return os.environ.get(WAIT_POLICY, "PASSIVE").upper()


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole CPUs a container's CPU quota allows (cgroup v2 `cpu.max`, else v1 CFS quota); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, int(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def lightgbm_threads(configured: int | None = None) -> int:
    """Threads for LightGBM: `configured` (a model's own setting), else the `threads` setting, else the
    available cores."""
    if configured:
        return configured
    from phm.core.settings import get_settings

    return get_settings().threads or available_cores()
