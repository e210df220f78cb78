"""A snapshot's files as its job wrote them: the SHA-256 of every table file, kept in the snapshot's manifest
(`SUMS`) when it is published (`serving.batch.store.publish_snapshot`), and checked whenever the live snapshot is
read, so a file edited, replaced, truncated or added since is never served."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SUMS = "sha256"  # the manifest's record of every file the job wrote: path in the folder -> SHA-256


class SnapshotAltered(RuntimeError):
    """The live snapshot's files are not those its job wrote (edited, replaced, truncated or added to since)."""


def file_sums(folder: Path, durable: bool = False, tables: set[str] | None = None) -> dict[str, str]:
    """SHA-256 of every file in `folder` (or only under its top-level entries `tables`; Spark writes folders of
    parts), the manifest and the writer's lock (hidden files at the top) excepted; with `durable`, each is also fsynced."""
    out = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if not f.is_file() or (len(rel.parts) == 1 and (f.name == "manifest.json" or f.name.startswith("."))):
            continue
        if tables is not None and rel.parts[0] not in tables:
            continue
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            if durable:
                os.fsync(fh.fileno())
        out[rel.as_posix()] = digest.hexdigest()
    return out


def check_files(folder: Path, meta: dict) -> None:
    """`SnapshotAltered` unless the tables in `folder` are, byte for byte, those its job wrote (`SUMS`)."""
    sums = meta.get(SUMS)
    if not isinstance(sums, dict) or not sums:
        raise SnapshotAltered(
            f"snapshot {folder.name} records no checksums of its files (written before they were kept), so it "
            "cannot be shown to be as scored; run `phm score daily`"
        )
    now = file_sums(folder, tables={Path(k).parts[0] for k in sums})
    changed = sorted(k for k in sums.keys() | now.keys() if sums.get(k) != now.get(k))
    if changed:
        raise SnapshotAltered(
            f"snapshot {folder.name}: {len(changed)} file(s) differ from those its job wrote ({', '.join(changed[:5])}"
            f"{', ...' if len(changed) > 5 else ''}: edited, replaced, truncated or added since), so it is not "
            "served; run `phm score daily` to score again"
        )
