"""OMOP CDM v5.4 extracts mapped onto the linked data model: a small hand-written extract, its exact
mapping, provenance (every quarantined row names the OMOP file and row), and an end-to-end load through the real
`phm` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.sources.formats import FormatError, convert, detect
from features.sources.formats.common import MAPPING_QUARANTINE
from features.sources.loader import load
from phm.core.settings import Settings

PHM = shutil.which("phm", path=str(Path(sys.executable).parent)) or "phm"
KEY = "a-test-key-of-32-characters-long!!"
NaN = float("nan")

PERSON = """person_id,gender_concept_id,year_of_birth,month_of_birth,birth_datetime,race_concept_id,race_source_value,ethnicity_source_value,gender_source_value,care_site_id,location_id
1,8507,1950,3,,8527,,,,10,100
2,8532,1960,,1960-05-20 00:00:00,8516,,,,10,
3,0,1945,,,0,asian,A,F,,101
4,8507,1980,12,,0,white,,,20,100
5,8532,1938,1,,8552,,,,20,
"""
OBSERVATION_PERIOD = """person_id,observation_period_start_date,observation_period_end_date
1,2010-01-01,2024-12-31
2,2012-06-01,2024-12-31
"""
LOCATION = """location_id,city,zip,location_source_value
100,Leeds,LS1 4AP,E01011229
101,Wakefield,W01000002,
200,Leeds,LS2 9JT,
201,Bradford,BD1 1AA,
"""
CARE_SITE = """care_site_id,care_site_name,location_id
10,Riverside Surgery,200
20,Hilltop Practice,
30,City General Hospital,200
40,St Mary's Hospital,201
"""
CONDITIONS = """condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_source_value,visit_occurrence_id
1,1,255573,2020-01-05,13645005,
2,1,0,2023-03-01,J44.1,1002
3,2,0,2019-02-02,44054006,
4,2,320128,2018-01-01,,
5,3,0,2021-05-05,271737000,
6,3,0,2021-05-06,Sore throat,
7,99,0,2021-05-06,38341003,
8,3,0,2023-06-01,R55,1005
12,3,0,2023-06-01,I10,1005
10,3,0,2023-06-01,38341003,1005
"""
DRUGS = """drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_source_value
1,1,0,2023-01-10,Salbutamol 100mcg inhaler
2,2,0,2023-02-10,metformin 500 MG Oral Tablet
3,2,0,2023-02-10,Unobtainium 5mg
4,5,0,2024-01-10,Amlodipine 5 mg
5,5,0,2024-07-10,Amlodipine 5 mg
"""
DEATH = """person_id,death_date
5,2024-06-01
99,2024-01-01
"""
IMD = """lsoa11,imd_decile
E01011229,2
"""


def _visits() -> pd.DataFrame:
    rows = [  # id, person, concept, start, start time, end, end time, care site, admitted from, source value
        (1001, 1, 9203, "2023-03-01", "2023-03-01 10:00", "2023-03-01", "2023-03-01 14:00", 30, None, None),
        (1002, 1, 9201, "2023-03-01", None, "2023-03-05", None, 30, None, None),
        (1003, 2, 9201, "2023-04-10", None, "2023-04-12", None, 30, None, None),
        (1004, 2, 9201, "2023-04-11", None, "2023-04-14", None, 40, 8870, None),
        (1005, 3, 262, "2023-06-01", None, "2023-06-03", None, None, None, None),
        (1006, 3, 9202, "2023-07-01", None, "2023-07-01", None, 40, None, None),
        (1007, 4, 581477, "2023-02-01", None, "2023-02-01", None, 20, None, None),
        (1008, 4, 581476, "2023-05-01", None, "2023-05-01", None, None, None, None),
        (1009, 4, 0, "2023-05-02", None, "2023-05-02", None, None, None, "Outpatient Visit"),
        (1010, 1, 32036, "2023-05-03", None, "2023-05-03", None, None, None, None),
        (1011, 99, 9202, "2023-05-04", None, "2023-05-04", None, None, None, None),
        (1012, 1, 9203, "2023-08-01", "2023-08-01 15:00", "2023-08-01", None, 40, None, None),
        (1013, 1, 9201, "2023-03-03", None, "2023-03-04", None, 30, None, None),
        (1014, 3, 9203, "2023-09-09", "2023-09-09 23:00", "2023-09-10", None, 40, None, None),
        (1015, 3, 9201, "2023-09-10", None, "2023-09-12", None, 40, None, None),
    ]
    cols = [
        "visit_occurrence_id",
        "person_id",
        "visit_concept_id",
        "visit_start_date",
        "visit_start_datetime",
        "visit_end_date",
        "visit_end_datetime",
        "care_site_id",
        "admitted_from_concept_id",
        "visit_source_value",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("visit_start_date", "visit_end_date"):
        frame[c] = pd.to_datetime(frame[c]).dt.date
    for c in ("visit_start_datetime", "visit_end_datetime"):
        frame[c] = pd.to_datetime(frame[c])
    return frame  # care_site_id and admitted_from_concept_id are floats with NaN, as Parquet often has


def _measurements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "measurement_id": [1, 2, 3, 4, 5, 6],
            "person_id": [1, 2, 3, 4, 1, 99],
            "measurement_concept_id": [3004249, 3038553, 0, 3027018, 0, 3004249],
            "measurement_date": pd.to_datetime(
                ["2022-01-01", "2022-02-02", "2022-03-03", "2022-04-04", "2022-05-05", "2022-06-06"]
            ).date,
            "value_as_number": [142.0, 31.5, 5.2, 72.0, NaN, 120.0],
            "measurement_source_value": ["8480-6", "39156-5", "1000731000000107", "8867-4", "LAB123", "8480-6"],
        }
    )


def write_omop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in [
        ("person", PERSON),
        ("observation_period", OBSERVATION_PERIOD),
        ("location", LOCATION),
        ("care_site", CARE_SITE),
        ("condition_occurrence", CONDITIONS),
        ("drug_exposure", DRUGS),
        ("death", DEATH),
        ("imd", IMD),
    ]:
        (folder / f"{name}.csv").write_text(text)
    _visits().to_parquet(folder / "visit_occurrence.parquet", index=False)
    _measurements().to_parquet(folder / "measurement.parquet", index=False)
    return folder


@pytest.fixture()
def omop(tmp_path: Path) -> Path:
    return write_omop(tmp_path / "omop")


def _staged(out: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / f"{name}.parquet").astype(object)
    return frame.where(frame.notna(), None)  # missing values as None


def test_convert_counts_and_rejections(omop: Path, tmp_path: Path) -> None:
    out = tmp_path / "staged"
    report = convert(omop, "omop", out)
    assert (report.format, report.synthetic) == ("omop", False)
    assert report.missing_optional_files == ["observation"]
    assert report.files_read["visit_occurrence.parquet"] == 15 and report.files_read["person.csv"] == 5
    assert report.rows_written == {
        "practices": 3,
        "patients": 5,
        "imd": 1,
        "sites": 3,
        "ae_attendances": 4,
        "apc_spells": 6,
        "op_appointments": 2,
        "community_contacts": 1,
        "gp_events": 10,
        "prescriptions": 4,
    }
    assert report.rejected == {
        "visit_occurrence.parquet: unknown_person (person_id)": 1,
        "condition_occurrence.csv: unknown_person (person_id)": 1,
        "measurement.parquet: unknown_person (person_id)": 1,
        "death.csv: unknown_person (person_id)": 1,
        "visit_occurrence.parquet: unmapped_code (visit_concept_id)": 1,
        "condition_occurrence.csv: unmapped_code (condition_source_value)": 1,
        "drug_exposure.csv: unmapped_code (drug_source_value)": 1,
    }
    notes = " ".join(report.notes)
    assert "1 visit(s) not mapped: primary care visits" in notes
    assert "1 ICD-10 condition row(s) outside the long-term conditions are used only as admission diagnoses" in notes
    assert "2 measurement rows not used: no predictor reads them" in notes
    assert "estimated from observed occupancy" in notes and "IMD linked only where the location gives an LSOA" in notes
    assert "1 person(s) without a month of birth: July (7) assumed" in notes
    quarantine = pd.read_parquet(out / MAPPING_QUARANTINE)
    drug = quarantine[quarantine.source_file == "drug_exposure.csv"].iloc[0]
    assert (drug.source_row, drug.rule, json.loads(drug.record)["drug_source_value"]) == (
        3,
        "unmapped_code",
        "Unobtainium 5mg",
    )
    visit = quarantine[quarantine.column_name == "visit_concept_id"].iloc[0]
    assert (visit.source_table, visit.source_row, json.loads(visit.record)["visit_concept_id"]) == (
        "visit_occurrence",
        10,
        "32036",
    )


def test_convert_mapped_values(omop: Path, tmp_path: Path) -> None:
    out = tmp_path / "staged"
    convert(omop, "omop", out)
    patients = _staged(out, "patients").set_index("year_of_birth")
    assert list(patients.columns) == [
        "nhs_number",
        "month_of_birth",
        "sex",
        "ethnic_category",
        "lsoa11",
        "practice_code",
        "registration_start",
        "registration_end",
        "date_of_death",
        "_source_file",
        "_source_row",
    ]
    assert patients[["_source_file", "_source_row"]].values.tolist() == [["person.csv", i] for i in range(1, 6)]
    assert patients["nhs_number"].str.fullmatch(r"[0-9]{10}").all() and patients["nhs_number"].is_unique
    assert patients["month_of_birth"].to_dict() == {"1950": "3", "1960": "5", "1945": "7", "1980": "12", "1938": "1"}
    assert patients["sex"].tolist() == ["M", "F", "F", "M", "F"]
    assert patients["ethnic_category"].tolist() == ["C", "P", "A", "C", "Z"]
    assert patients["lsoa11"].tolist() == ["E01011229", None, "W01000002", "E01011229", None]
    assert patients["practice_code"].tolist() == ["Y00001", "Y00001", "Y99999", "Y00002", "Y00002"]
    assert patients["registration_start"].tolist() == [
        "2010-01-01",
        "2012-06-01",
        "2023-06-01",
        "2023-02-01",
        "1938-01-01",
    ]
    assert patients["date_of_death"].tolist() == [None, None, None, None, "2024-06-01"]
    practices = _staged(out, "practices")
    assert practices[["practice_code", "pcn_code", "place", "icb_code"]].values.tolist() == [
        ["Y00001", "U00004", "Leeds", ""],
        ["Y00002", "U00002", "Leeds", ""],
        ["Y99999", "U00003", "Wakefield", ""],
    ]
    sites = _staged(out, "sites")
    assert sites[["site_code", "site_name", "ga_beds"]].values.tolist() == [
        ["RZZ01", "City General Hospital", "2"],
        ["RZZ02", "St Mary's Hospital", "1"],
        ["RZZ99", "", "1"],
    ]
    spells = _staged(out, "apc_spells").set_index("spell_id")
    assert spells["admission_method"].to_dict() == {
        "1002": "21",
        "1003": "11",
        "1004": "21",
        "1005": "21",
        "1013": "11",
        "1015": "21",
    }
    assert spells["primary_diagnosis"].to_dict() == {
        "1002": "J441",
        "1003": None,
        "1004": None,
        "1005": "R55",
        "1013": None,
        "1015": None,
    }
    assert spells.loc["1005", "site_code"] == "RZZ99" and spells.loc["1002", "discharge_date"] == "2023-03-05"
    ae = _staged(out, "ae_attendances").set_index("attendance_id")
    assert ae.loc["1001", ["arrival_time", "departure_time", "site_code"]].tolist() == [
        "2023-03-01 10:00:00",
        "2023-03-01 14:00:00",
        "RZZ01",
    ]
    assert ae.loc["1014", "departure_time"] == "2023-09-10 00:00:00" and ae.loc["1012", "departure_time"] is None
    assert sorted(_staged(out, "op_appointments")["appointment_id"]) == ["1006", "1009"]
    assert _staged(out, "community_contacts")["service"].tolist() == ["district_nursing"]
    events = _staged(out, "gp_events").set_index("event_id")
    assert events["code"].to_dict() == {
        "1": "13645005",
        "2": "13645005",
        "3": "73211009",
        "4": "38341003",
        "5": "271737000",
        "12": "38341003",
        "10": "38341003",
        "m1": "271649006",
        "m2": "60621009",
        "m3": "1000731000000107",
    }
    assert events.loc[["m1", "m2", "m3"], "value"].tolist() == ["142.0", "31.5", "5.2"]
    rx = _staged(out, "prescriptions")
    assert rx["bnf_code"].tolist() == ["0301011R0", "0601022B0", "0206020A0", "0206020A0"]
    assert rx["_source_row"].tolist() == [1, 2, 4, 5] and set(rx["_source_file"]) == {"drug_exposure.csv"}
    # provenance of every staged row: its OMOP file and row (practices and sites: their care site's row)
    assert _staged(out, "apc_spells").set_index("spell_id").loc["1005", "_source_row"] == 5
    assert _staged(out, "ae_attendances")["_source_file"].unique().tolist() == ["visit_occurrence.parquet"]
    assert [tuple(r) for r in practices[["_source_file", "_source_row"]].values] == [
        ("care_site.csv", 1),
        ("care_site.csv", 2),
        (None, None),
    ]  # Y99999 is made by the mapping
    assert [tuple(r) for r in sites[["_source_file", "_source_row"]].values] == [
        ("care_site.csv", 3),
        ("care_site.csv", 4),
        (None, None),
    ]


def test_detect_and_clear_errors(omop: Path, tmp_path: Path) -> None:
    assert detect(omop) == "omop"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="OMOP CDM extract"):
        detect(tmp_path / "empty")
    (omop / "visit_occurrence.parquet").unlink()
    with pytest.raises(FormatError, match="visit_occurrence"):
        convert(omop, "omop", tmp_path / "staged")


def _check_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path), read_only=True)
    loaded = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in (
            "patients",
            "practices",
            "sites",
            "imd",
            "ae_attendances",
            "apc_spells",
            "op_appointments",
            "community_contacts",
            "gp_events",
            "prescriptions",
        )
    }
    assert loaded == {
        "patients": 5,
        "practices": 3,
        "sites": 3,
        "imd": 1,
        "ae_attendances": 4,
        "apc_spells": 6,
        "op_appointments": 2,
        "community_contacts": 1,
        "gp_events": 10,
        "prescriptions": 3,
    }
    rows = con.execute(
        "SELECT source_table, source_file, source_row, rule, column_name FROM quarantine "
        "ORDER BY source_file, source_row"
    ).fetchall()
    assert rows == [  # mapping rejections and the loader's (a drug exposure after death: its OMOP row)
        ("condition_occurrence", "condition_occurrence.csv", 6, "unmapped_code", "condition_source_value"),
        ("condition_occurrence", "condition_occurrence.csv", 7, "unknown_person", "person_id"),
        ("death", "death.csv", 2, "unknown_person", "person_id"),
        ("drug_exposure", "drug_exposure.csv", 3, "unmapped_code", "drug_source_value"),
        ("prescriptions", "drug_exposure.csv", 5, "after_death", "issue_date"),
        ("measurement", "measurement.parquet", 6, "unknown_person", "person_id"),
        ("visit_occurrence", "visit_occurrence.parquet", 10, "unmapped_code", "visit_concept_id"),
        ("visit_occurrence", "visit_occurrence.parquet", 11, "unknown_person", "person_id"),
    ]
    assert con.execute("SELECT source_format FROM load_info").fetchone()[0] == "omop"
    emergency = con.execute("SELECT count(*) FROM apc_spells WHERE admission_method = '21'").fetchone()[0]
    assert emergency == 4
    con.close()


def test_load_end_to_end(omop: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", pseudonym_key=KEY)
    staged = tmp_path / "staged"
    convert(omop, "omop", staged)
    report = load(settings, staged, as_of=pd.Timestamp("2025-01-01").date())
    assert report.source_format == "omop" and not report.synthetic and not report.demo_key
    assert report.imd_linked_share == 0.4  # 2 of 5 persons live in the one LSOA the imd extract covers
    _check_warehouse(settings.warehouse_path)


def test_cli_load(omop: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "PHM_HOME": str(home), "PHM_PSEUDONYM_KEY": KEY, "COLUMNS": "160"}
    done = subprocess.run(
        [PHM, "data", "load", str(omop), "--format", "omop", "--as-of", "2025-01-01"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Staged PHM extracts" in done.stdout and "Load report" in done.stdout
    _check_warehouse(Settings(home=home).warehouse_path)
    saved = json.loads((home / "reports" / "load_report.json").read_text())
    assert saved["source_format"] == "omop" and sum(saved["mapping_rejected"].values()) == 7
