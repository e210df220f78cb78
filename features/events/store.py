"""The event store: append-only Parquet batches beside the warehouse (`<warehouse folder>/events/`), never the
warehouse itself, so the service and the daily job keep reading while events arrive.

`ingest` parses, checks and pseudonymises a batch of messages under an OS lock (one ingest at a time; the
HTTP endpoint and the drop folder may both run), drops messages whose id is already stored (idempotent:
a resent message changes nothing) and writes two files, each written aside and renamed into place: the
accepted events and the quarantined ones. Quarantine keeps the message id, rule, field and a SHA-256 of the
text (to find the sender's copy), never the text: it may carry NHS numbers and names."""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.events.checks import Known, accept
from features.events.fhir import parse_fhir
from features.events.fold import FIELDS, fold
from features.events.hl7v2 import looks_like_hl7, parse_hl7
from features.events.model import Event, MessageError, Parsed
from features.sources.pseudonymise import Pseudonymiser, installation_key
from phm.core.settings import Settings

EVENT_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("received", pa.timestamp("us")),
        ("seq", pa.int64()),
        ("origin", pa.string()),
        ("format", pa.string()),
        ("trigger", pa.string()),
        ("setting", pa.string()),
        ("occurred", pa.timestamp("us")),
        ("person_id", pa.int64()),
        ("encounter_id", pa.string()),
        ("start", pa.timestamp("us")),
        ("end", pa.timestamp("us")),
        ("admission_method", pa.string()),
        ("primary_diagnosis", pa.string()),
        ("site_code", pa.string()),
        ("discharge_method", pa.string()),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("received", pa.timestamp("us")),
        ("origin", pa.string()),
        ("reason", pa.string()),
        ("field", pa.string()),
        ("detail", pa.string()),
        ("sha256", pa.string()),
    ]
)
EVENT_COLUMNS = EVENT_SCHEMA.names


def events_root(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "events"


@dataclass
class IngestReport:
    """What one ingest did: counts, quarantine reasons, and the people whose events changed (pseudonyms)."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: Counter = field(default_factory=Counter)
    people: set[int] = field(default_factory=set, repr=False)
    arrived: datetime | None = None

    def to_json(self) -> dict:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": dict(sorted(self.quarantined.items())),
            "people_affected": len(self.people),
        }


class EventStore:
    """The events folder: `accepted/` and `quarantine/` batches, `absorbed/` (ids of messages the warehouse has
    absorbed) and the lock."""

    def __init__(self, root: Path):
        self.root = root
        self.accepted, self.quarantine, self.absorbed = root / "accepted", root / "quarantine", root / "absorbed"

    def events(self) -> pd.DataFrame:
        """Every accepted event (first copy of each message id), in arrival order."""
        with self.locked(shared=True):
            return self.events_in(self.batches())

    def batches(self) -> list[Path]:
        return sorted(self.accepted.glob("*.parquet")) if self.accepted.exists() else []

    def events_in(self, files: list[Path]) -> pd.DataFrame:
        """The events of these batch files (read under the lock: see `locked`)."""
        if not files:
            return EVENT_SCHEMA.empty_table().to_pandas()
        frame = pa.concat_tables([pq.read_table(f, schema=EVENT_SCHEMA) for f in files]).to_pandas()
        frame = frame.sort_values(["received", "seq"], kind="stable")
        return frame.drop_duplicates("message_id", keep="first").reset_index(drop=True)

    def quarantined(self) -> pd.DataFrame:
        with self.locked(shared=True):
            files = sorted(self.quarantine.glob("*.parquet")) if self.quarantine.exists() else []
            if not files:
                return QUARANTINE_SCHEMA.empty_table().to_pandas()
            return pa.concat_tables([pq.read_table(f, schema=QUARANTINE_SCHEMA) for f in files]).to_pandas()

    def message_ids(self) -> set[str]:
        """Ids of the stored messages and of those already absorbed into the warehouse and pruned (a resent
        message stays a duplicate after its first copy was absorbed). Read under the lock."""
        files = self.batches() + (sorted(self.absorbed.glob("*.parquet")) if self.absorbed.exists() else [])
        return (
            set()
            if not files
            else set(pa.concat_tables([pq.read_table(f, columns=["message_id"]) for f in files]).column(0).to_pylist())
        )

    def rows(self) -> dict[str, pd.DataFrame]:
        """The encounters the stored events describe, as warehouse rows (see `fold`)."""
        return fold(self.events())

    @contextmanager
    def locked(self, shared: bool = False):
        """The store's lock: exclusive for a writer (an ingest, a prune), shared for a reader, so no reader ever
        sees a prune half done (a batch gone between listing and reading it). Not re-entrant."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".ingest.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write(self, folder: Path, table: pa.Table, stamp: str) -> None:
        """One batch file, written aside, flushed to disk and renamed into place: all of it or none. A write that
        fails (a full disk, say) removes its part-file and raises `StoreFullError`, naming the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stamp}.parquet.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, folder / f"{stamp}.parquet")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreFullError(
                f"{folder}: the event store could not be written ({exc.strerror or exc}); "
                "nothing of this batch was stored, and nothing stored before was changed"
            ) from exc

    def prune(self, files: list[Path], keep: pd.DataFrame, absorbed: pd.Series) -> None:
        """After the warehouse absorbed the events of `files`: remember their message ids (`absorbed/`), write
        `keep` (those events still needed: see `serving.batch.absorb`) as one batch, then remove `files`; under
        the exclusive lock, each step atomic, so a crash part-way leaves copies (deduplicated by message id),
        never a gap."""
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}_{uuid.uuid4().hex[:12]}"
        with self.locked():
            if len(absorbed):
                self.write(self.absorbed, pa.table({"message_id": pa.array(absorbed.astype(str).tolist())}), stamp)
            if len(keep):
                self.write(
                    self.accepted,
                    pa.Table.from_pandas(keep[EVENT_COLUMNS], schema=EVENT_SCHEMA, preserve_index=False),
                    stamp,
                )
            for f in files:
                f.unlink(missing_ok=True)


class StoreFullError(OSError):
    """The event store could not be written (disk full, quota, read-only): the batch was not stored, or (`stored`
    above 0) only its accepted events were, not its quarantine."""

    stored: int = 0


def known_in(warehouse: Path) -> Known:
    """The warehouse's sites and people, for the reference and linkage checks (nothing checked without one)."""
    if not warehouse.exists():
        return Known()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        sites = {r[0] for r in con.execute("SELECT site_code FROM sites").fetchall()}
        people = set(con.execute("SELECT person_id FROM patients").fetchnumpy()["person_id"].tolist())
    finally:
        con.close()
    return Known(sites=sites, people=people)


def pseudonymiser_for(settings: Settings) -> Pseudonymiser:
    """The warehouse's key: the same pseudonyms as its extracts (the demo key only for a synthetic warehouse)."""
    return Pseudonymiser(installation_key(settings))


def parse(text: str) -> list[Parsed | MessageError]:
    """One message (HL7 v2 text, or FHIR JSON: an Encounter or a Bundle) -> one result per event in it."""
    if looks_like_hl7(text):
        try:
            return [parse_hl7(text)]
        except MessageError as exc:
            return [exc]
    if text.lstrip().startswith("{"):
        return parse_fhir(text)
    return [MessageError("unparseable", detail="neither HL7 v2 (MSH) nor FHIR JSON")]


def ingest(
    settings: Settings,
    messages: Iterable[tuple[str, str]],
    known: Known | None = None,
    pseudonymiser: Pseudonymiser | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Store `(origin, text)` messages: accepted events, duplicates skipped, the rest quarantined with a reason."""
    store = EventStore(events_root(settings))
    pseudo = pseudonymiser or pseudonymiser_for(settings)
    known = known if known is not None else known_in(settings.warehouse_path)
    report = IngestReport()
    with store.locked():
        received = now or datetime.now(timezone.utc).replace(tzinfo=None)
        report.arrived = received
        seen = store.message_ids()
        kept: list[tuple[str, Event]] = []
        rejected: list[dict] = []
        for origin, text in messages:
            digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
            for result in parse(text):
                report.received += 1
                try:
                    if isinstance(result, MessageError):
                        raise result
                    if result.message_id in seen:
                        report.duplicates += 1
                        continue
                    event = accept(result, pseudo, received, known)
                except MessageError as exc:
                    report.quarantined[exc.reason] += 1
                    rejected.append(
                        {
                            "message_id": exc.message_id,
                            "received": received,
                            "origin": origin,
                            "reason": exc.reason,
                            "field": exc.field,
                            "detail": exc.detail,
                            "sha256": digest,
                        }
                    )
                    continue
                seen.add(event.message_id)
                kept.append((origin, event))
                report.people.add(event.person_id)
        report.accepted = len(kept)
        stamp = f"{received:%Y%m%dT%H%M%S%f}_{uuid.uuid4().hex[:12]}"  # unique, in arrival order
        if kept:
            store.write(
                store.accepted,
                pa.Table.from_pylist(
                    [_row(e, origin, received, i) for i, (origin, e) in enumerate(kept)], schema=EVENT_SCHEMA
                ),
                stamp,
            )
        if rejected:
            try:
                store.write(store.quarantine, pa.Table.from_pylist(rejected, schema=QUARANTINE_SCHEMA), stamp)
            except StoreFullError as exc:
                if not kept:
                    raise
                partial = StoreFullError(
                    f"{store.quarantine}: the quarantine could not be written ({exc.__cause__ or exc}); the "
                    f"{len(kept):,} accepted events of this batch were stored but its {len(rejected):,} quarantined "
                    "messages were not: send the batch again once there is space (the stored ones are then "
                    "duplicates)"
                )
                partial.stored = len(kept)
                raise partial from exc
    return report


def _row(e: Event, origin: str, received: datetime, seq: int) -> dict:
    return {
        "message_id": e.message_id,
        "received": received,
        "seq": seq,
        "origin": origin,
        "format": e.format,
        "trigger": e.trigger,
        "setting": e.setting,
        "occurred": e.occurred,
        "person_id": e.person_id,
        "encounter_id": e.encounter_id,
        **{f: getattr(e.fields, f) for f in FIELDS},
    }
