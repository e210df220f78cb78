"""The data-quality report states what the warehouse holds."""

from __future__ import annotations

import duckdb

from features.sources import quality


def test_quality_figures_match_the_warehouse(ics_defects_loaded) -> None:
    settings, load_report = ics_defects_loaded
    report = quality.build(settings.warehouse_path)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    assert report.headline["patients"] == con.execute("SELECT count(*) FROM patients").fetchone()[0]
    assert report.headline["rows_quarantined"] == sum(t.rows_quarantined for t in load_report.tables.values())
    assert sum(r["patients"] for r in report.ethnicity_by_practice) == report.headline["patients"]
    known = con.execute("SELECT count(*) FROM patients WHERE ethnic_category NOT IN ('Z','99')").fetchone()[0]
    assert abs(report.headline["ethnicity_known_pct"] - 100 * known / report.headline["patients"]) < 0.1
    # deprived areas record ethnicity less often (the generator's unequal recording gap)
    by_q = {r["imd_quintile"]: r["ethnicity_known_pct"] for r in report.ethnicity_by_imd_quintile}
    assert by_q["1"] < by_q["5"]
    apc = next(t for t in report.tables if t["table"] == "apc_spells")
    assert apc["first_date"] >= "2019-04-01" and apc["last_date"] <= "2025-03-31"
    html_path, json_path = quality.write(report, settings.reports_dir)
    assert "Quarantined rows by rule" in html_path.read_text() and json_path.exists()
