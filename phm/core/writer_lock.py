"""One writer at a time for a file that is replaced whole (the warehouse): an OS lock on a small file beside it
(`.<name>.lock`, kept; it holds the pid and the job of the writer holding the lock). A second writer is refused at
once, naming the one at work, rather than racing it (the last rename would silently win: a load's new warehouse
replaced by an absorb's copy of the old one, or the reverse). The OS releases the lock when its process ends, so a
killed writer never leaves it held."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriterBusy(RuntimeError):
    """Another process is writing the file."""


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@contextmanager
def sole_writer(target: Path, job: str) -> Iterator[None]:
    """Hold `target`'s writer lock while the block runs (`job`: what this writer is, e.g. "phm data load");
    WriterBusy when another process holds it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(target), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise WriterBusy(f"{target}: {holder} is writing it now; wait for it to finish and try again") from None
        _note(fd, f"{job} (process {os.getpid()})")
        try:
            yield
        finally:
            _note(fd, "")
    finally:
        os.close(fd)


def _note(fd: int, text: str) -> None:
    """Who holds the lock, for the refusal of the next writer; best effort (a full disk must not stop the writer,
    which then fails with its own clear error)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass
