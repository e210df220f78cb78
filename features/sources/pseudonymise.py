"""Keyed pseudonyms for NHS numbers (HMAC-SHA256). The raw number never leaves this boundary."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

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


def installation_key(settings: Settings) -> bytes:
    """The key the warehouse under `settings` was pseudonymised with (the demo key only if its load was synthetic
    or `PHM_DEMO` is set; `MissingKeyError` otherwise)."""
    import duckdb

    synthetic = False
    if settings.warehouse_path.exists():
        try:
            con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        except duckdb.Error:
            con = None
        if con is not None:
            try:
                synthetic = bool(con.execute("SELECT synthetic FROM load_info").fetchone()[0])
            except (duckdb.Error, TypeError):
                synthetic = False
            finally:
                con.close()
    return resolve_key(settings, synthetic)[0]
