"""Evaluating a programme from the outcomes coordinators recorded: `enrolled` outcomes stored through the real
operational store (SQLite) for people of a small synthetic ICS with a programme give the same report as the
equivalent CSV of ids and dates, and as the `enrolments.csv` that `phm worklist export-outcomes` writes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from evaluation.programme.enrolment import outcome_enrolment, read_enrolment, synthetic_cutoff, synthetic_enrolment
from features.sources.loader import load
from features.synthetic.config import GeneratorConfig, ProgrammeConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings
from phm.operational import database, outcomes as store
from serving.outcomes import export
from training.programme_job import run_programme_evaluation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ics(tmp_path_factory) -> tuple[Settings, pd.DataFrame, object]:
    root = tmp_path_factory.mktemp("from_outcomes")
    settings = Settings(home=root / "home")
    cfg = GeneratorConfig(
        persons=3_000,
        seed=23,
        programme=ProgrammeConfig(
            start=pd.Timestamp("2023-04-01").date(), capacity=10, uptake=0.7, top_share=0.05, factor=0.5
        ),
    )
    out = generate(cfg, root / "ics").out_dir
    load(settings, out)
    database.upgrade(settings)
    return settings, synthetic_enrolment(settings, out), out


def test_outcomes_give_the_same_report_as_the_equivalent_csv(ics, tmp_path) -> None:
    settings, truth, _out = ics
    assert len(truth) >= 20
    practice = "P0001"
    # each enrolled person is contacted first, enrolled during their enrolment month (at a working-day hour), then
    # a few are discharged and re-enrolled later: only the first enrolment counts
    for i, row in enumerate(truth.itertuples()):
        at = row.enrol_date.to_pydatetime() + timedelta(days=i % 20, hours=9 + i % 8)
        store.record(settings, row.person_id, practice, "contacted", "ann", now=at - timedelta(days=2))
        store.record(settings, row.person_id, practice, "enrolled", "ann", now=at)
        if i % 5 == 0:
            store.record(settings, row.person_id, practice, "other_team", "ann", now=at + timedelta(days=40))
            store.record(settings, row.person_id, practice, "enrolled", "ann", now=at + timedelta(days=120))
    store.record(settings, 1, practice, "declined", "ann", now=datetime(2023, 6, 1))  # not an enrolment
    from_store = outcome_enrolment(settings)
    assert sorted(from_store["person_id"]) == sorted(truth["person_id"])
    csv = tmp_path / "enrolment.csv"
    pd.DataFrame({"person_id": truth["person_id"], "enrol_date": truth["enrol_date"].dt.strftime("%Y-%m-%d")}).to_csv(
        csv, index=False
    )
    exported = export(settings, tmp_path / "export")["enrolments"]
    from_export = read_enrolment(exported)
    assert len(pd.read_csv(exported)) > len(truth)  # re-enrolments are periods of their own there
    reports = [
        run_programme_evaluation(settings, frame, draws=30, seed=3, out_dir=tmp_path / name, log=False).released
        for name, frame in (("store", from_store), ("csv", read_enrolment(csv)), ("export", from_export))
    ]
    did = reports[0]["outcomes"]["admissions"]["difference_in_differences"]
    assert reports[0]["counts"]["matched"] and did["relative"] is not None
    assert reports[0] == reports[1] == reports[2]


def test_no_enrolled_outcome_is_a_clear_error(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    database.upgrade(settings)
    store.record(settings, 5, "P0001", "declined", "ann", now=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="no `enrolled` outcome"):
        outcome_enrolment(settings)


def test_the_export_form_is_read_and_bad_rows_are_named(tmp_path) -> None:
    good = tmp_path / "enrolments.csv"
    good.write_text(
        "person_id,practice_code,enrolled_at,ended_at,ended_by\n"
        "11,A1,2024-03-05T10:00:00,2024-05-01T09:00:00,declined\n12,A1,2024-04-02T16:30:00,,\n"
        "11,A1,2024-07-01T09:00:00,,\n"
    )
    frame = read_enrolment(good)
    assert frame["person_id"].tolist() == [11, 12]
    assert frame["enrol_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-05", "2024-04-02"]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "person_id,practice_code,enrolled_at,ended_at,ended_by\n11,A1,2024-03-05T10:00:00,,\n12,A1,last tuesday,,\n"
    )
    with pytest.raises(ValueError, match="bad.csv: row 3, field enrolled_at"):
        read_enrolment(bad)


def test_the_synthetic_cut_off_rule_is_found_and_a_discontinuity_reported(ics, tmp_path) -> None:
    settings, truth, out = ics
    scores, cutoff, month = synthetic_cutoff(settings, out)
    assert month == pd.Timestamp("2023-04-01")
    # the rule: everyone scoring at least the cut-off that month was offered, and nobody below it
    offers = pd.read_parquet(out / "truth" / "programme_offers.parquet")
    first = offers[pd.to_datetime(offers["offer_date"]) == month]
    above = (scores["score"] >= cutoff).sum()
    assert above == len(first) and (first["score"] >= cutoff).all()
    released = run_programme_evaluation(
        settings, truth, draws=30, seed=3, out_dir=tmp_path, log=False, cutoff=(scores, cutoff, month)
    ).released
    rd = released["discontinuity"]
    assert rd["cutoff"] == cutoff and rd["month"] == "2023-04-01"
    for outcome in ("admissions", "bed_days", "ae"):
        e = rd[outcome]
        # either an estimate with people each side (rounded counts) or a stated reason it cannot be made/shown
        assert ("error" in e) or (e["above"] is not None and e["effect_ci"][0] <= e["effect"] <= e["effect_ci"][1])
    html = (tmp_path / "programme_evaluation.html").read_text()
    assert "Regression discontinuity at the score cut-off" in html
