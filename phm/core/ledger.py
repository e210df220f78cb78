"""An append-only, tamper-evident ledger as JSON lines: the clinical safety hazard log (DCB0129 style) and
the service's access log both use it.

Each entry carries the SHA-256 of the entry before it (a hash chain: editing, moving or deleting an earlier
line breaks it) and an HMAC of its hash under the ledger key, so no one without the key can write an entry
that verifies. The chain alone cannot show that entries were cut from the end, or that the whole file was
emptied or deleted; so every append also writes the log's *signed head* (sequence number, hash and byte
length of the last entry, HMAC-signed) to a file outside the log (`anchor_path`): a log that ends before its
head, or is gone while its head remains, fails `verify`, and `append` refuses to go on (or to start a fresh
chain) until someone restores it.

The key comes from `PHM_LEDGER_KEY` or a file kept apart from the logs (`ledger_key_file`, default
`<home>/security/ledger.key`, 0600, created on the first append). Appends hold an exclusive lock; a
write that fails (disk full) is rolled back and raises `LedgerError`, so callers can fail closed; a
cut-off last line left by a crash is moved to `<log>.torn` on the next append and reported, never a
lasting error. The layout of the signed head and its checks live in `phm.core.ledger_head`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from phm.core.ledger_head import (GENESIS, Head, LedgerError, Signer, anchor_path, digest, entry_mac, read_head,
                                  signer, write_head)

log = logging.getLogger("phm.ledger")
__all__ = ["GENESIS", "Check", "LedgerError", "adopt", "anchor_path", "append", "check", "head_problems", "read",
           "torn_path", "verify"]

RESERVED = {"seq", "at", "kind", "prev_sha256", "entry_sha256", "mac"}
_TAG = re.compile(rb'"entry_sha256": "([0-9a-f]{64})", "mac": "([0-9a-f]{64})"\}\n$')


def torn_path(path: Path) -> Path:
    """Where cut-off last lines are kept once set aside (beside the log)."""
    return path.with_name(path.name + ".torn")


def _line(entry: dict, sha: str, mac: str) -> bytes:
    """One JSON line with the hash and signature last, so the head can be checked from the file's last bytes."""
    body = json.dumps(entry, sort_keys=True, default=str)
    return (body[:-1] + f', "entry_sha256": "{sha}", "mac": "{mac}"}}\n').encode()


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without their newline) and the cut-off tail after the last newline."""
    cut = data.rfind(b"\n") + 1
    return data[:cut].splitlines(), data[cut:]


def read(path: Path) -> list[dict]:
    """Every complete entry (a cut-off last line is not an entry)."""
    path = Path(path)
    if not path.exists():
        return []
    lines, _torn = _split(path.read_bytes())
    entries = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LedgerError(f"{path}: line {n} is not valid JSON ({exc.msg})") from exc
    return entries


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
                problems.append(f"line {n}: signature does not match (written without the ledger key, or signed "
                                "with another key)")
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
            out.problems.append(f"the log file is missing, but its signed head ({anchor}) says it held {seq}: "
                                "it was deleted or moved; restore it from a backup")
        return out
    lines, torn = _split(path.read_bytes())
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
            out.problems.append(f"the log is empty, but its signed head says it held {head.seq} entries (the last "
                                f"written {head.at}): it was emptied")
        elif isinstance(last, int) and last < head.seq:
            out.problems.append(f"the log ends at entry {last}, but its signed head is entry {head.seq} (written "
                                f"{head.at}): {head.seq - last} entr{'y was' if head.seq - last == 1 else 'ies were'} "
                                "deleted from the end")
        elif len(entries) >= head.seq and entries[head.seq - 1].get("entry_sha256") != head.sha256:
            out.problems.append(f"entry {head.seq} is not the one its signed head names (replaced)")
        elif len(entries) > head.seq:
            out.notes.append(f"{len(entries) - head.seq} signed entr{'y' if len(entries) - head.seq == 1 else 'ies'} "
                             "after the signed head (a write interrupted before the head moved); the head moves on the "
                             "next append")
    elif entries:
        if any("mac" in e for e in entries):
            out.problems.append(f"its signed head ({anchor}) is missing: it was deleted, so entries cut from the end "
                                "cannot be ruled out")
        else:
            out.problems.append("the log is not signed and has no signed head: written by an earlier version (or "
                                "rewritten). After checking it, sign its head (`phm audit log --adopt` for the hazard "
                                "log) so that later changes are detected")
    if torn:
        out.notes.append(f"a cut-off last line ({len(torn)} bytes, from an interrupted write such as a full disk): it "
                         f"is set aside in {torn_path(path).name} on the next append")
    aside = torn_path(path)
    if aside.exists():
        count = aside.read_bytes().count(b"\n# set aside ")
        out.notes.append(f"{count} cut-off line(s) from interrupted writes were set aside in {aside}")
    return out


def verify(path: Path) -> list[str]:
    """Problems found (empty when the log is intact): an edited, moved, inserted or deleted entry, a forged
    signature, entries cut from the end, an emptied or deleted log, a deleted head."""
    return check(path).problems


# ---- appending ------------------------------------------------------------------------------------------
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_hash(fd: int, size: int) -> str | None:
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
    lines, _ = _split(block)
    try:
        return json.loads(lines[-1]).get("entry_sha256")
    except (IndexError, json.JSONDecodeError):
        return None


def _catch_up(path: Path, fd: int, size: int, head: Head, sign: Signer) -> tuple[Head, int]:
    """Bytes after the signed head: signed entries written just before a crash are accepted (the head moves to
    them); a cut-off last line is set aside in `<log>.torn`; anything else is refused."""
    extra = os.pread(fd, size - head.size, head.size)
    lines, torn = _split(extra)
    seq, prev, end = head.seq, head.sha256, head.size
    for line in lines:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            raise LedgerError(f"{path}: text after the signed head that is not an entry; not appending") from None
        ok = (e.get("seq") == seq + 1 and e.get("prev_sha256") == prev and e.get("entry_sha256") == digest(e)
              and e.get("mac") == entry_mac(sign.key, path.name, str(e.get("entry_sha256"))))
        if not ok:
            raise LedgerError(f"{path}: an entry after the signed head is not authentic (forged or altered); "
                              "not appending")
        seq, prev, end = seq + 1, e["entry_sha256"], end + len(line) + 1
    if torn:
        aside = torn_path(path)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with open(aside, "ab") as fh:
            fh.write(f"\n# set aside {stamp}: {len(torn)} bytes after entry {seq} of {path.name}\n".encode() + torn)
            fh.flush()
            os.fsync(fh.fileno())
        os.ftruncate(fd, end)
        log.warning("%s: a cut-off last line (%d bytes) was set aside in %s", path, len(torn), aside)
    return Head(path.name, seq, prev, end, head.at, head.unsigned_until), end


def _prepare(path: Path, fd: int, sign: Signer, anchor: Path, full_check: bool) -> tuple[Head | None, int]:
    """The head to append after (None for a new log) and the log's length, once the log is known to be whole."""
    if full_check:
        found = check(path)
        if found.problems:
            raise LedgerError(f"{path} has been altered; not appending. " + "; ".join(found.problems[:3]))
    size = os.fstat(fd).st_size
    head = read_head(anchor, sign, path.name) if anchor.exists() else None
    if head is None:
        if size:
            raise LedgerError(f"{path} has entries but no signed head ({anchor}); not appending. Run "
                              f"`phm audit log --verify` (or `phm access verify`) to see why")
        return None, 0
    if size < head.size:
        raise LedgerError(f"{path} is shorter than its signed head says ({size:,} of {head.size:,} bytes; head: entry "
                          f"{head.seq}): entries were deleted or the file emptied; not appending")
    if size > head.size:
        return _catch_up(path, fd, size, head, sign)
    if _last_hash(fd, size) != head.sha256:
        raise LedgerError(f"{path}: the last entry is not the one its signed head names (altered); not appending")
    return head, size


def append(path: Path, kind: str, full_check: bool = True, **fields) -> dict:
    """Append one entry of `kind` ("hazard", "decision", "promotion", "access", ...) and return it.

    With `full_check` the whole log is checked first (the hazard log: rare writes); without it only its end
    against the signed head (the access log: a write per request), and `verify` checks the rest. Raises
    `LedgerError` when the log was altered, or the entry cannot be written (disk full): nothing is half-written."""
    path = Path(path)
    clash = RESERVED & set(fields)
    if clash:
        raise ValueError(f"reserved ledger field(s) {sorted(clash)}")
    sign = signer(path)
    anchor = anchor_path(path)
    try:
        if not path.exists() and anchor.exists():
            raise LedgerError(f"{path} is missing, but its signed head ({anchor}) remains: the log was deleted or "
                              "moved. Not starting a new chain; restore the log from a backup")
        _mkdirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot open the log ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        head, size = _prepare(path, fd, sign, anchor, full_check)
        key = sign.key if head is not None else sign.ensure_key(anchor)
        entry = {"seq": (head.seq if head else 0) + 1, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "kind": kind, **fields, "prev_sha256": head.sha256 if head else GENESIS}
        sha = digest(entry)
        mac = entry_mac(key, path.name, sha)
        line = _line(entry, sha, mac)
        try:
            os.lseek(fd, size, os.SEEK_SET)
            _write_all(fd, line)
            if full_check or sign.fsync:  # on disk before the head moves (the hazard log always)
                os.fdatasync(fd)
            _mkdirs(anchor.parent)
            write_head(anchor, key, Head(path.name, entry["seq"], sha, size + len(line), entry["at"],
                                         head.unsigned_until if head else 0))
        except OSError as exc:
            try:
                os.ftruncate(fd, size)  # the entry is not kept without its head: nothing half-written remains
            except OSError:
                pass  # a cut-off line is set aside on the next append
            raise LedgerError(f"{path}: cannot append ({exc.strerror}); the entry was not written") from exc
        return {**entry, "entry_sha256": sha, "mac": mac}
    except OSError as exc:
        raise LedgerError(f"{path}: cannot append ({exc.strerror})") from exc
    finally:
        os.close(fd)  # closing releases the lock


def _mkdirs(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def adopt(path: Path) -> Check:
    """Sign the head of a log written before heads were signed (after checking its chain), so that from now on
    entries cut from its end, or its deletion, are detected. Its existing entries stay unsigned."""
    path = Path(path)
    sign = signer(path)
    anchor = anchor_path(path)
    if anchor.exists():
        raise LedgerError(f"{path} already has a signed head ({anchor})")
    if not path.exists():
        raise LedgerError(f"{path}: no such log")
    with open(path, "rb+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        found = check(path)
        unsigned = "the log is not signed and has no signed head"
        real = [p for p in found.problems if not p.startswith(unsigned)]
        if real:
            raise LedgerError(f"{path} cannot be adopted: " + "; ".join(real[:3]))
        entries = read(path)
        if not entries:
            raise LedgerError(f"{path} has no entries to adopt")
        size = fh.seek(0, 2) - len(_split(path.read_bytes())[1])
        key = sign.ensure_key(anchor)
        last = entries[-1]
        _mkdirs(anchor.parent)
        write_head(anchor, key, Head(path.name, last["seq"], last["entry_sha256"], size, last["at"], last["seq"]))
    log.warning("%s: adopted (head signed at entry %d)", path, last["seq"])
    return check(path)


def head_problems(path: Path) -> list[str]:
    """A quick check of the log's end against its signed head, without reading the whole log (for a service at
    start): a missing or emptied log, entries cut from the end, a deleted head. Empty when appending can go on."""
    path = Path(path)
    sign = signer(path)
    anchor = anchor_path(path)
    if not path.exists():
        return [f"{path} is missing, but its signed head ({anchor}) remains: restore the log"] if anchor.exists() else []
    try:
        with open(path, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            size = os.fstat(fh.fileno()).st_size
            head = read_head(anchor, sign, path.name) if anchor.exists() else None
            if head is None:
                return [f"{path} has entries but no signed head ({anchor})"] if size else []
            if size < head.size:
                return [f"{path} ends before its signed head (entry {head.seq}): entries were deleted or it was emptied"]
            if size == head.size and _last_hash(fh.fileno(), size) != head.sha256:
                return [f"{path}: the last entry is not the one its signed head names (altered)"]
    except LedgerError as exc:
        return [str(exc)]
    return []
