"""A pseudonymisation key that is not the warehouse's (a PHM_PSEUDONYM_KEY overriding phm.toml, a mistyped key) is
refused: by a load over the warehouse unless `new_key`, and by every look-up of an NHS number (caseloads, events,
who-viewed, re-identification). Found by the configuration red-team: a load silently gave everyone new ids, and the
look-ups silently found no one (recorded outcomes stopped hiding people, `who-viewed` answered "nobody")."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.sources.loader import ContractError, load
from features.sources.pseudonymise import MissingKeyError, installation_key
from phm.core.settings import Settings
from support.extracts import connect

FIRST, OTHER = "the-key-the-warehouse-was-loaded-with", "a-key-from-an-environment-variable"


def _ids(settings: Settings) -> set[int]:
    return {r[0] for r in connect(settings).execute("SELECT person_id FROM patients").fetchall()}


def test_a_load_or_look_up_under_another_key_is_refused(ics_defects, tmp_path: Path) -> None:
    first = Settings(home=tmp_path / "home", pseudonym_key=FIRST)
    load(first, ics_defects.out_dir)
    before = _ids(first)
    assert installation_key(first) == FIRST.encode()
    other = Settings(home=tmp_path / "home", pseudonym_key=OTHER)
    with pytest.raises(MissingKeyError, match="not the key the current warehouse was loaded with"):
        installation_key(other)
    with pytest.raises(ContractError, match="not the key the current warehouse.*--new-key"):
        load(other, ics_defects.out_dir)
    assert _ids(first) == before  # the warehouse was not changed
    load(first, ics_defects.out_dir)  # the same key loads again
    load(other, ics_defects.out_dir, new_key=True)  # a key changed on purpose
    assert not _ids(other) & before and installation_key(other) == OTHER.encode()
