"""The tamper-evident ledger (hazard log and access log): hash chain, signed entries, a signed head kept
outside the log, torn lines set aside, failed appends rolled back and raised as `LedgerError`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from phm.core import ledger, ledger_check, ledger_file, ledger_head
from phm.core.ledger_head import LedgerError

LOGS = ["safety/hazard_log.jsonl", "security/access_log.jsonl"]


@pytest.fixture(params=LOGS)
def log(request, tmp_path: Path) -> Path:
    """A log under PHM_HOME (the autouse fixture points PHM_HOME at tmp_path/phm_home) with five entries."""
    path = tmp_path / "phm_home" / request.param
    for i in range(5):
        ledger.append(path, "access", full_check=request.param.startswith("safety"), user=f"u{i}", persons=i)
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _full(path: Path) -> bool:
    return path.name.startswith("hazard")


def test_intact_log_signed_entries_and_head_outside_the_log(log: Path) -> None:
    found = ledger_check.check(log)
    assert found.intact and found.entries == 5 and found.head.seq == 5 and not found.notes
    entries = ledger_file.read(log)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(len(e["mac"]) == 64 for e in entries)
    anchor = ledger_head.anchor_path(log)
    assert anchor.parent == log.parents[1] / "security" / "anchors" and anchor.exists()
    assert json.loads(anchor.read_text())["size"] == log.stat().st_size


def test_an_edited_line_is_detected(log: Path) -> None:
    lines = _lines(log)
    lines[2] = lines[2].replace('"user": "u2"', '"user": "u9"')
    log.write_text("".join(lines))
    assert any("line 3: content does not match its hash" in p for p in ledger_check.verify(log))
    if _full(log):  # the hazard log checks everything before each append
        with pytest.raises(LedgerError, match="altered"):
            ledger.append(log, "access", full_check=True, user="x")
    else:  # the access log checks only its end per request; verify still finds the edit
        ledger.append(log, "access", full_check=False, user="x")
        assert any("line 3: content does not match its hash" in p for p in ledger_check.verify(log))


def test_an_edited_last_line_stops_appending_even_without_a_full_check(log: Path) -> None:
    lines = _lines(log)
    entry = json.loads(lines[-1])
    entry["persons"] = 7  # same length; hash recomputed without the key
    from phm.core.ledger_head import digest

    entry["entry_sha256"] = digest(entry)
    log.write_text("".join(lines[:-1]) + json.dumps(entry) + "\n")
    problems = ledger_check.verify(log)
    assert any("line 5: signature does not match" in p for p in problems)
    assert any("entry 5 is not the one its signed head names" in p for p in problems)
    with pytest.raises(LedgerError):
        ledger.append(log, "access", full_check=False, user="x")


def test_a_deleted_middle_line_is_detected(log: Path) -> None:
    lines = _lines(log)
    log.write_text("".join(lines[:2] + lines[3:]))
    problems = ledger_check.verify(log)
    assert any("line 3: sequence number 4 (expected 3)" in p for p in problems)
    assert any("line 3: does not follow the entry before it" in p for p in problems)


def test_a_deleted_tail_is_detected_and_stops_appending(log: Path) -> None:
    log.write_text("".join(_lines(log)[:3]))
    problems = ledger_check.verify(log)
    assert problems == [p for p in problems if "deleted from the end" in p] and len(problems) == 1
    assert "ends at entry 3, but its signed head is entry 5" in problems[0] and "2 entries were deleted" in problems[0]
    with pytest.raises(LedgerError, match="shorter than its signed head"):
        ledger.append(log, "access", full_check=False, user="x")
    assert len(ledger_file.read(log)) == 3  # nothing written after the cut


def test_an_emptied_log_is_detected(log: Path) -> None:
    log.write_text("")
    assert any("the log is empty, but its signed head says it held 5 entries" in p for p in ledger_check.verify(log))
    with pytest.raises(LedgerError):
        ledger.append(log, "access", full_check=False, user="x")
    assert log.read_text() == ""


def test_a_deleted_log_is_detected_and_no_fresh_chain_starts(log: Path) -> None:
    log.unlink()
    assert any("the log file is missing, but its signed head" in p for p in ledger_check.verify(log))
    assert ledger_check.head_problems(log)
    with pytest.raises(LedgerError, match="Not starting a new chain"):
        ledger.append(log, "access", full_check=False, user="x")
    assert not log.exists()


def test_a_deleted_head_is_detected(log: Path) -> None:
    ledger_head.anchor_path(log).unlink()
    assert any("signed head" in p and "is missing" in p for p in ledger_check.verify(log))
    with pytest.raises(LedgerError, match="no signed head"):
        ledger.append(log, "access", full_check=False, user="x")


def test_a_forged_head_or_one_taken_from_the_other_log_is_refused(log: Path, tmp_path: Path) -> None:
    anchor = ledger_head.anchor_path(log)
    head = json.loads(anchor.read_text())
    anchor.write_text(json.dumps({**head, "seq": 3}))
    assert any("does not match its signature" in p for p in ledger_check.verify(log))
    other = tmp_path / "phm_home" / next(p for p in LOGS if not log.as_posix().endswith(p))
    ledger.append(other, "access", full_check=False, user="y")
    anchor.write_bytes(ledger_head.anchor_path(other).read_bytes())
    assert any("belongs to" in p for p in ledger_check.verify(log))


def test_entries_forged_without_the_key_are_detected(log: Path) -> None:
    """Someone who can write the file but not read the key appends an entry with a correct hash chain."""
    from phm.core.ledger_head import digest

    last = ledger_file.read(log)[-1]
    forged = {
        "seq": 6,
        "at": last["at"],
        "kind": "access",
        "user": "nobody",
        "persons": 0,
        "prev_sha256": last["entry_sha256"],
    }
    forged["entry_sha256"] = digest(forged)
    forged["mac"] = "0" * 64
    with open(log, "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    assert any("line 6: signature does not match" in p for p in ledger_check.verify(log))
    with pytest.raises(LedgerError, match="not authentic"):
        ledger.append(log, "access", full_check=False, user="x")


def test_a_lost_key_is_reported_and_never_silently_replaced(log: Path, tmp_path: Path) -> None:
    from phm.core import ledger_head

    key = tmp_path / "phm_home" / "security" / "ledger.key"
    key.unlink()
    ledger_head._SIGNERS.clear()  # as a new process would find it (a running one keeps the key it read)
    assert any("ledger key is missing" in p for p in ledger_check.verify(log))
    with pytest.raises(LedgerError, match="key is missing"):
        ledger.append(log, "access", full_check=False, user="x")
    assert not key.exists()


def test_a_torn_last_line_is_set_aside_and_reported_not_fatal(log: Path) -> None:
    whole = log.read_bytes()
    torn = b'{"at": "2025-01-01T00:00:00+00:00", "kind": "access", "persons": 3, "us'
    with open(log, "ab") as fh:
        fh.write(torn)  # a write cut off by a crash or a full disk
    found = ledger_check.check(log)
    assert (
        found.intact and found.entries == 5 and any(f"cut-off last line ({len(torn)} bytes" in n for n in found.notes)
    )
    assert len(ledger_file.read(log)) == 5
    entry = ledger.append(log, "access", full_check=_full(log), user="after")
    assert entry["seq"] == 6 and log.read_bytes().startswith(whole)
    aside = ledger_file.torn_path(log)
    assert torn in aside.read_bytes() and stat.S_IMODE(aside.stat().st_mode) == 0o600
    found = ledger_check.check(log)
    assert found.intact and found.entries == 6 and any("1 cut-off line(s)" in n for n in found.notes)


def test_a_head_left_behind_by_a_crash_catches_up(log: Path) -> None:
    """The process died after writing an entry, before moving the head: the signed entry is accepted."""
    anchor = ledger_head.anchor_path(log)
    before = anchor.read_bytes()
    ledger.append(log, "access", full_check=False, user="u5")
    anchor.write_bytes(before)
    found = ledger_check.check(log)
    assert found.intact and any("1 signed entry after the signed head" in n for n in found.notes)
    assert ledger.append(log, "access", full_check=_full(log), user="u6")["seq"] == 7
    assert ledger_check.check(log).intact and ledger_check.check(log).head.seq == 7


def test_a_full_disk_raises_ledger_error_and_leaves_nothing_half_written(log: Path, tmp_path: Path) -> None:
    """A real file-size limit (RLIMIT_FSIZE) in a child process: the append fails, is rolled back, and the
    next append (no limit) goes on from the same head with no repair by hand."""
    size = log.stat().st_size
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from phm.core import ledger, ledger_head\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 40}, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    ledger.append(Path({str(log)!r}), 'access', full_check=False, user='full', persons=1)\n"
        "except ledger_head.LedgerError as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("REFUSED") and "cannot append (File too large)" in child.stdout
    assert log.stat().st_size == size and ledger_check.check(log).intact and not ledger_check.check(log).notes
    assert ledger.append(log, "access", full_check=False, user="later")["seq"] == 6
    assert ledger_check.check(log).intact


def test_files_are_owner_only(log: Path, tmp_path: Path) -> None:
    for path in (log, ledger_head.anchor_path(log), tmp_path / "phm_home" / "security" / "ledger.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(ledger_head.anchor_path(log).parent.stat().st_mode) == 0o700


def test_a_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_LEDGER_KEY", "k" * 32)
    path = tmp_path / "phm_home" / "safety" / "hazard_log.jsonl"
    ledger.append(path, "hazard", hazard_id="H-1")
    assert ledger_check.verify(path) == [] and not (tmp_path / "phm_home" / "security" / "ledger.key").exists()
    monkeypatch.setenv("PHM_LEDGER_KEY", "j" * 32)
    assert any("signature" in p for p in ledger_check.verify(path))
    monkeypatch.setenv("PHM_LEDGER_KEY", "short")
    with pytest.raises(LedgerError, match="too short"):
        ledger_check.verify(path)


def test_the_home_comes_from_the_log_path_not_the_environment(tmp_path: Path) -> None:
    """One process may keep the ledgers of several homes (a home's key and heads sit in its own security folder)."""
    path = tmp_path / "other_home" / "safety" / "hazard_log.jsonl"
    ledger.append(path, "hazard", hazard_id="H-1")
    assert (
        ledger_head.anchor_path(path)
        == tmp_path / "other_home" / "security" / "anchors" / "safety__hazard_log.jsonl.head"
    )
    assert (tmp_path / "other_home" / "security" / "ledger.key").exists()
    assert not (tmp_path / "phm_home" / "security").exists()
    path.unlink()
    assert ledger_check.verify(path)


def test_an_unsigned_log_from_an_earlier_version_is_flagged_until_adopted(tmp_path: Path) -> None:
    from phm.core.ledger_head import GENESIS, digest

    path = tmp_path / "phm_home" / "safety" / "hazard_log.jsonl"
    path.parent.mkdir(parents=True)
    prev, lines = GENESIS, []
    for seq in (1, 2):  # the format before signed heads
        e = {"seq": seq, "at": "2025-01-01T00:00:00+00:00", "kind": "hazard", "prev_sha256": prev}
        e["entry_sha256"] = prev = digest(e)
        lines.append(json.dumps(e, sort_keys=True) + "\n")
    path.write_text("".join(lines))
    assert any("not signed and has no signed head" in p for p in ledger_check.verify(path))
    with pytest.raises(LedgerError, match="no signed head"):
        ledger.append(path, "hazard", hazard_id="H-2")
    assert ledger.adopt(path).intact
    ledger.append(path, "hazard", hazard_id="H-2")
    assert ledger_check.verify(path) == [] and ledger_file.read(path)[-1]["seq"] == 3
    path.write_text("".join(lines[:1]) + path.read_text().split("\n", 1)[1])  # the unsigned entry 2 kept
    assert ledger_check.verify(path) == []
    path.write_text(lines[0])  # cut back to the adopted part
    assert any("deleted from the end" in p for p in ledger_check.verify(path))


def test_reserved_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        ledger.append(tmp_path / "phm_home" / "x.jsonl", "access", seq=9)
