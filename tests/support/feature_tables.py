"""Build tiny hand-written warehouses for feature spec tests (the warehouse schema, a few rows)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from features.sources.checks import SQL_TYPES
from features.sources.contracts import CONTRACTS


def tiny_warehouse(path: Path, rows: dict[str, list[dict]]) -> Path:
    """A DuckDB file with every warehouse table (empty unless rows are given)."""
    con = duckdb.connect(str(path))
    for contract in CONTRACTS:
        cols = ([("person_id", "BIGINT")] if contract.person_column else []) + [
            (c.name, SQL_TYPES[c.type]) for c in contract.columns if not c.nhs_number
        ]
        con.execute(f"CREATE TABLE {contract.name} ({', '.join(f'{n} {t}' for n, t in cols)})")
        names = [n for n, _ in cols]
        for row in rows.get(contract.name, []):
            unknown = set(row) - set(names)
            assert not unknown, f"{contract.name}: no columns {unknown}"
            con.execute(
                f"INSERT INTO {contract.name} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
    con.execute("CREATE TABLE load_info AS SELECT DATE '2025-06-30' AS as_of, true AS synthetic, true AS demo_key")
    con.close()
    return path


def patient(
    pid: int,
    born: str = "1950-06",
    registered: str = "2000-01-01",
    end: str | None = None,
    died: str | None = None,
    sex: str = "F",
    lsoa: str = "E01000001",
    practice: str = "A00001",
) -> dict:
    year, month = born.split("-")
    return {
        "person_id": pid,
        "year_of_birth": int(year),
        "month_of_birth": int(month),
        "sex": sex,
        "ethnic_category": "A",
        "lsoa11": lsoa,
        "practice_code": practice,
        "registration_start": registered,
        "registration_end": end or died,
        "date_of_death": died,
    }


def spell(
    pid: int,
    admitted: str,
    discharged: str | None = None,
    method: str = "21",
    diagnosis: str = "R074",
    sid: str | None = None,
) -> dict:
    return {
        "person_id": pid,
        "spell_id": sid or f"S{pid}-{admitted}",
        "admission_date": admitted,
        "discharge_date": discharged or admitted,
        "admission_method": method,
        "primary_diagnosis": diagnosis,
        "site_code": "RSY01",
        "critical_care_days": 0,
    }


IDX = date(2024, 4, 1)
COPD, DIABETES, HF, CKD = "13645005", "73211009", "84114007", "709044004"


def spec_rows() -> dict[str, list[dict]]:
    """The spec tests' hand-written tables (one patient per rule or edge; see tests/spec/test_features_spec.py)."""
    return {
        "practices": [{"practice_code": "A00001", "pcn_code": "U00001", "place": "Here", "icb_code": "QSY"}],
        "imd": [{"lsoa11": "E01000001", "imd_decile": 2}],
        "sites": [{"site_code": "RSY01", "ga_beds": 10, "critical_care_beds": 1}],
        "patients": [
            patient(1, born="1950-06"),
            patient(2, born="1940-01", died="2024-06-01"),  # dies after the index date
            patient(3, registered="2024-05-01"),  # registers late: not yet eligible
            patient(4, died="2023-12-01"),  # died before
            patient(5, born="2006-05"),  # 17 on the index date
            patient(6, end="2024-08-01"),  # moves away: censored
            patient(7),  # admitted exactly 12 months later: outside the outcome window
            patient(8, born="1960-01"),  # heart failure
            patient(9, born="1930-01"),  # palliative care
            patient(10, born="1970-01"),  # three conditions
            patient(11, born="1990-01"),  # healthy
            patient(12, born="1935-01"),  # frail
        ],
        "apc_spells": [
            spell(1, "2024-04-01", "2024-04-03"),  # on the index date: outcome only
            spell(1, "2023-04-02", "2023-04-05"),  # first day of the 12-month window
            spell(1, "2023-04-01", "2023-04-02"),  # one day outside it
            spell(1, "2024-01-02", "2024-01-02"),  # first day of the 3-month window, same-day
            spell(1, "2024-03-25", "2024-04-10"),  # in hospital over the index date: 7 bed-days so far
            spell(1, "2023-10-01", "2023-10-02", method="11"),  # elective
            spell(1, "2022-01-01", "2022-01-03", diagnosis="J441"),  # COPD in hospital, long ago
            spell(7, "2025-04-01"),
            spell(6, "2024-07-01", method="12"),
        ],
        "gp_events": [
            {"person_id": 1, "event_id": "g1", "event_date": "2010-05-05", "code": COPD},
            {"person_id": 1, "event_id": "g2", "event_date": "2024-04-01", "code": DIABETES},  # on the index date
            {"person_id": 1, "event_id": "g3", "event_date": "2024-04-02", "code": CKD},  # after
            {"person_id": 1, "event_id": "g4", "event_date": "2020-01-01", "code": "161898004"},  # falls
            {"person_id": 1, "event_id": "g5", "event_date": "2021-01-01", "code": "161898004"},
            {"person_id": 1, "event_id": "g6", "event_date": "2022-01-01", "code": "15188001"},  # hearing loss
            {"person_id": 8, "event_id": "g7", "event_date": "2019-01-01", "code": HF},
            *[
                {"person_id": 10, "event_id": f"t{i}", "event_date": "2015-01-01", "code": c}
                for i, c in enumerate([DIABETES, CKD, "38341003"])
            ],
            {"person_id": 10, "event_id": "t9", "event_date": "2016-01-01", "code": DIABETES},  # repeat
            *[
                {"person_id": 12, "event_id": f"f{i}", "event_date": "2020-01-01", "code": c}
                for i, c in enumerate(["161898004", "165232002", "15188001", "397540003"])
            ],
        ],
        "prescriptions": [
            {"person_id": 1, "prescription_id": "r1", "issue_date": "2023-06-01", "bnf_code": "0301011R0"},
            {
                "person_id": 1,
                "prescription_id": "r2",
                "issue_date": "2023-09-01",
                "bnf_code": "0301020Q0",
            },  # same section
            {"person_id": 1, "prescription_id": "r3", "issue_date": "2023-12-01", "bnf_code": "0212000B0"},
            {"person_id": 1, "prescription_id": "r4", "issue_date": "2022-12-01", "bnf_code": "0601022B0"},  # too old
            {"person_id": 1, "prescription_id": "r5", "issue_date": "2024-02-01", "bnf_code": "0603020T0"},  # rescue
            {"person_id": 1, "prescription_id": "r6", "issue_date": "2024-02-01", "bnf_code": "0501013B0"},
        ],
        "ae_attendances": [
            {
                "person_id": 1,
                "attendance_id": "a1",
                "arrival_time": "2023-12-31 23:30:00",
                "site_code": "RSY01",
                "acuity": 1,
            },
            {
                "person_id": 1,
                "attendance_id": "a2",
                "arrival_time": "2024-03-31 23:59:00",
                "site_code": "RSY01",
                "acuity": 4,
            },
            {
                "person_id": 1,
                "attendance_id": "a3",
                "arrival_time": "2024-04-01 00:01:00",
                "site_code": "RSY01",
                "acuity": 2,
            },
        ],
        "op_appointments": [
            {"person_id": 1, "appointment_id": "o1", "appointment_date": "2023-05-01", "attendance_status": "ATTENDED"},
            {"person_id": 1, "appointment_id": "o2", "appointment_date": "2023-06-01", "attendance_status": "DNA"},
            {
                "person_id": 1,
                "appointment_id": "o3",
                "appointment_date": "2023-07-01",
                "attendance_status": "CANCELLED",
            },
        ],
        "community_contacts": [
            {"person_id": 9, "contact_id": "c1", "contact_date": "2024-02-01", "service": "palliative_care"},
            {"person_id": 1, "contact_id": "c2", "contact_date": "2024-02-01", "service": "podiatry"},
        ],
        "mh_contacts": [{"person_id": 1, "contact_id": "m1", "contact_date": "2023-08-01", "service": "iapt"}],
        "social_care": [
            {
                "person_id": 1,
                "package_id": "p1",
                "service_type": "home_care",
                "start_date": "2023-01-01",
                "end_date": None,
            },
            {
                "person_id": 8,
                "package_id": "p2",
                "service_type": "home_care",
                "start_date": "2023-01-01",
                "end_date": "2024-03-31",
            },  # ended the day before
            {
                "person_id": 12,
                "package_id": "p3",
                "service_type": "reablement",
                "start_date": "2024-04-01",
                "end_date": None,
            },  # starts on the index date
        ],
        "housing": [
            {"person_id": 1, "flag": "overcrowding", "recorded_date": "2021-01-01"},
            {"person_id": 8, "flag": "homeless", "recorded_date": "2024-05-01"},
        ],
    }
