"""Run a benchmark step in a fresh interpreter and collect its time, rows and own peak memory.

A child prints one tagged JSON line; the parent parses it. Each step's `ru_maxrss` is its own,
so stages and floors are measured separately in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
TAG = "BENCH_RESULT "
GIB = 1024**3

Result = dict[str, Any]


def say(msg: str) -> None:
    """Progress to stderr with a timestamp."""
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_report(seconds: float, rows: int) -> None:
    """Called at the end of a child: report seconds, rows and this process's peak RSS."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(TAG + json.dumps({"seconds": seconds, "rows": rows, "peak_bytes": peak_kib * 1024}), flush=True)


def run_child(module: str, step: str, args: list[str], env: dict[str, str]) -> Result:
    """Run `module.child_main()` with argv [step, *args]; stderr (progress, tracebacks) passes through."""
    cmd = [sys.executable, "-c", f"from {module} import child_main; child_main()", step, *args]
    print(f"running {step} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{step} failed (exit code {proc.returncode}); see the traceback above")
    return {**json.loads(lines[-1][len(TAG):]), "wall": wall}


def gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def machine() -> str:
    import platform

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"Python {platform.python_version()} | {os.cpu_count()} CPUs | {gib(ram)} GiB RAM"


def cached_warehouse(persons: int, warehouse: Path | None) -> Path:
    """`warehouse`, or the synthetic one for `persons` under the cache (generated and loaded once)."""
    path = (warehouse or CACHE / f"features_{persons}" / "phm.duckdb").resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run_child("benchmarks.features_build", "prepare", [str(persons), str(path)], dict(os.environ))
    return path


def safety_case_current(settings, by: str = "Benchmark") -> bool:
    """Bring a cached benchmark home up to date with configuration approvals: a champion approved before approvals
    covered a configuration gets a change-impact review of the configuration in force (benchmarks only; a real
    deployment has a named safety officer review it). True when anything was re-approved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from models import specs
    from serving.governance.safety_case import case, review_change
    from training import tracking

    tracking.configure(settings)
    changed = False
    for name in specs.NAMES:
        try:
            version = int(MlflowClient().get_model_version_by_alias(name, "champion").version)
        except MlflowException:
            continue
        c = case(settings, name, version)
        if not c.ok and c.approval is not None and c.rejection is None and not c.record_problem:
            review_change(settings, name, version, "approved", by, "benchmark home brought up to date")
            changed = True
    return changed
