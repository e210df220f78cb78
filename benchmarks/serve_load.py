"""Benchmark: load test of the service on loopback — single-person scores and 10,000-person worklists at
1, 8 and 32 concurrent clients — beside the same requests handled in-process (the API app called
through ASGI with no sockets and no BentoML: the floor).

The first run prepares a cached PHM home (a 60,000-person synthetic ICS, a quickly trained, audited,
approved and promoted emergency-admission champion, one daily snapshot, a coordinator for every
practice), in `benchmarks/.cache/serve_home`. Each level sends a fixed number of requests (bounded in
time and count) and prints p50/p95/p99 latency, throughput and errors.

Usage::

    .venv/bin/python -m benchmarks.serve_load [--persons 60000] [--single 400] [--cohort 20] [--out PATH]

Results go to `benchmarks/results/serve_load.json` (or `--out`) with the machine's facts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.measure import CACHE, machine, safety_case_current, say

HOME = CACHE / "serve_home"
TARGET_P99_MS, TARGET_COHORT_S = 50.0, 1.0


def prepare(persons: int) -> None:
    from evaluation.fairness.config import AuditConfig
    from serving.governance.model_audit import audit_model
    from serving.governance.signoff import decide, promote
    from training.train_validate import run as train
    from features.sources.loader import load
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings
    from serving.batch.daily import score_daily
    from training.config import TuningGrid, default_config

    settings = Settings(home=HOME)
    say(f"preparing {HOME} ({persons:,} people; once)")
    generate(GeneratorConfig(persons=persons, seed=11), HOME / "ics")
    load(settings, HOME / "ics")
    cfg = default_config("emergency_admission").model_copy(update={
        "grid": TuningGrid(num_leaves=[31], min_child_samples=[100]), "bootstrap_draws": 20})
    train(cfg, settings)
    out = audit_model(settings, "emergency_admission", 1, AuditConfig(bootstrap_draws=50))
    decide(settings, "emergency_admission", 1, "approved", "Benchmark", "benchmark", accept_flags=bool(out.result.flags))
    promote(settings, "emergency_admission", 1, by="benchmark")
    score_daily(settings)
    (HOME / "ready").write_text("ok")


def coordinator_token() -> str:
    import duckdb

    from serving.users import Role, add_user

    con = duckdb.connect(str(HOME / "warehouse" / "phm.duckdb"), read_only=True)
    practices = [r[0] for r in con.execute("SELECT practice_code FROM practices").fetchall()]
    con.close()
    _, token = add_user(HOME, "Benchmark Coordinator", Role.coordinator, practices, replace=True)
    return token


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    a = np.asarray(latencies) * 1000
    return tuple(float(x) for x in np.percentile(a, [50, 95, 99]))


def load(send, count: int, clients: int, budget_s: float = 120.0) -> dict:
    """`count` requests from `clients` threads (stopping early past the time budget)."""
    latencies, errors = [], 0
    started = time.perf_counter()

    def one(_i: int):
        if time.perf_counter() - started > budget_s:
            return None
        t0 = time.perf_counter()
        ok = send()
        return time.perf_counter() - t0, ok

    with ThreadPoolExecutor(clients) as pool:
        for res in pool.map(one, range(count)):
            if res is None:
                continue
            latencies.append(res[0])
            errors += 0 if res[1] else 1
    wall = time.perf_counter() - started
    p50, p95, p99 = percentiles(latencies)
    return {"n": len(latencies), "errors": errors, "p50": p50, "p95": p95, "p99": p99, "rps": len(latencies) / wall}


def in_process(ids: list[str], headers: dict, cohort_params: dict, single: int, cohort: int) -> tuple[dict, dict]:
    """The floor: the API app called directly through ASGI (httpx's ASGI transport) in this process."""
    import asyncio

    import httpx

    from phm.core.settings import Settings
    from serving.api import create_app
    from serving.state import ServiceState

    app = create_app()
    app.state.phm = ServiceState(Settings(home=HOME))
    rng = np.random.default_rng(0)

    async def run() -> tuple[dict, dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://local",
                                     headers=headers) as client:
            async def timed(n: int, call) -> dict:
                latencies, errors = [], 0
                started = time.perf_counter()
                for _ in range(n):
                    t0 = time.perf_counter()
                    errors += 0 if await call() else 1
                    latencies.append(time.perf_counter() - t0)
                p50, p95, p99 = percentiles(latencies)
                return {"n": n, "errors": errors, "p50": p50, "p95": p95, "p99": p99,
                        "rps": n / (time.perf_counter() - started)}

            async def one() -> bool:
                r = await client.post("/score", json={"person_ids": [ids[rng.integers(len(ids))]]})
                return r.status_code == 200

            async def worklist() -> bool:  # as over HTTP: the status is checked, the body not parsed
                return (await client.get("/worklist", params=cohort_params)).status_code == 200

            first = await client.get("/worklist", params=cohort_params)
            assert len(first.json()["rows"]) == cohort_params["top"], "the snapshot has fewer people than asked for"
            await timed(20, one)  # warm-up
            return await timed(single, one), await timed(cohort, worklist)

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    import httpx

    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=60_000)
    parser.add_argument("--single", type=int, default=400, help="single-score requests per level")
    parser.add_argument("--cohort", type=int, default=20, help="10,000-person worklist requests per level")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "serve_load.json")
    args = parser.parse_args(argv)
    os.environ["PHM_HOME"] = str(HOME)
    if not (HOME / "ready").exists():
        prepare(args.persons)
    from phm.core.settings import Settings as _Settings

    if safety_case_current(_Settings(home=HOME)):  # a home cached before approvals covered a configuration
        from serving.batch.daily import score_daily

        score_daily(_Settings(home=HOME))
    token = coordinator_token()
    from phm.core.settings import Settings
    from serving.batch.store import current

    _, scores = current(Settings(home=HOME))
    ids = [str(int(x)) for x in scores.person_id.sample(500, random_state=1)]
    headers = {"Authorization": f"Bearer {token}"}
    cohort_params = {"min_band": "routine", "top": 10_000}

    # the floor: the same API in-process, called through ASGI by one client (no sockets, no BentoML)
    floor_single, floor_cohort = in_process(ids, headers, cohort_params, args.single, args.cohort)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bentoml_bin = str(Path(sys.executable).parent / "bentoml")
    proc = subprocess.Popen([bentoml_bin, "serve", "serving.service:PHM", "--host", "127.0.0.1", "--port", str(port)],
                            env={**os.environ, "BENTOML_DO_NOT_TRACK": "true"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        results = {}
        gc.collect()
        gc.freeze()  # the load generator's own heap (pandas, the app above) must not pause its clients
        with httpx.Client(base_url=url, headers=headers, timeout=60,
                          limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as client:
            rng = np.random.default_rng(1)
            client.post("/api/score", json={"person_ids": ids[:1]})  # warm-up
            for clients in (1, 8, 32):
                say(f"{clients} client(s)")
                results[("single", clients)] = load(
                    lambda: client.post("/api/score", json={"person_ids": [ids[rng.integers(500)]]}).status_code == 200,
                    args.single, clients)
                results[("cohort", clients)] = load(
                    lambda: client.get("/api/worklist", params=cohort_params).status_code == 200, args.cohort, clients)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    print(f"\nPHM service load test on loopback: {len(scores):,} people in the snapshot | {machine()}")
    print(f"{'request':<28}{'clients':>8}{'n':>6}{'err':>5}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'p50 / floor':>13}")
    for name, floor, label in (("single", floor_single, "score one person"), ("cohort", floor_cohort, "worklist of 10,000")):
        f = floor
        print(f"{label + ' (in-process)':<28}{1:>8}{f['n']:>6}{f['errors']:>5}{f['p50']:>9.1f}{f['p95']:>9.1f}"
              f"{f['p99']:>9.1f}{f['rps']:>9.1f}{'1.0x':>13}")
        for clients in (1, 8, 32):
            r = results[(name, clients)]
            print(f"{label + ' (HTTP)':<28}{clients:>8}{r['n']:>6}{r['errors']:>5}{r['p50']:>9.1f}{r['p95']:>9.1f}"
                  f"{r['p99']:>9.1f}{r['rps']:>9.1f}{r['p50'] / f['p50']:>12.1f}x")
    single8, cohort1 = results[("single", 8)], results[("cohort", 1)]
    errors = sum(r["errors"] for r in results.values())
    ok = single8["p99"] < TARGET_P99_MS and cohort1["p50"] / 1000 < TARGET_COHORT_S and errors == 0
    print(f"target: single score p99 under {TARGET_P99_MS:.0f} ms at 8 clients ({single8['p99']:.1f}), 10,000-person "
          f"worklist under {TARGET_COHORT_S:.0f} s ({cohort1['p50'] / 1000:.2f} s at 1 client), zero errors ({errors}): "
          f"{'PASS' if ok else 'MISS'}")
    write_results(args.out, len(scores), floor_single, floor_cohort, results, ok)


def write_results(out: Path, people: int, floor_single: dict, floor_cohort: dict, results: dict, ok: bool) -> None:
    """The figures as JSON with the machine's facts (cores, memory, versions, date)."""
    import bentoml
    import fastapi

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    body = {"benchmark": "serve_load", "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "people_in_snapshot": people,
            "machine": {"cores": os.cpu_count(), "memory_gib": round(ram / 1024**3, 2),
                        "python": platform.python_version(), "bentoml": bentoml.__version__,
                        "fastapi": fastapi.__version__},
            "floor_in_process": {"score_one": floor_single, "worklist_10000": floor_cohort},
            "http": {f"{'score_one' if name == 'single' else 'worklist_10000'}@{clients}": r
                     for (name, clients), r in results.items()},
            "target": {"single_p99_ms_at_8_clients": TARGET_P99_MS, "worklist_p50_s_at_1_client": TARGET_COHORT_S},
            "result": "PASS" if ok else "MISS"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=1))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
