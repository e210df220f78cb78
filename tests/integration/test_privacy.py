"""No NHS number reaches the warehouse, the logs or the reports."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from features.sources import quality
from phm.core.logs import RedactNhsNumbers, configure


def _numbers(extract: Path) -> set[str]:
    numbers: set[str] = set()
    for path in extract.glob("*.parquet"):
        table = pq.read_table(path)
        if "nhs_number" in table.column_names:
            numbers |= {n for n in table.column("nhs_number").to_pylist() if n}
    return numbers


def test_no_nhs_number_in_warehouse_logs_or_reports(ics_defects, ics_defects_loaded) -> None:
    settings, _ = ics_defects_loaded
    configure(settings)
    logging.getLogger("phm.test").info("loaded %s", "fine")
    quality.write(quality.build(settings.warehouse_path), settings.reports_dir)
    numbers = _numbers(ics_defects.out_dir)
    assert len(numbers) > 4000
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    ten_digits = re.compile(r"\d{10}")
    for t in tables:
        cols = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {t})").fetchall()]
        assert "nhs_number" not in cols, t
        for c in cols:
            values = con.execute(f'SELECT DISTINCT CAST("{c}" AS VARCHAR) FROM {t}').fetchall()
            found = {m for (v,) in values if v for m in ten_digits.findall(v)} & numbers
            assert not found, f"{t}.{c} holds NHS numbers"
    con.close()
    # the raw bytes of every file the product wrote
    written = [settings.warehouse_path, *settings.reports_dir.glob("*"), *settings.logs_dir.glob("*")]
    assert any(p.suffix == ".log" for p in written)
    sample = sorted(numbers)[:: max(1, len(numbers) // 400)]
    for path in written:
        blob = path.read_bytes()
        for n in sample:
            assert n.encode() not in blob, f"{path.name} contains an NHS number"


def test_log_filter_redacts_nhs_like_numbers() -> None:
    record = logging.LogRecord("phm", logging.INFO, __file__, 1, "patient %s and 943 476 5919", ("9434765919",), None)
    RedactNhsNumbers().filter(record)
    assert "9434765919" not in record.getMessage() and "943 476 5919" not in record.getMessage()
    assert record.getMessage().count("[redacted]") == 2
