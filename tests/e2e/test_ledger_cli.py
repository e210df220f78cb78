"""`phm audit log --verify` on a real hazard log: an edited line, a deleted middle line, a deleted tail, an
emptied file and a deleted file are each detected (exit code 2, the reason named); an intact log passes; a
log from before signed heads is flagged until adopted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import run

from serving.governance import hazard_log

pytestmark = pytest.mark.slow  # a `phm` subprocess per test


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A PHM home (the autouse fixture's PHM_HOME) whose hazard log holds four entries, written in-process with
    the same key file the `phm` subprocess reads."""
    root = tmp_path / "phm_home"
    log = root / "safety" / "hazard_log.jsonl"
    hazard_log.append(
        log,
        "hazard",
        model="emergency_admission",
        version=1,
        hazard_id="H-1",
        hazard="under-identifies",
        risk_rating="medium",
    )
    hazard_log.append(log, "audit", model="emergency_admission", version=1, outcome="1 flag", report_sha256="ab" * 32)
    hazard_log.append(
        log,
        "decision",
        model="emergency_admission",
        version=1,
        decision="approved",
        by="Dr A",
        reason="controls in place",
    )
    hazard_log.append(
        log, "promotion", model="emergency_admission", version=1, alias="champion", by="Dr A", basis="approved"
    )
    return root


def _log(home: Path) -> Path:
    return home / "safety" / "hazard_log.jsonl"


def _verify(home: Path):
    return run("audit", "log", "--verify", home=home, env={"COLUMNS": "400"})


def test_an_intact_log_passes_and_is_shown(home: Path) -> None:
    shown = run("audit", "log", home=home, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "Hazard log intact (4 entries; signed head at entry 4)" in shown.stdout and "Dr A" in shown.stdout


def test_an_edited_line(home: Path) -> None:
    lines = _log(home).read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("controls in place", "no controls needed")
    _log(home).write_text("".join(lines))
    out = _verify(home)
    assert out.returncode == 2 and "line 3: content does not match its hash" in out.stderr


def test_a_deleted_middle_line(home: Path) -> None:
    lines = _log(home).read_text().splitlines(keepends=True)
    _log(home).write_text("".join(lines[:1] + lines[2:]))
    out = _verify(home)
    assert out.returncode == 2 and "line 2: sequence number 3 (expected 2)" in out.stderr


def test_a_deleted_tail(home: Path) -> None:
    lines = _log(home).read_text().splitlines(keepends=True)
    _log(home).write_text("".join(lines[:2]))  # the decision and the promotion removed
    out = _verify(home)
    assert out.returncode == 2 and "the log ends at entry 2, but its signed head is entry 4" in out.stderr
    assert "2 entries were deleted from the end" in out.stderr


def test_an_emptied_file(home: Path) -> None:
    _log(home).write_text("")
    out = _verify(home)
    assert out.returncode == 2 and "the log is empty, but its signed head says it held 4 entries" in out.stderr


def test_a_deleted_file(home: Path) -> None:
    _log(home).unlink()
    out = _verify(home)
    assert out.returncode == 2 and "the log file is missing, but its signed head" in out.stderr
    assert "held 4 entries" in out.stderr and not _log(home).exists()


def test_a_deleted_log_and_head_folder_leaves_the_head_elsewhere(home: Path) -> None:
    """The head is kept outside the log's folder: removing the whole safety folder is still detected."""
    import shutil

    shutil.rmtree(home / "safety")
    out = _verify(home)
    assert out.returncode == 2 and "the log file is missing" in out.stderr


def test_a_torn_last_line_is_a_note_not_an_alteration(home: Path) -> None:
    with open(_log(home), "ab") as fh:
        fh.write(b'{"at": "2026-01-01T00:00:00+00:00", "kind": "deci')
    out = _verify(home)
    assert out.returncode == 0, out.stderr
    assert "Note: a cut-off last line (49 bytes" in out.stdout and "Hazard log intact (4 entries" in out.stdout


def test_a_log_from_before_signed_heads_is_flagged_until_adopted(tmp_path: Path) -> None:
    from phm.core.ledger_head import GENESIS, digest

    home = tmp_path / "old_home"
    log = home / "safety" / "hazard_log.jsonl"
    log.parent.mkdir(parents=True)
    e = {"seq": 1, "at": "2025-01-01T00:00:00+00:00", "kind": "hazard", "hazard_id": "H-1", "prev_sha256": GENESIS}
    e["entry_sha256"] = digest(e)
    log.write_text(json.dumps(e, sort_keys=True) + "\n")
    out = _verify(home)
    assert out.returncode == 2 and "not signed and has no signed head" in out.stderr and "--adopt" in out.stderr
    adopted = run("audit", "log", "--verify", "--adopt", home=home)
    assert (
        adopted.returncode == 0
        and "Signed the head" in adopted.stdout
        and "Hazard log intact (1 entries" in adopted.stdout
    )
    log.write_text("")
    assert _verify(home).returncode == 2


@pytest.mark.parametrize("args", [("audit", "log"), ("access", "verify")])
def test_a_short_ledger_key_is_a_plain_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A key too short to sign with stops the command with the reason and exit 2, not a traceback."""
    done = run(*args, home=tmp_path / "home", env={"PHM_LEDGER_KEY": "k"})
    assert done.returncode == 2, done.stderr
    assert "PHM_LEDGER_KEY is too short" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "╭" not in done.stderr
