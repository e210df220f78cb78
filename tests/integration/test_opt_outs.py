"""Type 1 objections: people in the `opt_outs` extract are removed before anything is written — absent from every
warehouse table (quarantine and ground truth included) and the features built from it — and only counted in the
load report."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.build import build
from features.sources import quality
from features.sources.contracts import CONTRACTS
from features.sources.loader import ContractError, load
from features.sources.pseudonymise import Pseudonymiser
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate
from models import specs
from phm.core.settings import DEMO_PSEUDONYM_KEY, Settings

PERSON_TABLES = [c.name for c in CONTRACTS if c.person_column]


@pytest.fixture(scope="module")
def opted(tmp_path_factory) -> tuple[Settings, object, set[int], dict[str, int], Path]:
    """A 3,000-person ICS loaded with 120 opted-out people (busiest in hospital first) and two malformed rows."""
    src = tmp_path_factory.mktemp("ics_optout")
    generate(GeneratorConfig(persons=3_000, seed=4), src)
    spells = pq.read_table(src / "apc_spells.parquet", columns=["nhs_number"]).to_pandas()
    busiest = spells.nhs_number.value_counts().index[:60].tolist()
    patients = pq.read_table(src / "patients.parquet", columns=["nhs_number"]).to_pandas().nhs_number
    rest = np.random.default_rng(3).choice(np.setdiff1d(patients, busiest), 60, replace=False).tolist()
    numbers = busiest + rest
    rows = [f"{n[:3]} {n[3:6]} {n[6:]}" if i % 2 else n for i, n in enumerate(numbers)]
    rows[5:5] = ["12345", "not a number"]
    (src / "opt_outs.csv").write_text("NHS Number\n" + "\n".join(rows) + "\n")
    expected = {
        t: int(pq.read_table(src / f"{t}.parquet", columns=["nhs_number"]).to_pandas().nhs_number.isin(numbers).sum())
        for t in PERSON_TABLES
        if (src / f"{t}.parquet").exists()
    }
    settings = Settings(home=tmp_path_factory.mktemp("home_optout"))
    report = load(settings, src)
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    return settings, report, {pseudo.person_id(n) for n in numbers}, expected, src


def test_opted_out_people_are_in_no_table(opted) -> None:
    settings, _, ids, _, _ = opted
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    con.register("ids", pd.DataFrame({"person_id": sorted(ids)}))
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = 'person_id' AND table_schema = 'main' "
            "AND table_name <> 'ids'"
        ).fetchall()
    ]
    assert {"patients", "apc_spells", "quarantine", "truth_persons", "truth_emergency_12m"} <= set(tables)
    for table in tables:
        assert con.execute(f"SELECT count(*) FROM {table} JOIN ids USING (person_id)").fetchone()[0] == 0, table
    assert con.execute("SELECT count(*) FROM patients").fetchone()[0] == 3_000 - 120


def test_the_load_report_only_counts_them(opted) -> None:
    settings, report, ids, expected, _ = opted
    o = report.opt_outs
    assert (o["rows_read"], o["people_listed"], o["people_removed"], o["malformed_rows"]) == (122, 120, 120, 2)
    assert o["malformed_row_numbers"] == [6, 7]
    assert {t: report.tables[t].rows_opted_out for t in expected} == expected
    assert expected["apc_spells"] > 60
    for rep in report.tables.values():
        assert rep.rows_read == rep.rows_loaded + rep.rows_quarantined + rep.rows_opted_out, rep.table
    saved = (settings.reports_dir / "load_report.json").read_text()
    assert json.loads(saved)["opt_outs"]["people_removed"] == 120
    assert not any(str(i) in saved for i in ids)


def test_features_and_quality_report_leave_them_out(opted, tmp_path: Path) -> None:
    settings, _, ids, _, _ = opted
    out = tmp_path / "ea.parquet"
    build(settings.warehouse_path, specs.get("emergency_admission").build_config([date(2024, 4, 1)]), out)
    built = pd.read_parquet(out, columns=["person_id"])
    assert len(built) > 1_500 and not built.person_id.isin(ids).any()
    written = quality.write(quality.build(settings.warehouse_path), tmp_path / "reports")
    for path in written:
        text = Path(path).read_text()
        assert not any(str(i) in text for i in ids)


def test_an_opt_outs_extract_without_numbers_is_refused(opted, tmp_path: Path) -> None:
    _, _, _, _, src = opted
    bad = tmp_path / "src"
    bad.mkdir()
    for path in src.iterdir():
        if path.is_file() and path.name != "opt_outs.csv":
            (bad / path.name).symlink_to(path)
    (bad / "truth").symlink_to(src / "truth")
    (bad / "opt_outs.csv").write_text("identifier\n1\n")
    with pytest.raises(ContractError, match="opt_outs.csv: missing column 'nhs_number'"):
        load(Settings(home=tmp_path / "h"), bad)


@pytest.mark.slow
def test_snapshots_leave_them_out(opted, tmp_path: Path) -> None:
    """A champion trained, audited, approved and promoted on the opted-out warehouse scores a snapshot without
    them."""
    from evaluation.fairness.config import AuditConfig
    from serving.batch.common import default_date
    from serving.batch.daily import score_daily
    from serving.batch.store import current
    from serving.governance.model_audit import audit_model
    from serving.governance.signoff import decide, promote
    from support.homes import copied_home, train_quickly

    settings, _, ids, _, _ = opted
    home = copied_home(settings, tmp_path / "home")
    train_quickly(home)
    out = audit_model(home, "emergency_admission", 1, AuditConfig(bootstrap_draws=20))
    decide(home, "emergency_admission", 1, "approved", "Dr Test", "test approval", accept_flags=bool(out.result.flags))
    promote(home, "emergency_admission", 1, by="tests")
    score_daily(home, default_date(home.warehouse_path))
    _, scores = current(home)
    assert len(scores) > 1_500 and not scores.person_id.isin(ids).any()
    features = next(p for p in (home.home / "warehouse" / "snapshots").rglob("features.parquet"))
    assert not pd.read_parquet(features, columns=["person_id"]).person_id.isin(ids).any()
