"""The ledger's key and signed heads (see `phm.core.ledger`).

A head names a log's last entry (sequence number, hash, byte length of the log up to and including it, time)
and is HMAC-signed with the ledger key, so it cannot be forged or moved back without the key. A ledger at
`<home>/<folder>/<name>` (PHM's are `safety/hazard_log.jsonl` and `security/access_log.jsonl`) keeps its head
outside its own folder, in `<home>/security/anchors/<folder>__<name>.head`. The key is `PHM_LEDGER_KEY`, else
the contents of `ledger_key_file` (default `<home>/security/ledger.key`), created 0600 with 32 random bytes on
a new installation's first append. The home is taken from the log's path, not the environment, so one
process can keep the ledgers of several homes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from phm.core.settings import get_settings

GENESIS = "0" * 64
HEAD_BYTES = 512  # the head record, padded: one sector
ANCHORS = ("security", "anchors")


class LedgerError(RuntimeError):
    """The ledger has been altered, cannot be read or cannot be appended to (disk full): fail closed."""


def digest(entry: dict) -> str:
    """SHA-256 of an entry without its hash and signature (canonical JSON)."""
    body = {k: v for k, v in entry.items() if k not in ("entry_sha256", "mac")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def entry_mac(key: bytes | None, ledger: str, sha: str) -> str:
    if key is None:
        raise LedgerError("the ledger key is missing: entries cannot be signed or checked")
    return hmac.new(key, f"entry\n{ledger}\n{sha}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Head:
    ledger: str  # the log's file name: a head cannot be moved to another log
    seq: int
    sha256: str
    size: int  # bytes of the log up to and including entry `seq`
    at: str
    unsigned_until: int = 0  # entries up to here predate signing (`adopt`)

    def fields(self) -> dict:
        return {
            "ledger": self.ledger,
            "seq": self.seq,
            "sha256": self.sha256,
            "size": self.size,
            "at": self.at,
            "unsigned_until": self.unsigned_until,
        }

    def mac(self, key: bytes) -> str:
        body = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hmac.new(key, f"head\n{body}".encode(), hashlib.sha256).hexdigest()


class Signer:
    """The ledger key and settings of one home (cached: appends are frequent)."""

    def __init__(self, home: Path, env_key: str | None, key_file: Path, fsync: bool) -> None:
        self.home, self.key_file, self.fsync = home, key_file, fsync
        self._key = env_key.encode() if env_key else None
        self.source = "PHM_LEDGER_KEY" if env_key else str(key_file)

    @property
    def key(self) -> bytes | None:
        if self._key is None:
            try:
                text = self.key_file.read_text().strip()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise LedgerError(f"{self.key_file}: cannot read the ledger key ({exc.strerror})") from exc
            if not text:
                return None
            self._key = text.encode()
        return self._key

    def ensure_key(self, anchor: Path) -> bytes:
        """The key, created for a new installation; refused where signed heads exist but the key is gone (a new
        key would hide whatever was signed with the old one)."""
        found = self.key
        if found is not None:
            return found
        folder = self.home.joinpath(*ANCHORS)
        if anchor.exists() or (folder.is_dir() and any(folder.glob("*.head"))):
            raise LedgerError(
                f"the ledger key is missing ({self.source}) but signed heads exist: restore the key "
                "(or set PHM_LEDGER_KEY); not creating a new one"
            )
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.key_file)  # atomic, and never replaces a key another process just made
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        key = self.key
        if key is None:
            raise LedgerError(f"{self.key_file}: the ledger key could not be created")
        return key


_SIGNERS: dict[tuple, Signer] = {}
_ENV = ("PHM_HOME", "PHM_CONFIG", "PHM_LEDGER_KEY", "PHM_LEDGER_KEY_FILE", "PHM_LEDGER_FSYNC")


def ledger_home(path: Path) -> Path:
    """The home of the ledger at `path`: the folder above the log's folder."""
    return Path(os.path.abspath(path)).parent.parent


def signer(path: Path) -> Signer:
    """The signer of the ledger at `path` (settings read once per home and environment)."""
    home = ledger_home(path)
    env = (home, *(os.environ.get(k) for k in _ENV))
    found = _SIGNERS.get(env)
    if found is None:
        s = get_settings()
        secret = s.ledger_key.get_secret_value() if s.ledger_key else None
        if secret is not None and len(secret) < 16:
            raise LedgerError("PHM_LEDGER_KEY is too short: use at least 16 random characters")
        key_file = Path(s.ledger_key_file).expanduser() if s.ledger_key_file else home / "security" / "ledger.key"
        found = _SIGNERS[env] = Signer(home, secret, key_file, s.ledger_fsync)
    return found


def anchor_path(path: Path) -> Path:
    """Where the signed head of the ledger at `<home>/<folder>/<name>` is kept:
    `<home>/security/anchors/<folder>__<name>.head`, apart from the log's own folder."""
    full = Path(os.path.abspath(path))
    return full.parent.parent.joinpath(*ANCHORS, f"{full.parent.name}__{full.name}.head")


def read_head(anchor: Path, sign: Signer, ledger: str) -> Head:
    try:
        raw = json.loads(anchor.read_bytes())
        mac = raw.pop("mac")
        head = Head(**raw)
    except FileNotFoundError as exc:
        raise LedgerError(f"{anchor}: the signed head is missing") from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise LedgerError(f"{anchor}: the signed head cannot be read ({type(exc).__name__}): altered") from exc
    key = sign.key
    if key is None:
        raise LedgerError(f"the ledger key is missing ({sign.source}): the signed head {anchor} cannot be checked")
    if not hmac.compare_digest(str(mac), head.mac(key)):
        raise LedgerError(
            f"{anchor}: the signed head does not match its signature (forged or altered, or signed with another key)"
        )
    if head.ledger != ledger:
        raise LedgerError(f"{anchor}: the signed head belongs to {head.ledger}, not {ledger}")
    return head


def write_head(anchor: Path, key: bytes, head: Head) -> None:
    """Overwrite the signed head in place: one fixed-size record at offset 0 (a single sector-sized write needs
    no new disk space once the file exists and is never half-applied; a rename per append would cost a flush
    on ext4)."""
    record = json.dumps({**head.fields(), "mac": head.mac(key)}).encode()
    if len(record) >= HEAD_BYTES:
        raise LedgerError(f"{anchor}: the head record is too long")
    fd = os.open(anchor, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, record.ljust(HEAD_BYTES - 1) + b"\n", 0)
    finally:
        os.close(fd)
