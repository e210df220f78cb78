"""An append-only, tamper-evident ledger as JSON lines: the clinical safety hazard log (DCB0129
style) and the service's access log both use it.

Each entry carries the SHA-256 of the previous entry, so editing or deleting any earlier line breaks
the chain; `verify` finds it and `append` refuses to write after a broken chain. Entries are only
ever appended (the file is opened in append mode under an exclusive lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

GENESIS = "0" * 64


class LedgerError(RuntimeError):
    """The ledger has been altered (or cannot be read)."""


def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "entry_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LedgerError(f"{path}: line {n} is not valid JSON ({exc.msg})") from exc
    return entries


def verify(path: Path) -> list[str]:
    """Problems found in the chain (empty when the log is intact)."""
    problems = []
    prev = GENESIS
    try:
        entries = read(path)
    except LedgerError as exc:
        return [str(exc)]
    for n, e in enumerate(entries, start=1):
        if e.get("seq") != n:
            problems.append(f"line {n}: sequence number {e.get('seq')} (expected {n}): an entry was removed or moved")
        if e.get("prev_sha256") != prev:
            problems.append(f"line {n}: does not follow the entry before it (chain broken)")
        if e.get("entry_sha256") != _digest(e):
            problems.append(f"line {n}: content does not match its hash (edited after it was written)")
        prev = e.get("entry_sha256", "")
    return problems


def _last_line(path: Path) -> str | None:
    """The last non-empty line, read from the end of the file (cheap for long logs)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        block, data = 4096, b""
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            data = fh.read(end - start) + data
            lines = [ln for ln in data.splitlines() if ln.strip()]
            if len(lines) >= 2 or start == 0:
                return lines[-1].decode() if lines else None
            end = start
    return None


def append(path: Path, kind: str, full_check: bool = True, **fields) -> dict:
    """Append one entry of `kind` ("hazard", "decision", "promotion", "access", ...) and return it.

    With `full_check` the whole chain is verified first (the hazard log: rare writes); without it
    only the last entry is (the access log: a write per request), and `verify` checks the rest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if full_check:
                problems = verify(path)
                if problems:
                    raise LedgerError(f"{path} has been altered; not appending. " + "; ".join(problems[:3]))
            line = _last_line(path)
            last = json.loads(line) if line else None
            if last is not None and last.get("entry_sha256") != _digest(last):
                raise LedgerError(f"{path}: the last entry has been altered; not appending")
            entry = {"seq": (last["seq"] + 1) if last else 1,
                     "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "kind": kind, **fields, "prev_sha256": last["entry_sha256"] if last else GENESIS}
            entry["entry_sha256"] = _digest(entry)
            fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return entry
