"""The synthetic event stream: the generated ICS's activity after a date, with its share of duplicates, late,
cancelled and malformed messages; stored and folded, it gives back the extract's spells after that date."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from features.events.checks import Known
from features.events.store import EventStore, events_root, ingest
from features.events.stream import event_stream
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import Settings


def test_the_stream_replays_the_activity_after_a_date(tmp_path) -> None:
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate

    data = generate(GeneratorConfig(persons=3000, seed=3), tmp_path / "ics").out_dir
    spells = pd.read_parquet(data / "apc_spells.parquet")
    after = pd.to_datetime(spells.admission_date).max().date() - timedelta(days=20)
    stream = event_stream(data, after, seed=1, duplicates=0.1, cancellations=0.1, late=0.1, malformed=0.05)
    kinds = pd.Series([m.kind for m in stream]).value_counts().to_dict()
    assert set(kinds) == {"event", "duplicate", "cancellation", "late", "malformed"}, kinds
    assert [m.sent for m in stream] == sorted(m.sent for m in stream)
    assert any(a.happened > b.happened for a, b in zip(stream, stream[1:]))  # out of order
    home = Settings(home=tmp_path / "home", pseudonym_key="s" * 32)
    key = Pseudonymiser(b"k" * 32)
    report = ingest(
        home, [("test", m.text) for m in stream], known=Known(), pseudonymiser=key, now=datetime(2100, 1, 1)
    )
    assert report.duplicates >= kinds["duplicate"] and sum(report.quarantined.values()) == kinds["malformed"]
    rows = EventStore(events_root(home)).rows()["apc_spells"]
    want = spells[pd.to_datetime(spells.admission_date).dt.date >= after]
    assert sorted(rows.spell_id) == sorted(want.spell_id)
    got = rows.set_index("spell_id").loc[want.spell_id]
    assert got.admission_method.tolist() == want.admission_method.tolist()
    assert [None if pd.isna(d) else d for d in got.discharge_date] == [
        None if pd.isna(d) else d for d in want.discharge_date
    ]
    assert got.person_id.tolist() == [key.person_id(n) for n in want.nhs_number]


def test_the_stream_of_an_ics_with_malformed_rows(tmp_path) -> None:
    # the demo's ICS has malformed rows (dates such as "31/02/2021"): `phm events synth` on it crashed with a
    # traceback; the rows the loader would quarantine are left out, the rest streamed
    from features.synthetic.config import DefectConfig, GeneratorConfig
    from features.synthetic.generator import generate

    cfg = GeneratorConfig(persons=3000, seed=3, defects=DefectConfig(malformed_share=0.05))
    data = generate(cfg, tmp_path / "ics").out_dir
    spells = pd.read_parquet(data / "apc_spells.parquet")
    admitted = pd.to_datetime(spells.admission_date, errors="coerce", format="ISO8601")
    assert admitted.isna().any() and spells.admission_date.notna().all()  # unreadable dates are there
    after = date(2025, 3, 1)  # the synthetic ICS's data end 2025-03-31
    stream = event_stream(data, after, seed=1)
    assert stream and [m.sent for m in stream] == sorted(m.sent for m in stream)
    ids = {m.text.split("\r")[0].split("|")[9] for m in stream if m.kind != "malformed" and "|ADT^A01" in m.text}
    admissions = {i for i in ids if i.startswith("A-")}  # not a mistaken admission (X-), cancelled
    departure = pd.to_datetime(spells.discharge_date, errors="coerce", format="ISO8601")
    readable = spells[(admitted >= pd.Timestamp(after)) & ~(spells.discharge_date.notna() & departure.isna())]
    assert admissions == {f"A-{s}" for s in readable.spell_id}
