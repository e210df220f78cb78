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
lasting error.

This module appends (and adopts an old unsigned log); the rest lives beside it: the key and signed heads in
`phm.core.ledger_head`, the file's line layout and reading in `phm.core.ledger_file`, checking a log in
`phm.core.ledger_check`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from phm.core.ledger_check import Check, check
from phm.core.ledger_file import entry_line, last_hash, read, split_lines, torn_path
from phm.core.ledger_head import (
    GENESIS,
    Head,
    LedgerError,
    Signer,
    anchor_path,
    digest,
    entry_mac,
    read_head,
    signer,
    write_head,
)

log = logging.getLogger("phm.ledger")
__all__ = ["RESERVED", "adopt", "append"]

RESERVED = {"seq", "at", "kind", "prev_sha256", "entry_sha256", "mac"}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _catch_up(path: Path, fd: int, size: int, head: Head, sign: Signer) -> tuple[Head, int]:
    """Bytes after the signed head: signed entries written just before a crash are accepted (the head moves to
    them); a cut-off last line is set aside in `<log>.torn`; anything else is refused."""
    extra = os.pread(fd, size - head.size, head.size)
    lines, torn = split_lines(extra)
    seq, prev, end = head.seq, head.sha256, head.size
    for line in lines:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            raise LedgerError(f"{path}: text after the signed head that is not an entry; not appending") from None
        ok = (
            e.get("seq") == seq + 1
            and e.get("prev_sha256") == prev
            and e.get("entry_sha256") == digest(e)
            and e.get("mac") == entry_mac(sign.key, path.name, str(e.get("entry_sha256")))
        )
        if not ok:
            raise LedgerError(
                f"{path}: an entry after the signed head is not authentic (forged or altered); not appending"
            )
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
            raise LedgerError(
                f"{path} has entries but no signed head ({anchor}); not appending. Run "
                f"`phm audit log --verify` (or `phm access verify`) to see why"
            )
        return None, 0
    if size < head.size:
        raise LedgerError(
            f"{path} is shorter than its signed head says ({size:,} of {head.size:,} bytes; head: entry "
            f"{head.seq}): entries were deleted or the file emptied; not appending"
        )
    if size > head.size:
        return _catch_up(path, fd, size, head, sign)
    if last_hash(fd, size) != head.sha256:
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
            raise LedgerError(
                f"{path} is missing, but its signed head ({anchor}) remains: the log was deleted or "
                "moved. Not starting a new chain; restore the log from a backup"
            )
        _mkdirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot open the log ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        head, size = _prepare(path, fd, sign, anchor, full_check)
        key = sign.key if head is not None else sign.ensure_key(anchor)
        entry = {
            "seq": (head.seq if head else 0) + 1,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kind": kind,
            **fields,
            "prev_sha256": head.sha256 if head else GENESIS,
        }
        sha = digest(entry)
        mac = entry_mac(key, path.name, sha)
        line = entry_line(entry, sha, mac)
        try:
            os.lseek(fd, size, os.SEEK_SET)
            _write_all(fd, line)
            if full_check or sign.fsync:  # on disk before the head moves (the hazard log always)
                os.fdatasync(fd)
            _mkdirs(anchor.parent)
            write_head(
                anchor,
                key,
                Head(path.name, entry["seq"], sha, size + len(line), entry["at"], head.unsigned_until if head else 0),
            )
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
        size = fh.seek(0, 2) - len(split_lines(path.read_bytes())[1])
        key = sign.ensure_key(anchor)
        last = entries[-1]
        _mkdirs(anchor.parent)
        write_head(anchor, key, Head(path.name, last["seq"], last["entry_sha256"], size, last["at"], last["seq"]))
    log.warning("%s: adopted (head signed at entry %d)", path, last["seq"])
    return check(path)
