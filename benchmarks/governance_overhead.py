"""Benchmark: what information governance adds to each request, measured call by call (so the figures do not
drown in the noise of a shared machine): an access-log entry as it was before issue 18 (who, how many people)
against the entry now written for every protected request (the pseudonymised ids of the people returned: one
for a single score, 100 for a worklist page, 10,000 for the largest worklist), a session lookup in the
operational database (SQLite; with and without the throttled last-seen write), and a token lookup.

Usage::

    .venv/bin/python -m benchmarks.governance_overhead [--repeat 2000] [--trial]

Results go to `benchmarks/results/governance_overhead.json` with the machine's facts (a trial or another size:
`benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import Figure, Run, add_trial


def per_call(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times) * 1e6
    return {"n": repeat, "p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.governance_overhead", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="write the results here instead")
    args = parser.parse_args(argv)
    run = Run("governance_overhead", args, parser, neutral=("out",), out=args.out)

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
        out["access_entry_before_counts_only"] = per_call(
            lambda: ledger.append(
                before,
                "access",
                full_check=False,
                user="coord",
                role="coordinator",
                endpoint="score",
                persons=1,
                practices=["A81001"],
            ),
            args.repeat,
        )
        for n in (1, 100, 10_000):
            path = home / f"now_{n}.jsonl"
            fields = {
                "user": "coord",
                "role": "coordinator",
                "method": "GET",
                "route": "/api/worklist",
                "status": 200,
                "client": "127.0.0.1",
                "people": ids[:n],
                "practices": ["A81001"],
            }
            out[f"access_entry_now_{n}_ids"] = per_call(
                lambda: ledger.append(path, "access", full_check=False, **fields), args.repeat if n < 10_000 else 100
            )
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

    run.write_results(
        out,
        [],
        record(out),
        note="Per call, p50 over the repeats; no target: the cost is weighed "
        "against a request's (benchmarks.serve_load).",
    )


def record(out: dict) -> list[Figure]:
    """Each step's p50, the access entries beside the count-only entry of issue 17 (the least an entry costs)."""
    base = out["access_entry_before_counts_only"]["p50_us"]
    words = {
        "access_entry_before_counts_only": "access-log entry, counts only (before issue 18)",
        "access_entry_now_1_ids": "access-log entry with 1 person's id",
        "access_entry_now_100_ids": "access-log entry with 100 ids",
        "access_entry_now_10000_ids": "access-log entry with 10,000 ids",
        "session_lookup_sqlite": "session lookup (SQLite)",
        "session_lookup_sqlite_with_write": "session lookup recording the last use",
        "token_lookup": "token lookup",
    }
    figures = []
    for key, r in out.items():
        floor = base if key.startswith("access_entry_now") else None
        figures.append(
            Figure(
                f"{words.get(key, key)} (p50)",
                r["p50_us"],
                "us",
                floor,
                "count-only entry" if floor is not None else "",
            )
        )
    return figures


if __name__ == "__main__":
    main()
