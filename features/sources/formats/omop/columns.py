"""Reading OMOP CDM columns: any source column as trimmed text, dates, lookups and the quarantine of rows
whose person is unknown (used by the `omop` mapping modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from features.sources.formats.common import ConversionReport, Staging, read_source

TS = "%Y-%m-%d %H:%M:%S"


def text(s: pd.Series) -> pd.Series:
    """Any source column as trimmed text (integral floats without '.0', empty -> NA)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        s = s.dt.strftime(TS)
    elif pd.api.types.is_float_dtype(s) and bool((s.dropna() % 1 == 0).all()):
        s = s.astype("Int64")
    s = s.astype("string").str.strip()
    return s.mask(s.fillna("") == "")


def read(src: Path, stem: str, required: bool, report: ConversionReport, columns: list[str]) -> pd.DataFrame | None:
    frame = read_source(src, stem, required, report, columns)
    if frame is None:
        return None
    frame.columns = [c.lower() for c in frame.columns]
    return frame.assign(**{c: text(frame[c]) for c in frame.columns if c not in ("_row", "_file")})


def when(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)


def day(s: pd.Series) -> pd.Series:
    """ISO dates where the text parses; other text kept for the loader to quarantine (wrong_type)."""
    return when(s).dt.strftime("%Y-%m-%d").astype("string").fillna(s)


def is_(s: pd.Series, pattern: str) -> pd.Series:
    return s.astype("string").str.fullmatch(pattern).fillna(False).astype(bool)


def map_(s: pd.Series, mapping: dict | pd.Series) -> pd.Series:
    """Text looked up in `mapping` (a dict or a Series), as text; unmatched -> NA."""
    return s.map(mapping).astype("string")


def mapped(s: pd.Series, f: Callable[[str], str | None]) -> pd.Series:
    """`f` applied once per distinct value (NA stays NA)."""
    return map_(s, {v: f(v) for v in s.dropna().unique()})


def natural(values: Iterable[str]) -> list[str]:
    """Distinct ids, numeric ones in numeric order first."""
    return sorted(set(values), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def lookup(frame: pd.DataFrame | None, key: str, value: str) -> pd.Series:
    if frame is None or value not in frame:
        return pd.Series(dtype="string")
    return frame.dropna(subset=[key]).drop_duplicates(key).set_index(key)[value]


def earliest(frame: pd.DataFrame | None, column: str) -> pd.Series:
    """person_id -> earliest parseable date in `column` (ISO text)."""
    if frame is None:
        return pd.Series(dtype="string")
    return when(frame[column]).groupby(frame["person_id"]).min().dt.strftime("%Y-%m-%d").astype("string")


def known(stage: Staging, frame: pd.DataFrame, numbers: dict[str, str], table: str) -> pd.DataFrame:
    """Rows whose person_id is in `person`; the others quarantined as unknown_person."""
    ok = frame["person_id"].isin(list(numbers)).fillna(False).astype(bool)
    stage.reject(frame[~ok], "unknown_person", "person_id", table)
    return frame[ok]


def rows_of(care_sites: pd.DataFrame | None, ids: pd.Series) -> list[int]:
    """The row labels in care_site of these care site ids (-1 where there is none): the provenance of the
    practices and sites made from them."""
    if care_sites is None:
        return [-1] * len(ids)
    label = pd.Series(care_sites.index, index=care_sites["care_site_id"]).groupby(level=0).first()
    return [int(label.get(i, -1)) if isinstance(i, str) else -1 for i in ids]


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns).astype("string")
