"""`phm events`: admission, discharge and A&E events from a drop folder into the event store beside the
warehouse, and what the store holds (counts and quarantine reasons; never a message's content)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from phm.cli.common import console, err, fail, settings

app = typer.Typer(
    help="Near real time events: ingest a drop folder, refresh the worklist, absorb into the "
    "warehouse, show the event store.",
    no_args_is_help=True,
)


@app.command("ingest")
def ingest_cmd(
    folder: Annotated[Path, typer.Argument(help="Drop folder of *.hl7 (ADT), *.json (FHIR) and *.ndjson files.")],
    watch: Annotated[bool, typer.Option(help="Keep watching the folder (Ctrl-C stops).")] = False,
    every: Annotated[float, typer.Option(help="Seconds between looks when watching.", min=0.1)] = 2.0,
    keep: Annotated[bool, typer.Option(help="Leave read files in place (default: move them to done/).")] = False,
    max_mb: Annotated[
        float,
        typer.Option(
            help="Largest file read, in megabytes (files are read whole); larger ones go to refused/.", min=0.001
        ),
    ] = 50.0,
    refresh: Annotated[
        bool,
        typer.Option(
            help="After each pass that stored events (and, when watching, after "
            "events posted to the API), publish the worklist delta."
        ),
    ] = False,
) -> None:
    """Store the folder's messages: accepted (pseudonymised), duplicates skipped, the rest quarantined with a
    reason. Exit code 1 if any message was quarantined (in a single pass)."""
    from features.events import drop
    from features.events.store import StoreFullError, ingest, known_in, pseudonymiser_for
    from features.sources.pseudonymise import MissingKeyError

    s = settings()
    if not folder.is_dir():
        raise fail(f"{folder}: not a folder")
    done = folder / drop.DONE
    if not keep and (done.exists() or done.is_symlink()) and not done.is_dir():
        raise fail(f"{done}: not a folder (read files are moved there); move it away, or read with --keep")
    try:
        pseudo = pseudonymiser_for(s)
    except MissingKeyError as exc:
        raise fail(str(exc)) from exc
    known = known_in(s.warehouse_path)
    if known.people is None:
        console.print("[yellow]No warehouse yet: sites and people are not checked.[/]")
    quarantined = 0
    while True:
        files = drop.pending(folder)
        big = drop.too_large(files, max_mb)
        if big:
            files = [f for f in files if f not in big]
            where = "left in place (--keep)" if keep else f"moved to {folder / drop.REFUSED}"
            for path in big:
                err.print(
                    f"[yellow]Warning:[/] {escape(path.name)}: larger than {max_mb:g} MB, so not read ({escape(where)}); "
                    "ask the sender to split it"
                )
            if not keep:
                drop.mark_done(folder, big, into=drop.REFUSED)
        if files:
            try:
                report = ingest(s, drop.read(files), known=known, pseudonymiser=pseudo)
            except StoreFullError as exc:  # the files stay in the drop folder for the next pass
                raise fail(str(exc)) from exc
            if not keep:
                drop.mark_done(folder, files)
            quarantined += sum(report.quarantined.values())
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.quarantined.items())) or "none"
            console.print(
                f"{len(files)} file(s), {report.received} message(s): {report.accepted} stored, "
                f"{report.duplicates} duplicate(s), quarantined: {reasons}; "
                f"{len(report.people)} people affected."
            )
        elif not watch:
            console.print("Nothing to read.")
        if refresh and _new_events(s):
            _refresh(s)
        elif refresh and watch:  # idle: have tomorrow's base ready before today's first event needs it
            _prepare(s)
        if not watch:
            break
        time.sleep(every)
    if quarantined:
        raise typer.Exit(1)


_seen: dict[str, int] = {}


def _new_events(s) -> bool:
    """Whether the store has grown since the last refresh of this process (files or API posts)."""
    from features.events.store import EventStore, events_root

    store = EventStore(events_root(s))
    count = len(list(store.accepted.glob("*.parquet"))) if store.accepted.exists() else 0
    grown = count != _seen.get("batches", 0)
    _seen["batches"] = count
    return grown


def _refresh(s) -> None:
    from serving.batch.common import SnapshotError
    from serving.batch.delta import refresh_delta

    try:
        out = refresh_delta(s)
    except SnapshotError as exc:
        raise fail(str(exc)) from exc
    held = f", {out['held_out']:,} held out (the approved holdout)" if out.get("held_out") else ""
    console.print(
        f"Worklist delta {out['delta']} over {out['snapshot']}: {out['people']:,} people recomputed "
        f"from {out['events']:,} events, scores as at {out['index_date']}{held}, in {out['seconds']} s."
    )


def _prepare(s) -> None:
    """The next day's base of the live snapshot (tried once per snapshot by this process)."""
    from serving.batch.common import SnapshotError
    from serving.batch.roll import prepare_next
    from serving.batch.store import current_folder

    live = str(current_folder(s))
    if _tried.get("prepared") == live:
        return
    _tried["prepared"] = live
    try:
        prepare_next(s, progress=lambda m: console.print(f"[dim]{m}[/]"))
    except SnapshotError as exc:
        console.print(f"[yellow]Not preparing the next day's base: {exc}[/]")


_tried: dict[str, str] = {}


@app.command("refresh")
def refresh_cmd(
    ahead: Annotated[
        bool,
        typer.Option(
            help="Also re-score everyone at the day after the snapshot's, ahead of the "
            "first event dated on the snapshot's day (which needs that base)."
        ),
    ] = False,
) -> None:
    """Recompute the people the stored events concern and publish the delta over the live snapshot (the service
    picks it up at once). Run it after `phm score daily` too: a new snapshot starts without a delta. The delta is
    as at the day after its latest event (never before the snapshot's day); when that is later than the snapshot's
    day, everyone is re-scored at it once (kept with the snapshot), so the worklist ranks scores of one date."""
    s = settings()
    if ahead:
        _prepare(s)
    _refresh(s)


@app.command("absorb")
def absorb_cmd() -> None:
    """Absorb the stored events into the warehouse (as the next full load would), score it with the daily job at
    the events' index date, publish that snapshot, then prune the absorbed events from the store (keeping those of
    encounters still open or touched on the snapshot's last day) and lay what is left over the new snapshot."""
    from serving.batch.absorb import absorb_events
    from serving.batch.common import SnapshotError

    try:
        out = absorb_events(settings(), progress=lambda m: console.print(f"[dim]{m}[/]"))
    except SnapshotError as exc:
        raise fail(str(exc)) from exc
    if not out["events"]:
        console.print("No stored events to absorb.")
        return
    console.print(
        f"Absorbed {out['events']:,} events; snapshot of {out['snapshot']} "
        f"{'published' if out['published'] else 'written (not published)'}; pruned {out['pruned']:,}, "
        f"kept {out['kept']:,} (encounters still open or touched on its last day) in {out['seconds']} s."
    )
    if out.get("delta_refused"):
        console.print(f"[yellow]The kept events are not on the worklist yet: {out['delta_refused']}[/]")


@app.command("synth")
def synth_cmd(
    extracts: Annotated[Path, typer.Argument(help="A generated synthetic ICS folder (`phm data generate`).")],
    after: Annotated[str, typer.Option(help="First day of activity to emit (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option(help="Drop folder to write the messages to.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write the synthetic ICS's activity on and after a date as ADT/FHIR messages (with duplicates,
    cancellations, late and malformed ones), one file each in send order, for `phm events ingest`."""
    from datetime import date

    from features.events.stream import event_stream

    try:
        first = date.fromisoformat(after)
    except ValueError as exc:
        raise fail(f"--after {after!r} is not a date (YYYY-MM-DD)") from exc
    if not (extracts / "_synthetic.json").exists():
        raise fail(f"{extracts}: not a generated synthetic ICS (no _synthetic.json)")
    stream = event_stream(extracts, first, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(stream):
        (out / f"{i:07d}{'.json' if m.text.startswith('{') else '.hl7'}").write_text(m.text)
    console.print(f"Wrote {len(stream):,} messages to {out}.")


@app.command("status")
def status_cmd() -> None:
    """How many events the store holds, by kind, and the quarantine by reason."""
    from features.events.store import EventStore, events_root

    store = EventStore(events_root(settings()))
    events, quarantine = store.events(), store.quarantined()
    kinds = events.groupby(["setting", "trigger"]).size().to_dict() if len(events) else {}
    console.print(
        f"{len(events)} event(s) for {events.person_id.nunique() if len(events) else 0} people in {store.root}"
    )
    for (setting, trigger), n in sorted(kinds.items()):
        console.print(f"  {setting} {trigger}: {n}")
    console.print(f"{len(quarantine)} quarantined")
    for reason, n in sorted(quarantine.groupby("reason").size().to_dict().items() if len(quarantine) else []):
        console.print(f"  {reason}: {n}")
