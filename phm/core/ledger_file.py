"""The ledger's file: one JSON line per entry with its hash and signature last (so the signed head can be checked
against the file's last bytes), reading the complete entries, and the file beside the log where cut-off last lines
are set aside (see `phm.core.ledger`)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from phm.core.ledger_head import LedgerError

_TAG = re.compile(rb'"entry_sha256": "([0-9a-f]{64})", "mac": "([0-9a-f]{64})"\}\n$')


def torn_path(path: Path) -> Path:
    """Where cut-off last lines are kept once set aside (beside the log)."""
    return path.with_name(path.name + ".torn")


def entry_line(entry: dict, sha: str, mac: str) -> bytes:
    """One JSON line with the hash and signature last, so the head can be checked from the file's last bytes."""
    body = json.dumps(entry, sort_keys=True, default=str)
    return (body[:-1] + f', "entry_sha256": "{sha}", "mac": "{mac}"}}\n').encode()


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without their newline) and the cut-off tail after the last newline."""
    cut = data.rfind(b"\n") + 1
    return data[:cut].splitlines(), data[cut:]


def read(path: Path) -> list[dict]:
    """Every complete entry (a cut-off last line is not an entry)."""
    path = Path(path)
    if not path.exists():
        return []
    lines, _torn = split_lines(path.read_bytes())
    entries = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LedgerError(f"{path}: line {n} is not valid JSON ({exc.msg})") from exc
    return entries


def last_hash(fd: int, size: int) -> str | None:
    """The hash of the entry ending at byte `size`: from its last bytes when it was written by this version,
    else by parsing the whole last line."""
    if size == 0:
        return None
    tail = os.pread(fd, min(size, 200), size - min(size, 200))
    found = _TAG.search(tail)
    if found:
        return found.group(1).decode()
    start = size
    block = b""
    while start > 0 and block.count(b"\n") < 2:
        step = min(start, 1 << 16)
        start -= step
        block = os.pread(fd, step, start) + block
    lines, _ = split_lines(block)
    try:
        return json.loads(lines[-1]).get("entry_sha256")
    except (IndexError, json.JSONDecodeError):
        return None
