"""Build tiny hand-written warehouses for feature spec tests (the warehouse schema, a few rows)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from features.sources.contracts import CONTRACTS
from features.sources.loader import SQL_TYPES


def tiny_warehouse(path: Path, rows: dict[str, list[dict]]) -> Path:
    """A DuckDB file with every warehouse table (empty unless rows are given)."""
    con = duckdb.connect(str(path))
    for contract in CONTRACTS:
        cols = ([("person_id", "BIGINT")] if contract.person_column else []) + \
            [(c.name, SQL_TYPES[c.type]) for c in contract.columns if not c.nhs_number]
        con.execute(f"CREATE TABLE {contract.name} ({', '.join(f'{n} {t}' for n, t in cols)})")
        names = [n for n, _ in cols]
        for row in rows.get(contract.name, []):
            unknown = set(row) - set(names)
            assert not unknown, f"{contract.name}: no columns {unknown}"
            con.execute(f"INSERT INTO {contract.name} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))
    con.execute("CREATE TABLE load_info AS SELECT DATE '2025-06-30' AS as_of, true AS synthetic, true AS demo_key")
    con.close()
    return path


def patient(pid: int, born: str = "1950-06", registered: str = "2000-01-01", end: str | None = None,
            died: str | None = None, sex: str = "F", lsoa: str = "E01000001", practice: str = "A00001") -> dict:
    year, month = born.split("-")
    return {"person_id": pid, "year_of_birth": int(year), "month_of_birth": int(month), "sex": sex,
            "ethnic_category": "A", "lsoa11": lsoa, "practice_code": practice, "registration_start": registered,
            "registration_end": end or died, "date_of_death": died}


def spell(pid: int, admitted: str, discharged: str | None = None, method: str = "21", diagnosis: str = "R074",
          sid: str | None = None) -> dict:
    return {"person_id": pid, "spell_id": sid or f"S{pid}-{admitted}", "admission_date": admitted,
            "discharge_date": discharged or admitted, "admission_method": method, "primary_diagnosis": diagnosis,
            "site_code": "RSY01", "critical_care_days": 0}
