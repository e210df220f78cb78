"""`phm evaluate programme` end to end on a small synthetic ICS with a programme: generate, load, evaluate from
the synthetic truth and from a CSV of pseudonyms; the report holds aggregates only and is logged to MLflow."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from tests.support.cli import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def programme_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("programme_home")
    data = home / "data" / "synthetic"
    gen = run(
        "data",
        "generate",
        "--persons",
        "5000",
        "--seed",
        "21",
        "--out",
        str(data),
        "--programme-start",
        "2023-04-01",
        "--programme-capacity",
        "12",
        "--programme-factor",
        "0.5",
        home=home,
    )
    assert gen.returncode == 0, gen.stderr
    load = run("data", "load", str(data), home=home)
    assert load.returncode == 0, load.stderr
    return home, data


def test_evaluates_the_synthetic_programme_and_releases_aggregates_only(programme_home) -> None:
    home, data = programme_home
    out = run("evaluate", "programme", "--synthetic", str(data), "--draws", "50", "--name", "test", home=home)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "matched DiD" in out.stdout and "naive before-after" in out.stdout
    assert "Regression discontinuity (admissions):" in out.stdout  # the synthetic programme's cut-off is detected
    report = json.loads((home / "reports" / "programme" / "programme_evaluation.json").read_text())
    counts = report["counts"]
    assert all(v is None or v % 5 == 0 for v in counts.values())  # rounded to 5 (or hidden)
    assert counts["matched"] and counts["matched"] >= 50
    did = report["outcomes"]["admissions"]["difference_in_differences"]
    assert did["relative_ci"][0] < did["relative"] < did["relative_ci"][1]
    assert did["relative"] < 0  # a halved hazard is found as a reduction
    assert report["max_abs_smd_after"] < 0.1
    text = (home / "reports" / "programme" / "programme_evaluation.json").read_text()
    html = (home / "reports" / "programme" / "programme_evaluation.html").read_text()
    ids = [
        str(r[0])
        for r in duckdb.connect(str(home / "warehouse" / "phm.duckdb"), read_only=True)
        .execute("SELECT person_id FROM patients")
        .fetchall()
    ]
    found = set(re.findall(r"\d{9,}", text + html))
    assert not found & set(ids)  # no pseudonym reaches the report
    assert "Balance (standardised mean differences)" in html
    runs = list((home / "mlflow").rglob("programme_evaluation.json"))
    assert runs, "the report is logged to MLflow"


def test_enrolment_csv_errors_name_the_file_row_and_field(programme_home, tmp_path) -> None:
    home, _data = programme_home
    bad = tmp_path / "enrolment.csv"
    bad.write_text("person_id,enrol_date\n123,2023-04-01\n456,01/05/2023\n")
    out = run("evaluate", "programme", "--enrolment", str(bad), home=home)
    assert out.returncode != 0
    assert "enrolment.csv: row 3, field enrol_date" in (out.stdout + out.stderr)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("person_id,enrol_date\n123,2023-04-01\n")
    out = run("evaluate", "programme", "--enrolment", str(unknown), home=home)
    assert out.returncode != 0 and "not in the warehouse" in (out.stdout + out.stderr)


def test_evaluates_from_the_outcomes_coordinators_recorded(programme_home, tmp_path) -> None:
    from datetime import timedelta

    from evaluation.programme.enrolment import synthetic_enrolment
    from phm.core.settings import Settings
    from phm.operational import database, outcomes

    home, data = programme_home
    s = Settings(home=home)
    database.upgrade(s)
    truth = synthetic_enrolment(s, data)
    for row in truth.itertuples():
        outcomes.record(
            s,
            row.person_id,
            "P0001",
            "enrolled",
            "ann",
            now=row.enrol_date.to_pydatetime() + timedelta(days=3, hours=10),
        )
    csv = tmp_path / "enrolment.csv"
    truth.assign(enrol_date=truth["enrol_date"].dt.strftime("%Y-%m-%d")).to_csv(csv, index=False)
    reports = []
    for source in (["--from-outcomes"], ["--enrolment", str(csv)]):
        out = run("evaluate", "programme", *source, "--draws", "30", "--out", str(tmp_path / source[0]), home=home)
        assert out.returncode == 0, out.stderr + out.stdout
        reports.append(json.loads((tmp_path / source[0] / "programme_evaluation.json").read_text()))
    assert reports[0]["counts"]["matched"] and reports[0]["outcomes"] == reports[1]["outcomes"]
