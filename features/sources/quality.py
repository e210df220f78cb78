"""Data-quality summary of the warehouse, for people: coverage, linkage, quarantine, date ranges."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from phm.core.reports import render


class WarehouseMissingError(FileNotFoundError):
    """No warehouse has been loaded yet."""


@dataclass
class QualityReport:
    """Tables of the data-quality summary (each a list of row dicts) and headline figures."""

    headline: dict[str, object]
    tables: list[dict]
    ethnicity_by_practice: list[dict]
    ethnicity_by_imd_quintile: list[dict]
    quarantine_by_rule: list[dict]

    def to_json(self) -> dict:
        return self.__dict__


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise WarehouseMissingError(f"{path}: no warehouse yet. Run `phm data load SRC_DIR` (or `phm demo`) first.")
    return duckdb.connect(str(path), read_only=True)


def build(warehouse: Path) -> QualityReport:
    con = open_warehouse(warehouse)
    try:
        info = _rows(con, "SELECT * FROM load_info")[0]
        headline = {
            "as_of": str(info["as_of"]),
            "synthetic": info["synthetic"],
            "patients": con.execute("SELECT count(*) FROM patients").fetchone()[0],
            "registered_now": con.execute("""SELECT count(*) FROM patients WHERE registration_end IS NULL
                                             AND date_of_death IS NULL""").fetchone()[0],
            "ethnicity_known_pct": con.execute("""SELECT round(100 * avg(CASE WHEN ethnic_category IS NULL
                OR ethnic_category IN ('Z', '99') THEN 0 ELSE 1 END), 1) FROM patients""").fetchone()[0],
            "imd_linked_pct": con.execute("""SELECT round(100 * avg(CASE WHEN i.lsoa11 IS NULL THEN 0 ELSE 1 END), 1)
                FROM patients p LEFT JOIN imd i USING (lsoa11)""").fetchone()[0],
            "rows_quarantined": con.execute("SELECT count(*) FROM quarantine").fetchone()[0],
        }
        tables = _rows(
            con,
            """SELECT source_table AS "table", source_file AS file, rows_read, rows_loaded,
                               rows_quarantined, rows_unlinked, round(100 * linkage_rate, 2) AS linkage_pct
                               FROM load_manifest ORDER BY rowid""",
        )
        for t in tables:  # every row has the same columns (reference tables have no dates)
            date_col = _event_date(t["table"])
            t["first_date"] = t["last_date"] = None
            if date_col and t["rows_loaded"]:
                lo, hi = con.execute(f'SELECT min("{date_col}"), max("{date_col}") FROM "{t["table"]}"').fetchone()
                t["first_date"], t["last_date"] = str(lo)[:10], str(hi)[:10]
        by_practice = _rows(
            con,
            """SELECT p.practice_code, pr.pcn_code, pr.place, count(*) AS patients,
                round(100 * avg(CASE WHEN ethnic_category IS NULL OR ethnic_category IN ('Z','99') THEN 0 ELSE 1 END), 1)
                    AS ethnicity_known_pct
                FROM patients p LEFT JOIN practices pr USING (practice_code)
                GROUP BY ALL ORDER BY ethnicity_known_pct, practice_code""",
        )
        by_imd = _rows(
            con,
            """SELECT coalesce(CAST((i.imd_decile + 1) // 2 AS VARCHAR), 'no IMD') AS imd_quintile,
                count(*) AS patients,
                round(100 * avg(CASE WHEN ethnic_category IS NULL OR ethnic_category IN ('Z','99') THEN 0 ELSE 1 END), 1)
                    AS ethnicity_known_pct
                FROM patients p LEFT JOIN imd i USING (lsoa11) GROUP BY 1 ORDER BY 1""",
        )
        by_rule = _rows(
            con,
            """SELECT source_table AS "table", rule, column_name AS "column", count(*) AS rows
                                FROM quarantine GROUP BY ALL ORDER BY 1, 4 DESC""",
        )
    finally:
        con.close()
    return QualityReport(headline, tables, by_practice, by_imd, by_rule)


def _event_date(table: str) -> str | None:
    from features.sources.contracts import CONTRACTS_BY_NAME

    contract = CONTRACTS_BY_NAME.get(table)
    return contract.event_date if contract else None


def write(report: QualityReport, folder: Path) -> tuple[Path, Path]:
    """Save the report as a self-contained HTML page and as JSON; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    page = render(
        "quality.html.j2",
        title="Data quality report",
        h=report.headline,
        sections=[
            {
                "title": "Tables loaded",
                "rows": report.tables,
                "note": "Every row read is either loaded or quarantined with a reason.",
            },
            {
                "title": "Ethnicity recording by practice",
                "rows": report.ethnicity_by_practice,
                "note": "Lowest coverage first.",
            },
            {
                "title": "Ethnicity recording by deprivation (IMD quintile, 1 = most deprived)",
                "rows": report.ethnicity_by_imd_quintile,
                "note": "",
            },
            {"title": "Quarantined rows by rule", "rows": report.quarantine_by_rule, "note": ""},
        ],
    )
    html_path, json_path = folder / "data_quality.html", folder / "data_quality.json"
    html_path.write_text(page, encoding="utf-8")
    json_path.write_text(json.dumps(report.to_json(), indent=2, default=str))
    return html_path, json_path
