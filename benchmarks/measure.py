"""Run a benchmark step in a fresh interpreter and collect its time, rows and own peak memory; record a run.

A child prints one tagged JSON line; the parent parses it. Each step's `ru_maxrss` is its own,
so stages and floors are measured separately in the same run. `Run` records a run: the figures, each
target with PASS or MISS and the machine's facts, in `benchmarks/results/NAME.json` (`--trial`: `trial/`).
"""

from __future__ import annotations

import argparse
import json
import numbers
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
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


def child_report(seconds: float, rows: int, extra: dict | None = None) -> None:
    """Called at the end of a child: report seconds, rows, this process's peak RSS and any `extra` figures."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        TAG + json.dumps({"seconds": seconds, "rows": rows, "peak_bytes": peak_kib * 1024, **(extra or {})}), flush=True
    )


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
    return {**json.loads(lines[-1][len(TAG) :]), "wall": wall}


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


# ---- recording a run --------------------------------------------------------------------------------------------
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = (
    "duckdb",
    "pandas",
    "numpy",
    "pyarrow",
    "lightgbm",
    "scikit-learn",
    "mlflow",
    "bentoml",
    "fastapi",
    "pyspark",
    "prophet",
)
OPS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t, "==": lambda v, t: v == t, ">=": lambda v, t: v >= t}


@dataclass(frozen=True)
class Target:
    """A target the issue sets: `value op limit` (e.g. seconds < 180) passes, anything else is a MISS."""

    what: str
    value: float
    limit: float
    unit: str = ""
    op: str = "<"

    @property
    def verdict(self) -> str:
        return "PASS" if OPS[self.op](self.value, self.limit) else "MISS"

    def record(self) -> dict:
        return {
            "what": self.what,
            "value": _round(self.value),
            "target": f"{self.op} {_fmt(self.limit)} {self.unit}".strip(),
            "limit": _round(self.limit),
            "op": self.op,
            "unit": self.unit,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Figure:
    """A measured figure, with the floor measured in the same run when there is one (the least the same work
    costs by the plainest means; a floor above its figure does not bound it, and the record says so)."""

    what: str
    value: float
    unit: str = ""
    floor: float | None = None
    floor_what: str = ""

    def record(self) -> dict:
        out = {"what": self.what, "value": _round(self.value), "unit": self.unit}
        if self.floor is not None:
            out.update(
                floor=_round(self.floor),
                floor_what=self.floor_what,
                ratio=round(self.value / self.floor, 2) if self.floor else None,
                floor_bounds=self.floor <= self.value,
            )
        return out


def _round(x: float) -> float | int:
    """Counts as they are; measurements to four significant figures (what a shared 2-core machine can repeat)."""
    if isinstance(x, numbers.Integral):
        return int(x)
    return float(f"{float(x):.4g}")


def _fmt(x: float) -> str:
    """A figure as printed and rendered: thousands separated, at most four significant figures."""
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def add_trial(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `--trial` flag every benchmark takes."""
    parser.add_argument(
        "--trial",
        action="store_true",
        help="a quick check: results go to benchmarks/results/trial/ (git-ignored), never over a "
        "recorded figure (any non-default size does the same)",
    )
    return parser


def facts() -> dict:
    """The machine and the code: cores, memory, CPU model, Python and package versions, git commit."""
    import platform
    from importlib import metadata

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    model = next(
        (ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines() if ln.startswith("model name")),
        platform.processor() or None,
    )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "memory_gib": round(ram / GIB, 2),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        **_git(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git() -> dict:
    def git(*a: str) -> str | None:
        proc = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class Run:
    """One run of benchmark `name` with parsed `args`: `write_results(results, targets, figures)` prints the
    figures and writes them, with the machine's facts and the load average at the start and end, to
    `benchmarks/results/NAME.json`, or to `benchmarks/results/trial/NAME.json` when the run is a trial (`--trial`,
    or any argument other than its default except those in `neutral`), so a quick check never overwrites a
    recorded full-size figure. `out` names the file outright."""

    def __init__(
        self,
        name: str,
        args: argparse.Namespace,
        parser: argparse.ArgumentParser | None = None,
        *,
        neutral: tuple[str, ...] = (),
        out: Path | None = None,
        results_dir: Path = RESULTS,
    ):
        self.name = name
        self.args = {k: _jsonable(v) for k, v in vars(args).items()}
        defaults = {k: _jsonable(v) for k, v in vars(parser.parse_args([])).items()} if parser else dict(self.args)
        changed = {k: v for k, v in self.args.items() if k != "trial" and defaults.get(k) != v}
        self.trial = bool(self.args.get("trial")) or any(k not in neutral for k in changed)
        self.command = " ".join([f"python -m benchmarks.{name}", *(_flag(k, v) for k, v in changed.items())])
        if self.args.get("trial"):
            self.command += " --trial"
        self.path = out or (results_dir / "trial" if self.trial else results_dir) / f"{name}.json"
        self.started, self.load_start = _now(), [round(x, 2) for x in os.getloadavg()]
        self.facts = facts()

    def write_results(
        self, results: dict, targets: list[Target] = (), figures: list[Figure] = (), note: str = ""
    ) -> dict:
        """Print and write the run's record; returns it."""
        body = {
            "benchmark": self.name,
            "schema": 1,
            "command": self.command,
            "trial": self.trial,
            "args": self.args,
            "started": self.started,
            "finished": _now(),
            "load_average": {"start": self.load_start, "end": [round(x, 2) for x in os.getloadavg()]},
            "facts": self.facts,
            "targets": [t.record() for t in targets],
            "figures": [f.record() for f in figures],
            "verdict": ("PASS" if all(t.verdict == "PASS" for t in targets) else "MISS") if targets else None,
            "note": note,
            "results": results,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(body, indent=1, default=str) + "\n")
        print_record(body)
        print(f"results written to {_shown(self.path)}" + (" (a trial: not a recorded figure)" if self.trial else ""))
        return body


def _flag(key: str, value: Any) -> str:
    name = "--" + key.replace("_", "-")
    if value is True:
        return name
    if isinstance(value, list):
        return " ".join([name, *map(str, value)])
    return f"{name} {value}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def print_record(body: dict) -> None:
    """The targets (PASS/MISS) and figures (beside their floors) of a record, as text."""
    f = body["facts"]
    print(
        f"\n{body['benchmark']} | {f['cores']} cores, {f['memory_gib']} GiB, {f['cpu_model']} | Python {f['python']} | "
        f"load average {body['load_average']['start'][0]} -> {body['load_average']['end'][0]}"
    )
    for t in body["targets"]:
        print(f"  target  {t['what']}: {_fmt(t['value'])} {t['unit']} (target {t['target']}): {t['verdict']}")
    for g in body["figures"]:
        line = f"  figure  {g['what']}: {_fmt(g['value'])} {g['unit']}"
        if "floor" in g:
            line += f" | floor ({g['floor_what']}) {_fmt(g['floor'])} {g['unit']}: {_fmt(g['ratio'])}x"
            if not g["floor_bounds"]:
                line += " -- the floor is above the figure: it does not bound this stage"
        print(line)
    if body["verdict"]:
        print(f"  {body['verdict']}")
