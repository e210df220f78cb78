"""Benchmark: load test of the service on loopback — single-person scores and 10,000-person worklists at
1, 8 and 32 concurrent clients — beside the same requests handled in-process (the API app called
through ASGI with no sockets and no BentoML: the floor).

The first run prepares a cached PHM home (a 60,000-person synthetic ICS, a quickly trained, audited,
approved and promoted emergency-admission champion, one daily snapshot, a coordinator for every
practice), in `benchmarks/.cache/serve_home`. Each level sends a fixed number of requests (bounded in
time and count) and prints p50/p95/p99 latency, throughput and errors.

Usage::

    .venv/bin/python -m benchmarks.serve_load [--persons 60000] [--single 400] [--cohort 20] [--out PATH] [--trial]

Results go to `benchmarks/results/serve_load.json` (or `--out`) with the machine's facts (a trial or another
size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.measure import CACHE, Figure, Run, Target, add_trial, safety_case_current, say

HOME = CACHE / "serve_home"  # the 60,000-person home; other sizes get their own (`home_for`)
TARGET_P99_MS, TARGET_COHORT_S = 50.0, 1.0


def home_for(persons: int) -> Path:
    """The cached home of a size (a quick check never reuses, nor is reused as, the full-size home)."""
    return CACHE / "serve_home" if persons == 60_000 else CACHE / f"serve_home_{persons}"


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
    cfg = default_config("emergency_admission").model_copy(
        update={"grid": TuningGrid(num_leaves=[31], min_child_samples=[100]), "bootstrap_draws": 20}
    )
    train(cfg, settings)
    out = audit_model(settings, "emergency_admission", 1, AuditConfig(bootstrap_draws=50))
    decide(
        settings, "emergency_admission", 1, "approved", "Benchmark", "benchmark", accept_flags=bool(out.result.flags)
    )
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
    """The floor: the API app's own work, called as an ASGI application in this process by a bare driver (no
    sockets, no HTTP parsing, no BentoML, no client library; the body's chunks are counted, not joined), one
    request at a time, with the loaded heap frozen out of the garbage collector as the service's workers do.
    Before issue 20 the floor went through httpx's ASGI transport without the freeze, and its 10,000-person
    worklist was slower than the same request over HTTP: not a floor."""
    import asyncio
    import json as _json
    from urllib.parse import urlencode

    from phm.core.settings import Settings
    from serving.api import create_app
    from serving.state import ServiceState

    app = create_app()
    app.state.phm = ServiceState(Settings(home=HOME))
    rng = np.random.default_rng(0)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def call(method: str, path: str, query: str = "", body: bytes = b"", keep: bool = False):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
            "headers": [
                *raw_headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        sent, status, chunks = False, [0], []

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # a client that stays connected

        async def send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif keep and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        return status[0], b"".join(chunks)

    query = urlencode(cohort_params)

    async def run() -> tuple[dict, dict]:
        async def timed(n: int, one) -> dict:
            latencies, errors = [], 0
            started = time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                errors += 0 if await one() else 1
                latencies.append(time.perf_counter() - t0)
            p50, p95, p99 = percentiles(latencies)
            return {
                "n": n,
                "errors": errors,
                "p50": p50,
                "p95": p95,
                "p99": p99,
                "rps": n / (time.perf_counter() - started),
            }

        async def one() -> bool:
            body = _json.dumps({"person_ids": [ids[rng.integers(len(ids))]]}).encode()
            return (await call("POST", "/score", body=body))[0] == 200

        async def worklist() -> bool:  # as over HTTP: the status is checked, the body not parsed
            return (await call("GET", "/worklist", query))[0] == 200

        status, first = await call("GET", "/worklist", query, keep=True)
        assert status == 200, f"the in-process worklist answered {status}"
        assert len(_json.loads(first)["rows"]) == cohort_params["top"], "the snapshot has fewer people than asked for"
        await timed(20, one)  # warm-up
        gc.collect()
        gc.freeze()  # as the service's workers hide their loaded heap from the collector
        try:
            return await timed(single, one), await timed(cohort, worklist)
        finally:
            gc.unfreeze()

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    import httpx

    global HOME
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--persons", type=int, default=60_000)
    parser.add_argument("--single", type=int, default=400, help="single-score requests per level")
    parser.add_argument("--cohort", type=int, default=20, help="10,000-person worklist requests per level")
    parser.add_argument("--out", type=Path, default=None, help="write the results here instead")
    args = parser.parse_args(argv)
    run = Run("serve_load", args, parser, neutral=("out",), out=args.out)
    HOME = home_for(args.persons)
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
    proc = subprocess.Popen(
        [bentoml_bin, "serve", "serving.service:PHM", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
        with httpx.Client(
            base_url=url,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        ) as client:
            rng = np.random.default_rng(1)
            client.post("/api/score", json={"person_ids": ids[:1]})  # warm-up
            for clients in (1, 8, 32):
                say(f"{clients} client(s)")
                results[("single", clients)] = load(
                    lambda: client.post("/api/score", json={"person_ids": [ids[rng.integers(500)]]}).status_code == 200,
                    args.single,
                    clients,
                )
                results[("cohort", clients)] = load(
                    lambda: client.get("/api/worklist", params=cohort_params).status_code == 200, args.cohort, clients
                )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    http = {
        f"{'score_one' if name == 'single' else 'worklist_10000'}@{clients}": r
        for (name, clients), r in results.items()
    }
    floor = {"score_one": floor_single, "worklist_10000": floor_cohort}
    targets, figures = record(floor, http)
    run.write_results(
        {"people_in_snapshot": len(scores), "floor_in_process": floor, "http": http},
        targets,
        figures,
        note="Latencies in ms; the client threads run on the same cores as the service. Floor: the "
        "API app called in-process as an ASGI application, one request at a time.",
    )


def record(floor: dict, http: dict) -> tuple[list[Target], list[Figure]]:
    """The targets (single score p99 under 50 ms at 8 clients; 10,000-person worklist under 1 s at 1 client; no
    errors) and each level beside the in-process floor."""
    errors = sum(r["errors"] for r in http.values())
    targets = [
        Target("score one person, p99 at 8 clients", http["score_one@8"]["p99"], TARGET_P99_MS, "ms"),
        Target("worklist of 10,000, p50 at 1 client", http["worklist_10000@1"]["p50"] / 1000, TARGET_COHORT_S, "s"),
        Target("errors", errors, 0, "", "=="),
    ]
    figures = []
    for kind, words in (("score_one", "score one person"), ("worklist_10000", "worklist of 10,000")):
        f = floor[kind]
        for clients in (1, 8, 32):
            r = http[f"{kind}@{clients}"]
            figures.append(
                Figure(
                    f"{words}, p50 at {clients} client{'s' if clients > 1 else ''}",
                    r["p50"],
                    "ms",
                    f["p50"],
                    "in-process, 1 client",
                )
            )
            figures.append(Figure(f"{words}, p99 at {clients} client{'s' if clients > 1 else ''}", r["p99"], "ms"))
            figures.append(
                Figure(f"{words}, throughput at {clients} client{'s' if clients > 1 else ''}", r["rps"], "requests/s")
            )
    return targets, figures


if __name__ == "__main__":
    main()
