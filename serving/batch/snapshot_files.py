"""A snapshot's files as its job wrote them: the SHA-256 of every table file, kept in the snapshot's manifest
(`SUMS`) when it is published (`serving.batch.store.publish_snapshot`), and checked whenever the live snapshot is
read, so a file edited, replaced, truncated or added since is never served. The manifest itself is sealed with an
HMAC under the ledger key (`MAC`; `phm.core.ledger_head`), so rewriting the tables and their checksums together
is caught too by anyone without the key."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from phm.core import ledger_head

SUMS = "sha256"  # the manifest's record of every file the job wrote: path in the folder -> SHA-256
MAC = "manifest_hmac"  # HMAC-SHA256 of the rest of the manifest under the ledger key


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


def _signer(home: Path) -> ledger_head.Signer:
    return ledger_head.signer(home / "security" / "snapshots")


def _mac(key: bytes, manifest: dict) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != MAC}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, b"snapshot-manifest\n" + body.encode(), hashlib.sha256).hexdigest()


def sealed(home: Path, manifest: dict) -> str:
    """The manifest as written, JSON, with its HMAC under the ledger key (made for a new installation)."""
    sign = _signer(home)
    key = sign.key or sign.ensure_key(ledger_head.anchor_path(home / "security" / "snapshots"))
    plain = json.loads(json.dumps({k: v for k, v in manifest.items() if k != MAC}, default=str))
    return json.dumps({**plain, MAC: _mac(key, plain)}, indent=1)


def check_files(folder: Path, home: Path) -> None:
    """`SnapshotAltered` unless `folder`'s manifest is as its job sealed it and its tables are, byte for byte,
    those the job wrote (`SUMS`)."""
    meta = json.loads((folder / "manifest.json").read_text())
    sums = meta.get(SUMS)
    if not isinstance(sums, dict) or not sums:
        raise SnapshotAltered(
            f"snapshot {folder.name} records no checksums of its files (written before they were kept), so it "
            "cannot be shown to be as scored; run `phm score daily`"
        )
    key = _signer(home).key
    if not isinstance(meta.get(MAC), str) or key is None or not hmac.compare_digest(meta[MAC], _mac(key, meta)):
        raise SnapshotAltered(
            f"snapshot {folder.name}: its manifest "
            + ("is not sealed (written before manifests were)" if MAC not in meta else "is not as its job sealed it")
            + ", so it cannot be shown to be as scored; run `phm score daily`"
        )
    now = file_sums(folder, tables={Path(k).parts[0] for k in sums})
    changed = sorted(k for k in sums.keys() | now.keys() if sums.get(k) != now.get(k))
    if changed:
        raise SnapshotAltered(
            f"snapshot {folder.name}: {len(changed)} file(s) differ from those its job wrote ({', '.join(changed[:5])}"
            f"{', ...' if len(changed) > 5 else ''}: edited, replaced, truncated or added since), so it is not "
            "served; run `phm score daily` to score again"
        )
