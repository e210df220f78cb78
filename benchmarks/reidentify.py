"""Benchmark: re-identifying a 20,000-row practice list against a 3,000,000-person snapshot, beside floors measured
in the same run.

The snapshot is synthetic but snapshot-shaped: a `scores.parquet` with the columns the service reads
(person_id = the HMAC pseudonym of a generated NHS number with the demo key, practice_code over 500 practices (6,000 people each),
risk, band by the ICS's cut-offs, rank, reasons as JSON for the worklist bands), read with the snapshot store's
reader (`pandas.read_parquet`) and turned into the service's lookup tables (`serving.reidentify.lookup_tables`, as
`ServiceState` does once per snapshot). Building 3 M real scores would need a 3 M-person warehouse and model run.
The practice list is 20,000 rows of one coordinator's four practices (10% people of other practices, 3% malformed
numbers), as CSV bytes.

Timed, each the median of `--rounds` runs:
- `request`: `serving.reidentify.answer` — parse and check the CSV, pseudonymise every number, join to the
  snapshot and scope, build the typed answer — plus its JSON serialisation: what a request costs beyond HTTP;
- `floor_pseudonymise`: pseudonymising the 20,000 numbers alone (HMAC-SHA256 each);
- `floor_parse`: reading the CSV alone.
Wall time is the target's measure; CPU time of the process is reported beside it (on a shared machine the wall
time also holds waiting for a core: the 1-minute load average at the end is recorded). Also reported: loading the
snapshot and building the lookup tables (once per snapshot, not per request).

Results go to `benchmarks/results/reidentify.json`; the target is a request under 1 s.

Usage::

    .venv/bin/python -m benchmarks.reidentify [--people 3000000] [--rows 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

from benchmarks.measure import CACHE, Figure, Run, Target, add_trial, say

TARGET_S = 1.0
PEOPLE_PER_PRACTICE = 6_000  # 500 practices for 3 M people
BANDS = (("very high", 0.005), ("high", 0.02), ("raised", 0.05))


def _snapshot(people: int, path) -> np.ndarray:
    """Write the snapshot-shaped scores file; return the NHS numbers (kept in this process only)."""
    from features.sources.nhs_number import generate
    from features.sources.pseudonymise import Pseudonymiser
    from phm.core.settings import DEMO_PSEUDONYM_KEY

    rng = np.random.default_rng(22)
    numbers = generate(rng, people)
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    ids = np.fromiter((pseudo.person_id(n) for n in numbers), np.int64, people)
    risk = rng.beta(1.2, 20, people)
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(people, np.int64)
    rank[order] = np.arange(1, people + 1)
    band = np.full(people, "routine", dtype=object)
    for name, share in reversed(BANDS):
        band[rank <= int(share * people)] = name
    reasons = np.where(
        band != "routine",
        json.dumps([{"feature": "age", "value": 80.0, "words": "aged 80", "log_odds": 0.4}] * 3),
        None,
    )
    n = max(8, people // PEOPLE_PER_PRACTICE)
    practice = np.array([f"P{i:05d}" for i in range(n)])[rng.integers(0, n, people)]
    pd.DataFrame(
        {"person_id": ids, "practice_code": practice, "risk": risk, "band": band, "rank": rank, "reasons": reasons}
    ).to_parquet(path, index=False)
    return numbers


def _practice_list(numbers: np.ndarray, practice: np.ndarray, mine: list[str], rows: int) -> bytes:
    from features.sources.nhs_number import corrupt_check_digit

    rng = np.random.default_rng(7)
    inside = np.flatnonzero(np.isin(practice, mine))
    outside = np.flatnonzero(~np.isin(practice, mine))
    n_other = rows // 10
    chosen = np.concatenate(
        [rng.choice(inside, rows - n_other, replace=False), rng.choice(outside, n_other, replace=False)]
    )
    rng.shuffle(chosen)
    nums = numbers[chosen].copy()
    bad = rng.choice(rows, int(rows * 0.03), replace=False)
    nums[bad] = corrupt_check_digit(nums[bad])
    table = pd.DataFrame(
        {
            "NHS number": [f"{n[:3]} {n[3:6]} {n[6:]}" for n in nums],
            "Name": [f"Person {i}" for i in range(rows)],
            "Date of birth": "1950-01-01",
            "Phone": "07700 900000",
        }
    )
    return table.to_csv(index=False).encode()


def _pseudonymise(pseudo, numbers: list[str]) -> list[int]:
    return [pseudo.person_id(n) for n in numbers]


def _median(step, rounds: int, cpu: list | None = None) -> tuple[float, object]:
    """Median wall seconds of `rounds` runs (and, into `cpu`, the median CPU seconds of this process)."""
    times, used, out = [], [], None
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        out = step()
        times.append(time.perf_counter() - t0)
        used.append(time.process_time() - c0)
    if cpu is not None:
        cpu.append(statistics.median(used))
    return statistics.median(times), out


def main() -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.reidentify", description=__doc__.split("\n\n")[0])
    )
    parser.add_argument("--people", type=int, default=3_000_000)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run = Run("reidentify", args, parser)
    from features.sources.practice_list import parse, pseudonymise
    from features.sources.pseudonymise import Pseudonymiser
    from phm.core.settings import DEMO_PSEUDONYM_KEY
    from serving.reidentify import answer, lookup_tables
    from serving.schemas import Band

    key = DEMO_PSEUDONYM_KEY.encode()
    scratch = CACHE / "reidentify"
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"scores_{args.people}.parquet"
    say(f"writing a snapshot-shaped scores file of {args.people:,} people")
    t0 = time.perf_counter()
    numbers = _snapshot(args.people, path)
    build_s = time.perf_counter() - t0
    say("loading it as the service does (read, lookup tables)")
    t0 = time.perf_counter()
    scores = pd.read_parquet(path)
    position, columns = lookup_tables(scores)
    load_s = time.perf_counter() - t0
    mine = [f"P{i:05d}" for i in range(4)]
    data = _practice_list(numbers, columns["practice_code"], mine, args.rows)
    del numbers
    meta = {
        "date": "2025-03-31",
        "worklist_model": "emergency_admission",
        "models": {"emergency_admission": {"version": "1"}},
    }
    say(f"timing {args.rounds} rounds of each step on a {len(data):,}-byte list of {args.rows:,} rows")
    results = {}
    for band in (Band.routine, Band.raised):
        cpu: list[float] = []
        seconds, out = _median(
            lambda b=band: answer(meta, position, columns, key, mine, data, b).to_json(), args.rounds, cpu
        )
        got = json.loads(out)
        results[f"request_{band.value}"] = {
            "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu[0], 4),
            "matched": got["matched"],
            "malformed": got["malformed"],
            "not_on_worklist": got["not_on_worklist"],
            "response_bytes": len(out),
        }
    parsed = parse(data)
    numbers_only = [e.nhs_number for e in parsed.entries]
    results["floor_pseudonymise"] = {
        "seconds": round(_median(lambda: _pseudonymise(Pseudonymiser(key), numbers_only), args.rounds)[0], 4),
        "numbers": len(numbers_only),
    }
    results["floor_parse"] = {"seconds": round(_median(lambda: parse(data), args.rounds)[0], 4)}
    results["parse_and_pseudonymise"] = {
        "seconds": round(_median(lambda: pseudonymise(parse(data), key), args.rounds)[0], 4)
    }
    results.update(
        list_bytes=len(data),
        snapshot_build_seconds=round(build_s, 2),
        snapshot_load_seconds=round(load_s, 2),
        snapshot="synthetic snapshot-shaped scores.parquet (see the module docstring)",
    )
    path.unlink(missing_ok=True)
    ro, ra = results["request_routine"], results["request_raised"]
    targets = [
        Target(
            f"{args.rows:,}-row list, {args.people:,} people: worklist bands (raised and above)",
            ra["seconds"],
            TARGET_S,
            "s",
        ),
        Target(f"{args.rows:,}-row list, {args.people:,} people: every in-scope person", ro["seconds"], TARGET_S, "s"),
    ]
    floor = results["floor_pseudonymise"]["seconds"]
    figures = [
        Figure(
            f"request, worklist bands ({ra['matched']:,} people)",
            ra["seconds"],
            "s",
            floor,
            "pseudonymising the numbers alone",
        ),
        Figure(
            f"request, every in-scope person ({ro['matched']:,} people, {ro['response_bytes']:,} bytes)",
            ro["seconds"],
            "s",
            floor,
            "pseudonymising the numbers alone",
        ),
        Figure("CPU time, every in-scope person", ro["cpu_seconds"], "s"),
        Figure(
            "reading and checking the CSV",
            results["floor_parse"]["seconds"],
            "s",
            floor,
            "pseudonymising the numbers alone",
        ),
        Figure("loading the snapshot and its lookup tables (once per snapshot)", load_s, "s"),
    ]
    run.write_results(
        results,
        targets,
        figures,
        note="Medians of the rounds, wall time; a synthetic snapshot-shaped "
        "scores file read as the service reads a snapshot.",
    )


if __name__ == "__main__":
    main()
