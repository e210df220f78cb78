"""The drop folder: files of messages a hospital's integration engine writes (`*.hl7`: one or more ADT messages;
`*.json`: a FHIR Encounter or Bundle; `*.ndjson`: one resource a line). Read files are moved to `done/` so a
watched folder is read once (re-reading is harmless: the store is idempotent on message id)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

SUFFIXES = {".hl7", ".txt", ".json", ".ndjson"}
DONE = "done"
REFUSED = "refused"  # files too large to read, moved aside
MAX_MB = 50  # a drop-folder file is read whole into memory: larger ones are refused (the feed's posts are 1 MB)


def split_hl7(text: str) -> list[str]:
    """A file or HTTP body of ADT messages -> one text per message (each starts at an `MSH|` segment; MLLP
    framing characters are dropped)."""
    text = text.replace("\x0b", "").replace("\x1c", "")
    parts = re.split(r"(?:^|[\r\n]+)(?=MSH\|)", text.strip())
    return [p.strip() for p in parts if p.strip()]


def messages_in(text: str, ndjson: bool = False) -> list[str]:
    """The messages of one file or body."""
    stripped = text.lstrip()
    if stripped.startswith("MSH|"):
        return split_hl7(text)
    if ndjson:
        return [line for line in text.splitlines() if line.strip()]
    return [text] if stripped else []


def pending(folder: Path) -> list[Path]:
    """Files waiting in the drop folder, oldest first (name order breaks ties); hidden files are being written."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def read(files: list[Path]) -> Iterator[tuple[str, str]]:
    """(origin, message) pairs; the origin is the folder's kind, not the file's name (names may carry identifiers).
    A file gone since it was listed was taken by another reader of the folder (it stored its messages): skipped."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        for message in messages_in(text, ndjson=path.suffix.lower() == ".ndjson"):
            yield "drop folder", message


def too_large(files: list[Path], max_mb: float = MAX_MB) -> list[Path]:
    """The files larger than `max_mb` megabytes (not read: a sender splits them)."""
    out = []
    for path in files:
        try:
            if path.stat().st_size > max_mb * 1_000_000:
                out.append(path)
        except FileNotFoundError:  # taken by another reader
            continue
    return out


def mark_done(folder: Path, files: list[Path], into: str = DONE) -> None:
    """Move read files to `done/` (or `into`), never over an earlier file of the same name (a sender may reuse
    names: the later one gets a numbered suffix); a file another reader has moved already is left to it."""
    done = folder / into
    done.mkdir(exist_ok=True)
    for path in files:
        target, n = done / path.name, 1
        while target.exists() or target.is_symlink():
            target, n = done / f"{path.stem}.{n}{path.suffix}", n + 1
        try:
            path.rename(target)
        except FileNotFoundError:
            continue
