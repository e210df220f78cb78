"""Synthea CSV exports: a hand-written export maps with exact counts and codes (no prescription invented after a
death or the export's end), missing files and foreign folders get clear errors, every quarantined row names the
Synthea file and row it came from, and a Synthea-layout export of a generated ICS loads, trains, audits, forecasts
and scores end to end through the real `phm` command."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.sources.formats import FormatError, convert, detect
from support.synthea_layout import write_synthea
from support.cli import run as phm

EXPORT = {
    "patients.csv": """\
Id,BIRTHDATE,DEATHDATE,SSN,FIRST,LAST,RACE,ETHNICITY,GENDER,CITY,COUNTY,INCOME
p1,1940-03-12,,999-1,Ann,Alpha,white,nonhispanic,F,Leeds,West,20000
p2,1955-07-01,2024-06-01,999-2,Bob,Beta,black,nonhispanic,M,Leeds,West,35000
p3,1980-11-30,,999-3,Cy,Gamma,asian,hispanic,M,York,North,80000
p4,2001-01-15,,999-4,Di,Delta,,nonhispanic,F,York,North,
p5,1935-02-02,2022-04-15,999-5,Ed,Epsilon,white,nonhispanic,M,York,North,
""",
    "organizations.csv": """\
Id,NAME,CITY
o1,Alpha Surgery,Leeds
o2,York Medical,York
h1,General Hospital,Leeds
""",
    "encounters.csv": """\
Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,REASONCODE
e1,2022-01-10T09:00:00Z,2022-01-10T09:20:00Z,p1,o1,x,x,wellness,162673000,General examination,
e2,2022-03-01T22:00:00Z,2022-03-02T03:00:00Z,p1,h1,x,x,emergency,50849002,Emergency room admission,
e3,2022-03-02T04:00:00Z,2022-03-06T10:00:00Z,p1,h1,x,x,inpatient,32485007,Hospital admission,185086009
e4,2022-05-01T10:00:00Z,2022-05-03T10:00:00Z,p2,h1,x,x,inpatient,183452005,Emergency hospital admission,88805009
e5,2022-06-01T10:00:00Z,2022-06-04T10:00:00Z,p3,h1,x,x,inpatient,32485007,Hospital admission,
e6,2022-07-01T10:00:00Z,2022-07-01T11:00:00Z,p3,o2,x,x,ambulatory,185345009,Encounter for symptom,
e7,2022-08-01T10:00:00Z,2022-08-01T11:00:00Z,p2,o1,x,x,outpatient,185347001,Encounter for problem,
e8,2022-09-01T10:00:00Z,2022-09-01T11:00:00Z,p2,o1,x,x,home,Home visit,Home,
e9,2022-09-05T10:00:00Z,2022-09-05T11:00:00Z,p9,o1,x,x,wellness,162673000,General examination,
e10,2022-10-01T10:00:00Z,2022-10-01T12:00:00Z,p4,h1,x,x,urgentcare,702927004,Urgent care clinic,
e11,2022-10-02T10:00:00Z,2022-10-02T12:00:00Z,p4,o2,x,x,teleport,1,Unknown class,
""",
    "conditions.csv": """\
START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION
2015-01-01,,p1,e1,185086009,Chronic obstructive bronchitis (disorder)
2010-05-05,,p2,e4,59621000,Essential hypertension (disorder)
2012-02-02,,p3,e6,444814009,Viral sinusitis (disorder)
2012-02-03,,p3,e6,not-a-code,Bad code
2012-02-04,,p9,e9,59621000,Essential hypertension (disorder)
""",
    "medications.csv": """\
START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION
2022-01-10T09:00:00Z,2022-03-10T09:00:00Z,p1,x,e1,745679,200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler
2022-03-06T09:00:00Z,2022-03-06T09:00:00Z,p1,x,e3,312617,predniSONE 5 MG Oral Tablet
2022-05-03T09:00:00Z,2022-05-03T09:00:00Z,p2,x,e4,311995,NITROFURANTOIN 5 MG/ML Oral Suspension
2022-01-01T09:00:00Z,,p5,x,,314231,Simvastatin 10 MG Oral Tablet
2022-05-01T09:00:00Z,2022-05-01T09:00:00Z,p5,x,,197361,Amlodipine 5 MG Oral Tablet
""",
    "observations.csv": """\
DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE
2022-01-10T09:00:00Z,p1,e1,vital-signs,8480-6,Systolic Blood Pressure,142,mm[Hg],numeric
2022-01-10T09:00:00Z,p1,e1,vital-signs,39156-5,Body Mass Index,27.1,kg/m2,numeric
2022-01-10T09:00:00Z,p1,e1,survey,72166-2,Tobacco smoking status,Current every day smoker,,text
2022-01-10T09:00:00Z,p1,e1,vital-signs,8302-2,Body Height,160,cm,numeric
""",
}


def write_export(folder: Path, skip: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in EXPORT.items():
        if name not in skip:
            (folder / name).write_text(text)
    return folder


def test_hand_written_export_maps_with_exact_counts_and_codes(tmp_path: Path) -> None:
    src = write_export(tmp_path / "synthea")
    assert detect(src) == "synthea"
    report = convert(src, "synthea", tmp_path / "staged")
    assert report.files_read == {
        "patients.csv": 5,
        "encounters.csv": 11,
        "organizations.csv": 3,
        "conditions.csv": 5,
        "medications.csv": 5,
        "observations.csv": 4,
    }
    assert report.missing_optional_files == ["procedures"]  # reported, not an error
    assert report.rows_written == {
        "practices": 3,
        "sites": 1,
        "imd": 10,
        "patients": 5,
        "ae_attendances": 2,
        "apc_spells": 3,
        "op_appointments": 1,
        "community_contacts": 1,
        "social_care": 0,
        "gp_events": 8,
        "prescriptions": 9,
    }
    assert report.rejected == {
        "encounters.csv: unknown_person (PATIENT)": 1,
        "encounters.csv: unmapped_code (ENCOUNTERCLASS)": 1,
        "conditions.csv: unknown_person (PATIENT)": 1,
        "conditions.csv: unmapped_code (CODE)": 1,
        "medications.csv: unmapped_code (DESCRIPTION)": 1,
    }
    staged = lambda name: pd.read_parquet(tmp_path / "staged" / f"{name}.parquet")  # noqa: E731
    patients = staged("patients")
    assert patients.ethnic_category.tolist() == ["C", "P", "L", "Z", "C"]  # white, black, asian, absent, white
    assert patients.sex.tolist() == ["F", "M", "M", "F", "M"] and patients.date_of_death.notna().sum() == 2
    assert patients.practice_code.tolist() == ["Y00001", "Y99999", "Y00002", "Y99999", "Y99999"]
    # income deciles within the export (lowest income = most deprived); no income, no decile
    assert patients.lsoa11.fillna("").tolist() == ["E01990004", "E01990007", "E01990010", "", ""]
    # every staged row names its Synthea file and row
    assert patients[["_source_file", "_source_row"]].values.tolist() == [["patients.csv", i] for i in range(1, 6)]
    spells = staged("apc_spells").set_index("spell_id")
    assert spells.admission_method.to_dict() == {
        "e3": "21",
        "e4": "21",
        "e5": "11",
    }  # after A&E, coded emergency, elective
    assert spells.primary_diagnosis.to_dict()["e3"] == "J441" and spells.primary_diagnosis.to_dict()["e4"] == "I500"
    events = staged("gp_events")
    codes = set(events.code)
    assert {"13645005", "38341003", "444814009"} <= codes  # COPD and hypertension mapped; other SNOMED kept
    assert {"271649006", "60621009", "77176002"} <= codes  # systolic BP, BMI, current smoker
    rx = staged("prescriptions")
    # salbutamol every 28 days to STOP; simvastatin every 28 days until p5 died (2022-04-15), not to the export's end
    assert rx.bnf_code.value_counts().to_dict() == {"0301011R0": 3, "0212000Y0": 4, "0603020T0": 1, "0206020A0": 1}
    assert staged("sites").site_code.tolist() == ["RSA00"]
    assert staged("community_contacts").service.tolist() == ["district_nursing"]


def test_no_prescription_is_invented_after_death_or_the_export_end(tmp_path: Path) -> None:
    src = write_export(tmp_path / "synthea")
    report = convert(src, "synthea", tmp_path / "staged")
    rx = pd.read_parquet(tmp_path / "staged" / "prescriptions.parquet")
    simvastatin = rx[rx.bnf_code == "0212000Y0"]  # medications.csv row 4: START 2022-01-01, no STOP, died 2022-04-15
    assert simvastatin.issue_date.tolist() == ["2022-01-01", "2022-01-29", "2022-02-26", "2022-03-26"]
    assert simvastatin[["_source_file", "_source_row"]].drop_duplicates().values.tolist() == [["medications.csv", 4]]
    # the only issue after death is the one the source itself records (row 5 starts after DEATHDATE)
    late = rx[rx.issue_date > "2022-04-15"]
    assert late[["issue_date", "_source_file", "_source_row"]].values.tolist() == [["2022-05-01", "medications.csv", 5]]
    assert rx.issue_date.max() <= "2022-10-02"  # nothing after the export's end (its last encounter)
    assert any("1 medicine(s) stopped at the patient's death" in n for n in report.notes)


def test_quarantine_names_the_synthea_file_and_row(tmp_path: Path) -> None:
    """Rows the loader rejects after mapping point at the Synthea row to fix, never the staged file; nothing the
    mapping invented is quarantined (one after-death row: the source's own)."""
    src = write_export(tmp_path / "synthea")
    with (src / "encounters.csv").open("a") as fh:  # row 12: an encounter dated after the load (future_date)
        fh.write("e12,2030-01-10T09:00:00Z,2030-01-10T09:20:00Z,p1,o1,x,x,wellness,162673000,General examination,\n")
    home = tmp_path / "home"
    out = phm("data", "load", str(src), "--as-of", "2025-01-01", home=home)
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(home / "warehouse" / "phm.duckdb"), read_only=True)
    try:
        rows = con.execute("""SELECT source_table, source_file, source_row, rule, column_name FROM quarantine
                              WHERE source_table IN (SELECT source_table FROM load_manifest) ORDER BY ALL""").fetchall()
        files = {r[0] for r in con.execute("SELECT DISTINCT source_file FROM quarantine").fetchall()}
    finally:
        con.close()
    assert rows == [
        ("gp_events", "encounters.csv", 12, "future_date", "event_date"),
        ("prescriptions", "medications.csv", 5, "after_death", "issue_date"),
    ]
    assert files <= {"encounters.csv", "conditions.csv", "medications.csv"}  # never a staged .parquet file


def test_missing_files_and_foreign_folders_are_clear_errors(tmp_path: Path) -> None:
    src = write_export(tmp_path / "no_encounters", skip=("encounters.csv",))
    with pytest.raises(FormatError, match="encounters.csv"):
        convert(src, "synthea", tmp_path / "staged")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match="not a folder of PHM extracts .* Synthea .* OMOP"):
        detect(foreign)
    out = phm("data", "load", str(foreign), home=tmp_path / "home", env={"COLUMNS": "1000"})  # no wrapping
    assert out.returncode == 2 and "Synthea CSV export" in out.stderr
    out = phm("data", "load", str(src), "--format", "synthea", home=tmp_path / "home")
    assert out.returncode == 2 and "missing required file encounters.csv" in out.stderr


def test_cli_load_keeps_mapping_rejections_in_quarantine(tmp_path: Path) -> None:
    src = write_export(tmp_path / "synthea")
    home = tmp_path / "home"
    out = phm("data", "load", str(src), "--as-of", "2025-01-01", home=home)  # format detected
    assert out.returncode == 0, out.stderr
    assert "Mapped synthea folder" in out.stdout and "no LSOA" in out.stdout
    con = duckdb.connect(str(home / "warehouse" / "phm.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT source_format, synthetic FROM load_info").fetchone() == ("synthea", True)
        rows = con.execute("SELECT source_file, source_row, rule, column_name FROM quarantine ORDER BY ALL").fetchall()
        counts = dict(
            con.execute(
                "SELECT 'patients', count(*) FROM patients UNION ALL "
                "SELECT 'apc', count(*) FROM apc_spells UNION ALL "
                "SELECT 'gp', count(*) FROM gp_events"
            ).fetchall()
        )
    finally:
        con.close()
    assert rows == [
        ("conditions.csv", 4, "unmapped_code", "CODE"),
        ("conditions.csv", 5, "unknown_person", "PATIENT"),
        ("encounters.csv", 9, "unknown_person", "PATIENT"),
        ("encounters.csv", 11, "unmapped_code", "ENCOUNTERCLASS"),
        ("medications.csv", 3, "unmapped_code", "DESCRIPTION"),
        ("medications.csv", 5, "after_death", "issue_date"),
    ]  # the source's own row, not an invented one
    assert counts == {"patients": 5, "apc": 3, "gp": 8}
    report = json.loads((home / "reports" / "load_report.json").read_text())
    assert report["source_format"] == "synthea" and report["mapping_rejected"]


@pytest.mark.slow
def test_train_and_audit_end_to_end_on_a_synthea_export(tmp_path: Path) -> None:
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from training.config import TuningGrid, default_config

    ics = generate(GeneratorConfig(persons=5000, seed=3), tmp_path / "ics")
    src = write_synthea(ics.out_dir, tmp_path / "synthea")
    home = tmp_path / "home"
    load = phm("data", "load", str(src), "--format", "synthea", home=home)
    assert load.returncode == 0, load.stderr
    assert "medicine(s) stopped at the patient's death" in load.stdout  # courses left open by patients who died
    con = duckdb.connect(str(home / "warehouse" / "phm.duckdb"), read_only=True)
    try:  # nothing the mapping made is quarantined; what is names a Synthea file
        by_file = dict(con.execute("SELECT source_file, count(*) FROM quarantine GROUP BY 1").fetchall())
        after_death = con.execute("SELECT count(*) FROM quarantine WHERE rule = 'after_death'").fetchone()[0]
    finally:
        con.close()
    assert after_death == 0 and set(by_file) <= {
        "encounters.csv",
        "conditions.csv",
        "medications.csv",
        "observations.csv",
        "patients.csv",
    }, by_file
    config = tmp_path / "train.json"
    quick = default_config("emergency_admission").model_copy(
        update={"grid": TuningGrid(num_leaves=[15], min_child_samples=[100]), "bootstrap_draws": 20}
    )
    config.write_text(quick.model_dump_json())
    train = phm("train", "emergency-admission", "--config", str(config), home=home)
    assert train.returncode == 0, train.stderr[-2000:]
    audit = phm("audit", "run", "--model", "emergency_admission", "--draws", "100", home=home)
    assert audit.returncode == 0, audit.stderr[-2000:]
    report = json.loads((home / "reports" / "audits" / "emergency_admission_v1" / "bias_report.json").read_text())
    assert report["subject"]["data"] == "Synthea export (synthetic patients)" and len(report["groupings"]) == 7
    groups = {
        g["group"]
        for grouping in report["groupings"]
        if grouping["name"] == "ethnicity_broad"
        for g in grouping["groups"]
    }
    assert {"White", "Asian", "Black"} <= groups
    # downstream: promotion, demand forecasts and daily scores
    for name, role in (("Dr Test", "safety_officer"), ("tests", "data_scientist")):
        assert phm("users", "add", name, "--role", role, home=home).returncode == 0
    approve = phm(
        "audit",
        "approve",
        "--model",
        "emergency_admission",
        "--version",
        "1",
        "--by",
        "Dr Test",
        "--reason",
        "Synthea run reviewed",
        "--accept-flags",
        home=home,
    )
    assert approve.returncode == 0, approve.stderr
    assert (
        phm(
            "models", "promote", "--model", "emergency_admission", "--version", "1", "--by", "tests", home=home
        ).returncode
        == 0
    )
    forecast = phm("forecast", "fit", "--site", "ICS", "--origins", "2", home=home)
    assert forecast.returncode == 0, forecast.stderr[-2000:]
    # no critical care in Synthea: the all-zero series is refused with its reason, the others are forecast
    stderr = " ".join(forecast.stderr.split())
    assert "refused ICS/critical_care_beds_occupied" in stderr and "are zero" in stderr, forecast.stderr
    assert "ga_beds_occupied" in forecast.stdout and "critical_care_beds_occupied" not in forecast.stdout
    daily = phm("score", "daily", home=home)
    assert daily.returncode == 0 and "people scored by emergency_admission version 1" in daily.stdout

    import mlflow

    from phm.core.settings import Settings
    from training import tracking

    tracking.configure(Settings(home=home))
    version = mlflow.MlflowClient().get_model_version("emergency_admission", "1")
    run = mlflow.MlflowClient().get_run(version.run_id)
    assert run.data.metrics["val_auroc"] > 0.75  # the mapped history still predicts admissions
    card = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="model_card/model_card.json", dst_path=str(tmp_path / "card")
            )
        ).read_text()
    )
    assert card["data"]["source"] == "PHM warehouse (Synthea export (synthetic patients))"
