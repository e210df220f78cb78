"""Checking a ledger (see `phm.core.ledger`): the whole log against its hash chain, every entry's signature and
its signed head (`check`, `verify`), or only its end against the head, quickly, for a service at start
(`head_problems`)."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from phm.core.ledger_file import last_hash, split_lines, torn_path
from phm.core.ledger_head import GENESIS, Head, LedgerError, Signer, anchor_path, digest, entry_mac, read_head, signer


@dataclass
class Check:
    """What `check` found: `problems` mean the log was altered (or cannot be checked); `notes` are events worth
    knowing that are not tampering (a cut-off line from an interrupted write, lines set aside)."""

    path: Path
    entries: int = 0
    head: Head | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _entry_problems(entries: list[dict], sign: Signer, name: str, head: Head | None) -> list[str]:
    problems, prev, signed_seen, key_missing = [], GENESIS, False, False
    unsigned_until = head.unsigned_until if head else 0
    for n, e in enumerate(entries, start=1):
        if e.get("seq") != n:
            problems.append(f"line {n}: sequence number {e.get('seq')} (expected {n}): an entry was removed or moved")
        if e.get("prev_sha256") != prev:
            problems.append(f"line {n}: does not follow the entry before it (chain broken)")
        if e.get("entry_sha256") != digest(e):
            problems.append(f"line {n}: content does not match its hash (edited after it was written)")
        if "mac" in e:
            signed_seen = True
            if sign.key is None:
                key_missing = True
            elif e["mac"] != entry_mac(sign.key, name, str(e.get("entry_sha256"))):
                problems.append(
                    f"line {n}: signature does not match (written without the ledger key, or signed with another key)"
                )
        elif signed_seen or (head is not None and n > unsigned_until):
            problems.append(f"line {n}: unsigned entry among signed ones (inserted or rewritten)")
        prev = e.get("entry_sha256", "")
    if key_missing:
        problems.append(f"the ledger key is missing ({sign.source}): signatures cannot be checked")
    return problems


def check(path: Path) -> Check:
    """Check the whole log against its chain, its signatures and its signed head."""
    path = Path(path)
    sign = signer(path)
    anchor = anchor_path(path)
    out = Check(path)
    if anchor.exists():
        try:
            out.head = read_head(anchor, sign, path.name)
        except LedgerError as exc:
            out.problems.append(str(exc))
    if not path.exists():
        if anchor.exists():
            seq = f"{out.head.seq} entries, the last written {out.head.at}" if out.head else "entries"
            out.problems.append(
                f"the log file is missing, but its signed head ({anchor}) says it held {seq}: "
                "it was deleted or moved; restore it from a backup"
            )
        return out
    lines, torn = split_lines(path.read_bytes())
    entries = []
    for n, line in enumerate(lines, start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            out.problems.append(f"line {n} is not valid JSON ({exc.msg})")
            return out
    out.entries = len(entries)
    out.problems += _entry_problems(entries, sign, path.name, out.head)
    head = out.head
    if head is not None:
        last = entries[-1]["seq"] if entries else 0
        if not entries:
            out.problems.append(
                f"the log is empty, but its signed head says it held {head.seq} entries (the last "
                f"written {head.at}): it was emptied"
            )
        elif isinstance(last, int) and last < head.seq:
            out.problems.append(
                f"the log ends at entry {last}, but its signed head is entry {head.seq} (written "
                f"{head.at}): {head.seq - last} entr{'y was' if head.seq - last == 1 else 'ies were'} "
                "deleted from the end"
            )
        elif len(entries) >= head.seq and entries[head.seq - 1].get("entry_sha256") != head.sha256:
            out.problems.append(f"entry {head.seq} is not the one its signed head names (replaced)")
        elif len(entries) > head.seq:
            out.notes.append(
                f"{len(entries) - head.seq} signed entr{'y' if len(entries) - head.seq == 1 else 'ies'} "
                "after the signed head (a write interrupted before the head moved); the head moves on the "
                "next append"
            )
    elif entries:
        if any("mac" in e for e in entries):
            out.problems.append(
                f"its signed head ({anchor}) is missing: it was deleted, so entries cut from the end "
                "cannot be ruled out"
            )
        else:
            out.problems.append(
                "the log is not signed and has no signed head: written by an earlier version (or "
                "rewritten). After checking it, sign its head (`phm audit log --adopt` for the hazard "
                "log) so that later changes are detected"
            )
    if torn:
        out.notes.append(
            f"a cut-off last line ({len(torn)} bytes, from an interrupted write such as a full disk): it "
            f"is set aside in {torn_path(path).name} on the next append"
        )
    aside = torn_path(path)
    if aside.exists():
        count = aside.read_bytes().count(b"\n# set aside ")
        out.notes.append(f"{count} cut-off line(s) from interrupted writes were set aside in {aside}")
    return out


def verify(path: Path) -> list[str]:
    """Problems found (empty when the log is intact): an edited, moved, inserted or deleted entry, a forged
    signature, entries cut from the end, an emptied or deleted log, a deleted head."""
    return check(path).problems


def head_problems(path: Path) -> list[str]:
    """A quick check of the log's end against its signed head, without reading the whole log (for a service at
    start): a missing or emptied log, entries cut from the end, a deleted head. Empty when appending can go on."""
    path = Path(path)
    sign = signer(path)
    anchor = anchor_path(path)
    if not path.exists():
        return (
            [f"{path} is missing, but its signed head ({anchor}) remains: restore the log"] if anchor.exists() else []
        )
    try:
        with open(path, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            size = os.fstat(fh.fileno()).st_size
            head = read_head(anchor, sign, path.name) if anchor.exists() else None
            if head is None:
                return [f"{path} has entries but no signed head ({anchor})"] if size else []
            if size < head.size:
                return [
                    f"{path} ends before its signed head (entry {head.seq}): entries were deleted or it was emptied"
                ]
            if size == head.size and last_hash(fh.fileno(), size) != head.sha256:
                return [f"{path}: the last entry is not the one its signed head names (altered)"]
    except LedgerError as exc:
        return [str(exc)]
    return []
