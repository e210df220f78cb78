"""The data side of information governance through the real `phm` command: a PHM_HOME whose path holds an
apostrophe (SQL escaping) from load to daily scores, owner-only files, past days not published silently, and
hostile or broken extracts refused with a one-line error that names the file but never an NHS number."""

from __future__ import annotations

import json
import re
import shutil
import stat
from datetime import date, timedelta
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.cli import run

from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate

WIDE = {"COLUMNS": "1000"}  # one message, one line


def _pointer(home: Path) -> dict:
    return json.loads((home / "warehouse" / "snapshots" / "CURRENT.json").read_text())


def _not_owner_only(home: Path) -> list[str]:
    return [
        f"{oct(stat.S_IMODE(p.stat().st_mode))} {p}"
        for p in [home, *home.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o077
    ]


@pytest.mark.slow
def test_a_home_with_an_apostrophe_from_load_to_daily_scores_owner_only(tmp_path: Path) -> None:
    """Every command on the way to a served snapshot works where PHM_HOME is /.../o'brien's home (paths reach
    DuckDB as escaped literals); every file and folder it creates is owner-only; re-scoring an earlier day
    does not move the live pointer unless --publish."""
    home = tmp_path / "o'brien's home"

    def phm(*args: str) -> str:
        out = run(*args, home=home)
        assert out.returncode == 0, f"phm {' '.join(args)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        return out.stdout

    phm("data", "generate", "--persons", "3000", "--seed", "3")
    phm("data", "load")
    phm("features", "build", "--as-of", "2024-04-01")
    phm("train", "emergency-admission")
    phm("audit", "run", "--draws", "50")
    phm("users", "add", "Dr O'Brien", "--role", "safety_officer")  # decisions are recorded against named users
    phm(
        "audit",
        "approve",
        "--model",
        "emergency_admission",
        "--version",
        "1",
        "--by",
        "Dr O'Brien",
        "--reason",
        "test",
        "--accept-flags",
    )
    phm("models", "promote", "--model", "emergency_admission", "--version", "1", "--by", "Dr O'Brien")
    phm("score", "daily")
    live = _pointer(home)
    earlier = str(date.fromisoformat(live["date"]) - timedelta(days=14))
    out = phm("score", "daily", "--date", earlier)
    assert "Not published: the service still serves the snapshot of " + live["date"] in out
    assert _pointer(home) == live  # coordinators still get today's worklist
    assert any(p.name.startswith(earlier) for p in (home / "warehouse" / "snapshots").iterdir())
    phm("score", "daily", "--date", earlier, "--publish")
    assert _pointer(home)["date"] == earlier
    phm("score", "daily")  # a later day publishes by default
    assert _pointer(home)["date"] == live["date"]
    # audit, decision and promotion, plus one entry per hazard the audit raised (how many depends on the data)
    kinds = [json.loads(line)["kind"] for line in (home / "safety" / "hazard_log.jsonl").read_text().splitlines()]
    assert sorted(k for k in kinds if k != "hazard") == ["audit", "decision", "promotion"]
    entries = len(kinds)
    assert f"Hazard log intact ({entries} entries; signed head at entry {entries})" in phm("audit", "log", "--verify")
    assert not _not_owner_only(home)


@pytest.fixture
def extracts(tmp_path: Path) -> Path:
    return generate(GeneratorConfig(persons=2000, seed=9), tmp_path / "ics").out_dir


def _loaded(home: Path, extracts: Path) -> dict:
    out = run("data", "load", str(extracts), home=home)
    assert out.returncode == 0, out.stderr
    return json.loads((home / "reports" / "load_report.json").read_text())


def test_a_ragged_csv_row_never_shows_the_nhs_number(extracts: Path, tmp_path: Path) -> None:
    src = tmp_path / "ragged"
    shutil.copytree(extracts, src)
    table = pq.read_table(src / "apc_spells.parquet")
    (src / "apc_spells.parquet").unlink()
    pacsv.write_csv(table, src / "apc_spells.csv")
    lines = (src / "apc_spells.csv").read_text().splitlines(keepends=True)
    number = table.column("nhs_number")[4].as_py()
    lines[5] = lines[5].rstrip("\n") + f",{number}\n"
    (src / "apc_spells.csv").write_text("".join(lines))
    home = tmp_path / "home"
    out = run("data", "load", str(src), home=home, env=WIDE)
    assert out.returncode == 2 and "apc_spells.csv: row 5 has" in out.stderr and "Traceback" not in out.stderr
    logged = (home / "logs" / "phm.log").read_text() if (home / "logs" / "phm.log").exists() else ""
    for text in (out.stdout, out.stderr, logged):
        assert number not in text and not re.search(r"(?<!\d)\d{10}(?!\d)", text)


def test_a_truncated_parquet_extract_is_one_line_naming_the_file(extracts: Path, tmp_path: Path) -> None:
    src = tmp_path / "cut"
    shutil.copytree(extracts, src)
    data = (src / "gp_events.parquet").read_bytes()
    (src / "gp_events.parquet").write_bytes(data[: len(data) // 3])
    out = run("data", "load", str(src), home=tmp_path / "home", env=WIDE)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {src / 'gp_events.parquet'}: not a readable Parquet file")


def test_empty_or_truncated_extracts_cannot_replace_a_good_warehouse(extracts: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = _loaded(home, extracts)
    warehouse = home / "warehouse" / "phm.duckdb"
    before = warehouse.stat().st_mtime_ns
    header_only = tmp_path / "header_only"
    shutil.copytree(extracts, header_only)
    (header_only / "patients.parquet").unlink()
    names = pq.read_schema(extracts / "patients.parquet").names
    (header_only / "patients.csv").write_text(",".join(names) + "\n")
    for extra in ([], ["--allow-shrink"]):  # no patient at all is never a plausible extract
        out = run("data", "load", str(header_only), *extra, home=home, env=WIDE)
        assert out.returncode == 2 and "patients.csv: no patient could be loaded (0 row(s) read)" in out.stderr
    truncated = tmp_path / "truncated"
    shutil.copytree(extracts, truncated)
    events = pq.read_table(truncated / "gp_events.parquet")
    pq.write_table(events.slice(0, events.num_rows // 3), truncated / "gp_events.parquet")
    out = run("data", "load", str(truncated), home=home, env=WIDE)
    assert out.returncode == 2 and "this load would shrink the warehouse sharply: gp_events" in out.stderr
    assert "--allow-shrink" in out.stderr and warehouse.stat().st_mtime_ns == before
    allowed = run("data", "load", str(truncated), "--allow-shrink", home=home, env=WIDE)
    assert allowed.returncode == 0 and "Shrank (allowed by --allow-shrink): gp_events" in allowed.stdout
    after = json.loads((home / "reports" / "load_report.json").read_text())
    assert after["tables"]["gp_events"]["rows_loaded"] < good["tables"]["gp_events"]["rows_loaded"] / 2
