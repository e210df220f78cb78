"""Keyed pseudonyms for NHS numbers (HMAC-SHA256). The raw number never leaves this boundary."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from phm.core.settings import DEMO_PSEUDONYM_KEY, Settings


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured for data that is not synthetic."""


def resolve_key(settings: Settings, synthetic: bool) -> tuple[bytes, bool]:
    """The HMAC key and whether it is the public demo key.

    Real extracts need `PHM_PSEUDONYM_KEY`; the demo key is allowed only for data the generator
    marked as synthetic, or when `PHM_DEMO=true` is set explicitly.
    """
    if settings.pseudonym_key is not None:
        secret = settings.pseudonym_key.get_secret_value()
        if len(secret) < 16:
            raise MissingKeyError("PHM_PSEUDONYM_KEY is too short: use at least 16 random characters.")
        return secret.encode(), secret == DEMO_PSEUDONYM_KEY
    if synthetic or settings.demo:
        return DEMO_PSEUDONYM_KEY.encode(), True
    raise MissingKeyError(
        "PHM_PSEUDONYM_KEY is not set. Set it to a long random secret kept outside the data "
        "(for example `export PHM_PSEUDONYM_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')`). "
        "The public demo key is only used for synthetic extracts."
    )


class Pseudonymiser:
    """Maps NHS numbers to stable 63-bit person ids: HMAC-SHA256(key, number), first 8 bytes."""

    def __init__(self, key: bytes):
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; copied per number
        self._seen: dict[str, int] = {}

    def person_id(self, number: str) -> int:
        pid = self._seen.get(number)
        if pid is None:
            mac = self._keyed.copy()
            mac.update(number.encode())
            digest = mac.digest()
            pid = int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
            self._seen[number] = pid
        return pid

    def mapping(self, numbers: Iterable[str]) -> pa.Table:
        """Arrow table (nhs_number, person_id) for the given numbers; checks for collisions."""
        nums = list(numbers)
        ids = np.fromiter((self.person_id(n) for n in nums), dtype=np.int64, count=len(nums))
        if np.unique(ids).size != len(set(nums)):
            raise RuntimeError("pseudonym collision: two NHS numbers map to one person id")
        return pa.table({"nhs_number": pa.array(nums, pa.string()), "person_id": ids})


def key_check(key: bytes) -> str:
    """A short one-way check value of `key` (its HMAC of a fixed text), kept with the warehouse so that a load or a
    look-up under another key is refused rather than silently giving everyone other ids."""
    return hmac.new(key, b"phm pseudonym key check", hashlib.sha256).hexdigest()[:16]


def key_changed(what: str) -> str:
    """The refusal when the key in force is not the one the warehouse was loaded with."""
    return (
        "PHM_PSEUDONYM_KEY is not the key the current warehouse was loaded with (a PHM_* variable overriding "
        "phm.toml, or a changed or mistyped key?): every NHS number would get another id, so recorded contact "
        "outcomes, caseloads, holdouts and the access log would no longer find anyone. " + what
    )


def loaded_with(warehouse: Path) -> tuple[bool, str | None]:
    """Whether the warehouse's load was synthetic, and its key's check value (None: no warehouse, or one loaded
    before the check was kept)."""
    import duckdb

    if not warehouse.exists():
        return False, None
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return False, None
    try:
        columns = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'load_info'"
            ).fetchall()
        }
        found = con.execute(
            f"SELECT synthetic, {'key_check' if 'key_check' in columns else 'NULL'} FROM load_info"
        ).fetchone()
        return (bool(found[0]), found[1]) if found else (False, None)
    except duckdb.Error:
        return False, None
    finally:
        con.close()


def installation_key(settings: Settings) -> bytes:
    """The key the warehouse under `settings` was pseudonymised with (the demo key only if its load was synthetic
    or `PHM_DEMO` is set; `MissingKeyError` otherwise, and when the key in force is not the warehouse's)."""
    synthetic, check = loaded_with(settings.warehouse_path)
    key = resolve_key(settings, synthetic)[0]
    if check is not None and key_check(key) != check:
        raise MissingKeyError(key_changed("Use the warehouse's key."))
    return key
