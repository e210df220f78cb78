"""Benchmark: what information governance adds to each request, measured call by call (so the figures do not
drown in the noise of a shared machine): an access-log entry as it was before issue 18 (who, how many people)
against the entry now written for every protected request (the pseudonymised ids of the people returned: one
for a single score, 100 for a worklist page, 10,000 for the largest worklist), a session lookup in the
operational database (SQLite; with and without the throttled last-seen write), and a token lookup.

Usage::

    .venv/bin/python -m benchmarks.governance_overhead [--repeat 2000]

Results go to `benchmarks/results/governance_overhead.json` with the machine's facts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "governance_overhead.json"


def per_call(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times) * 1e6
    return {"n": repeat, "p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.governance_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from phm.core import ledger
    from phm.core.settings import Settings
    from phm.operational.database import upgrade
    from serving.sessions import TOUCH_EVERY, Sessions
    from serving.users import Role, User, authenticate, digest

    rng = np.random.default_rng(0)
    ids = [str(x) for x in rng.integers(1, 2**62, 10_000)]
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        before = home / "before.jsonl"  # the entry of issue 17: who, how many, which practices
        out["access_entry_before_counts_only"] = per_call(lambda: ledger.append(
            before, "access", full_check=False, user="coord", role="coordinator", endpoint="score", persons=1,
            practices=["A81001"]), args.repeat)
        for n in (1, 100, 10_000):
            path = home / f"now_{n}.jsonl"
            fields = {"user": "coord", "role": "coordinator", "method": "GET", "route": "/api/worklist", "status": 200,
                      "client": "127.0.0.1", "people": ids[:n], "practices": ["A81001"]}
            out[f"access_entry_now_{n}_ids"] = per_call(
                lambda: ledger.append(path, "access", full_check=False, **fields), args.repeat if n < 10_000 else 100)
        settings = Settings(home=home / "phm")
        upgrade(settings)
        store = Sessions(settings)
        user = User(name="coord", role=Role.coordinator, practices=["A81001"], token_sha256=digest("t"), created="x")
        cookie = store.issue(user)
        users = {"coord": user}
        out["session_lookup_sqlite"] = per_call(lambda: store.lookup(cookie, users), args.repeat)
        import serving.sessions as sessions_module

        sessions_module.TOUCH_EVERY = type(TOUCH_EVERY)(0)  # worst case: a last-seen write on every lookup
        out["session_lookup_sqlite_with_write"] = per_call(lambda: store.lookup(cookie, users), args.repeat)
        by_digest = {u.token_sha256: u for u in [user]}
        out["token_lookup"] = per_call(lambda: authenticate(by_digest, "t"), args.repeat)

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    base = out["access_entry_before_counts_only"]["p50_us"]
    print(f"\nPer-request governance work | Python {platform.python_version()} | {os.cpu_count()} CPUs")
    print(f"{'step':<40}{'p50 us':>10}{'p99 us':>10}{'p50 / before':>14}")
    for name, r in out.items():
        print(f"{name:<40}{r['p50_us']:>10.0f}{r['p99_us']:>10.0f}{r['p50_us'] / base:>13.1f}x")
    body = {"benchmark": "governance_overhead", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {"cores": os.cpu_count(), "memory_gib": round(ram / 1024**3, 2),
                        "python": platform.python_version(), "load_average": os.getloadavg()},
            "baseline": "access_entry_before_counts_only", "results": out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=1))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
