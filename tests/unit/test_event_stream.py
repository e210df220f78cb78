"""The synthetic event stream: the generated ICS's activity after a date, with its share of duplicates, late,
cancelled and malformed messages; stored and folded, it gives back the extract's spells after that date."""

from __future__ import annotations

from datetime import datetime, timedelta

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
