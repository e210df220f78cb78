"""Benchmark: near real time events. A synthetic ICS's last day of hospital activity is taken out of its
warehouse (as a feed runs ahead of the extract) and replayed as an ADT/FHIR event stream (`features.events.stream`:
duplicates, cancellations, late and malformed messages) at `--speed` times real time, through the product's path:
ingest into the event store (parse, check, pseudonymise, quarantine) and the incremental refresh publishing a
delta over the day's snapshot, micro-batch after micro-batch (as `phm events ingest --watch --refresh` runs).

The day's snapshot is that morning's: scored as at the replayed day itself (data before it), so every replayed
event is dated on the snapshot's day and can change a score only as at the next day. Each delta is therefore as
at the day after (`features.events.fold.index_date`), laid over the snapshot's rolled base (everyone re-scored at
that date, `serving.batch.roll`), which is prepared before the replay starts, as the watch loop does while idle,
and timed on its own. The latency below is thus to the worklist showing the score that counts the event.

Measured in the same run:
- latency: from a message's arrival (its scheduled send time) to the worklist showing its person's new score: a
  service worker (`serving.state.ServiceState`, in its own process as a served worker is, with the snapshot loaded
  before the replay) is asked, as each request does, to pick up the reload signal, and answers once its worklist
  holds the new delta with the person's recomputed risk; p50 and p99 of the accepted messages, against the
  target p99 < 60 s;
- ingest rate: `ingest` of the whole day's messages in one batch into a scratch store, beside a floor of parsing
  alone (`features.events.store.parse`, after a warm-up); messages per second;
- memory: this process's peak RSS, and the service worker's.

Prepared once and cached under `benchmarks/.cache/events_<N>/`, in a child process (so generating the ICS does not
count in the peak memory measured): the ICS generated (extracts kept: the stream needs their NHS numbers) and
loaded, the emergency-admission model trained quickly (above 1,000,000 people on its latest training date and
500,000 sampled rows, to stay well inside the machine's memory), audited, approved and promoted.

Usage::

    .venv/bin/python -m benchmarks.events [--persons 3000000] [--speed 100] [--hours 24] [--batch-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta

import numpy as np

from benchmarks.measure import CACHE, Figure, Run, Target, add_trial, say

TARGET_P99_S = 60.0
BIG = 1_000_000  # above this, the champion is trained lean (see `_lean`)


def prepare(persons: int):
    """The cached home: warehouse without its last day of hospital activity, champion, base snapshot."""
    import duckdb

    from evaluation.fairness.config import AuditConfig
    from features.sources.loader import load
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings
    from serving.batch.common import default_date
    from serving.governance.model_audit import audit_model
    from serving.governance.signoff import decide, promote
    from training import tracking
    from training.config import TuningGrid, default_config
    from training.train_validate import run

    home = CACHE / f"events_{persons}"
    settings = Settings(home=home)
    data = home / "ics"
    if (home / "ready.json").exists():
        return settings, data, json.loads((home / "ready.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    say(f"generating {persons:,} people (once)")
    generate(GeneratorConfig(persons=persons, seed=24), data, progress=say)
    load(settings, data, progress=say)
    day = default_date(settings.warehouse_path)
    end = day - timedelta(days=1)
    tracking.configure(settings)
    say("training, auditing, approving and promoting the worklist model (once)")
    cfg = default_config("emergency_admission").model_copy(
        update={"grid": TuningGrid(num_leaves=[15], min_child_samples=[100]), "bootstrap_draws": 20}
    )
    if persons > BIG:  # training memory grows with people x index dates (7.5 GiB at 1,000,000 and three dates):
        cfg = _lean(cfg, settings)  # any approved champion serves here, so one date and sampled rows
    result = run(cfg, settings, progress=say)
    out = audit_model(settings, "emergency_admission", result.version, AuditConfig(bootstrap_draws=20))
    decide(
        settings,
        "emergency_admission",
        result.version,
        "approved",
        "Benchmark",
        "benchmark model",
        accept_flags=bool(out.result.flags),
    )
    promote(settings, "emergency_admission", result.version, by="benchmark")
    con = duckdb.connect(str(settings.warehouse_path))  # the extract lacks the last day: the feed brings it
    con.execute("DELETE FROM apc_spells WHERE admission_date >= ?", [end])
    con.execute("UPDATE apc_spells SET discharge_date = NULL, discharge_method = NULL WHERE discharge_date >= ?", [end])
    con.execute("DELETE FROM ae_attendances WHERE CAST(arrival_time AS DATE) >= ?", [end])
    con.close()
    facts = {"day": str(day), "end": str(end)}
    (home / "ready.json").write_text(json.dumps(facts))
    return settings, data, facts


def _lean(cfg, settings):
    """The training configuration for a large ICS: the latest training date only, at most 500,000 rows."""
    from features.build import data_span_of
    from features.engine import open_engine
    from models import specs
    from training.dates import DataSpan, dates_for_data

    with open_engine(settings, "duckdb") as source:
        span = DataSpan(*data_span_of(source))
    train, validation, _note = dates_for_data(specs.get(cfg.model_name), span)
    return cfg.model_copy(update={"train_dates": train[-1:], "validation_dates": validation, "max_train_rows": 500_000})


def _serve(settings):
    """A service worker in its own process (spawned: it does not inherit this one's memory), loaded now."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_worker, args=(str(settings.home), there), daemon=True)
    child.start()
    assert here.recv() == "ready"
    return here, child


def _worker(home: str, pipe) -> None:
    """Each message is a request: pick up a reload signal (as every request does), then say whether the worklist
    holds `delta` and each (person, risk) of it; None ends, with this process's peak memory."""
    from phm.core.settings import Settings
    from serving.state import ServiceState

    state = ServiceState(Settings(home=home))
    pipe.send("ready")
    while (asked := pipe.recv()) is not None:
        delta, risks = asked
        t0 = time.perf_counter()
        state.maybe_refresh()
        b = state.bundle
        ok = b.meta is not None and b.meta.get("delta_folder") == delta
        ok = ok and all(b.columns["risk"][b.position[p]] == r for p, r in risks)
        pipe.send({"ok": bool(ok), "seconds": time.perf_counter() - t0})
    # VmHWM, not ru_maxrss: a spawned child's ru_maxrss starts from its parent's peak at the fork
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    pipe.send({"peak": int(hwm.split()[1]) * 1024})


def _recomputed(settings, out: dict, people: set[int], most: int = 20) -> list[tuple[int, float]]:
    """Up to `most` (person, new risk) of the batch's people, read back from the published delta."""
    import pandas as pd

    from serving.batch.delta_apply import DELTAS
    from serving.batch.store import current_folder

    path = current_folder(settings) / DELTAS / out["delta"] / "scores.parquet"
    rows = pd.read_parquet(path, columns=["person_id", "risk"])
    rows = rows[rows.person_id.isin(list(people))].head(most)
    return [(int(p), float(r)) for p, r in rows.itertuples(index=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=3_000_000)
    ap.add_argument("--speed", type=float, default=100.0, help="times real time")
    ap.add_argument("--hours", type=float, default=24.0, help="hours of the day replayed (from midnight)")
    ap.add_argument("--batch-seconds", type=float, default=5.0, help="how often the watch loop looks")
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    add_trial(ap)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.prepare_only:
        prepare(args.persons)
        return
    if not (CACHE / f"events_{args.persons}" / "ready.json").exists():
        subprocess.run(
            [sys.executable, "-m", "benchmarks.events", "--persons", str(args.persons), "--prepare-only"], check=True
        )
    record = Run("events", args, ap)
    from datetime import date

    from features.events.store import EventStore, events_root, ingest, known_in, parse, pseudonymiser_for
    from features.events.stream import event_stream
    from phm.core.settings import Settings
    from serving.batch.daily import score_daily
    from serving.batch.delta import refresh_delta
    from serving.batch.roll import prepare_next
    from serving.batch.store import snapshots_root
    from training import tracking

    settings, data, facts = prepare(args.persons)
    day, end = date.fromisoformat(facts["day"]), date.fromisoformat(facts["end"])
    tracking.configure(settings)
    shutil.rmtree(events_root(settings), ignore_errors=True)
    shutil.rmtree(snapshots_root(settings), ignore_errors=True)
    say(f"the morning's snapshot as at {end} (full refresh)")
    t0 = time.perf_counter()
    score_daily(settings, end)
    full_seconds = time.perf_counter() - t0
    say(f"the rolled base: everyone re-scored as at {day} (prepared ahead, as the watch loop does while idle)")
    t0 = time.perf_counter()
    prepare_next(settings)
    roll_seconds = time.perf_counter() - t0
    day_stream = event_stream(data, end, seed=24)
    stream = [
        m for m in day_stream if m.sent < datetime.combine(end, datetime.min.time()) + timedelta(hours=args.hours)
    ]
    say(f"{len(stream):,} messages in the first {args.hours:g} h of {end} ({len(day_stream):,} in the day)")

    # ingest rate beside the parse-only floor, on the whole day's messages, after a warm-up (first-use imports)
    for m in day_stream[:20]:
        parse(m.text)
    t0 = time.perf_counter()
    for m in day_stream:
        parse(m.text)
    parse_rate = len(day_stream) / (time.perf_counter() - t0)
    scratch = Settings(home=CACHE / f"events_{args.persons}_scratch")
    shutil.rmtree(scratch.home, ignore_errors=True)
    (scratch.home / "warehouse").mkdir(parents=True)
    shutil.copy(settings.warehouse_path, scratch.warehouse_path)
    known, pseudo = known_in(settings.warehouse_path), pseudonymiser_for(settings)  # read once, as the watch loop does
    t0 = time.perf_counter()
    ingest(
        scratch,
        [("bench", m.text) for m in day_stream],
        known=known,
        pseudonymiser=pseudo,
        now=datetime.combine(day, datetime.min.time()),
    )
    ingest_rate = len(day_stream) / (time.perf_counter() - t0)
    shutil.rmtree(scratch.home, ignore_errors=True)

    # the replay: arrivals scheduled at `speed` x real time; the watch loop ingests what has arrived, refreshes
    origin = datetime.combine(end, datetime.min.time())
    due = np.array([(m.sent - origin).total_seconds() / args.speed for m in stream])
    worker, child = _serve(settings)
    start, done, latencies, refreshes, reloads = time.perf_counter(), 0, [], [], []
    arrival_clock = datetime.combine(day, datetime.min.time())  # no message is "from the future" when checked
    while done < len(stream):
        now = time.perf_counter() - start
        ready = int(np.searchsorted(due, now, side="right"))
        if ready == done:
            time.sleep(min(args.batch_seconds, max(0.0, due[done] - now)))
            continue
        batch = stream[done:ready]
        report = ingest(
            settings, [("bench", m.text) for m in batch], known=known, pseudonymiser=pseudo, now=arrival_clock
        )
        out = refresh_delta(settings, today=end) if report.accepted else None
        if out is not None:
            assert out["index_date"] == str(day), out  # the events' own day counts: scores as at the day after
            worker.send(
                (out["delta"], _recomputed(settings, out, report.people))
            )  # a request reaching the served worker
            shown = worker.recv()
            assert shown["ok"], shown  # its worklist holds this delta and the person's new risk
            visible = time.perf_counter() - start
            reloads.append(shown["seconds"])
            refreshes.append({"messages": len(batch), "people": out["people"], "seconds": out["seconds"]})
            latencies += [
                visible - due[i]
                for i in range(done, ready)  # what the worklist shows: not resends
                if stream[i].kind in ("event", "late", "cancellation")
            ]
        done = ready
        elapsed = time.perf_counter() - start - now
        if elapsed < args.batch_seconds:
            time.sleep(args.batch_seconds - elapsed)
    worker.send(None)
    worker_peak = worker.recv()["peak"]
    child.join()
    lat = np.array(latencies)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    store = EventStore(events_root(settings))
    stored, quarantined = len(store.events()), len(store.quarantined())
    kinds: dict[str, int] = {}
    for m in stream:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    targets = [Target("arrival to worklist, p99", p99, TARGET_P99_S, "s")]
    figures = [
        Figure("arrival to worklist, p50", p50, "s"),
        Figure("ingest rate: time per message", 1 / ingest_rate, "s", 1 / parse_rate, "parsing alone"),
        Figure("median delta refresh", float(np.median([r["seconds"] for r in refreshes])), "s"),
        Figure("median service reload for a delta", float(np.median(reloads)), "s"),
        Figure("full daily refresh of the same home", full_seconds, "s"),
        Figure("rolled base: everyone re-scored at the next day, once (ahead of the replay)", roll_seconds, "s"),
        Figure("peak memory", peak / 1024**3, "GiB"),
        Figure("peak memory of the service worker", worker_peak / 1024**3, "GiB"),
    ]
    print(f"messages {len(stream):,} ({kinds}); stored {stored:,}, quarantined {quarantined:,}")
    record.write_results(
        {
            "replayed_day": str(end),
            "index_date": str(day),
            "stream": {
                "messages": len(stream),
                "messages_in_day": len(day_stream),
                "by_kind": kinds,
                "stored": stored,
                "quarantined": quarantined,
            },
            "latency_s": {
                "p50": round(p50, 2),
                "p99": round(p99, 2),
                "max": round(float(lat.max()), 2),
                "measured": int(lat.size),
            },
            "refreshes": {
                "count": len(refreshes),
                "max_s": round(max(r["seconds"] for r in refreshes), 2),
                "max_people": max(r["people"] for r in refreshes),
            },
            "ingest_per_s": round(ingest_rate),
            "parse_floor_per_s": round(parse_rate),
        },
        targets,
        figures,
    )


if __name__ == "__main__":
    main()
