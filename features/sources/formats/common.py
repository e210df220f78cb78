"""What every format mapping shares: reading source tables with their row numbers, surrogate NHS
numbers for source person ids, rows that break the mapping (quarantined with a reason), and the
staged folder the ordinary loader reads.

Every staged row made from a source row carries that row's provenance (`_source_file`, `_source_row`),
so a row the loader later quarantines names the source file and row a data manager would fix, not the
staged file."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.sources.readable import first_line

SOURCE_NOTE = "_source.json"  # what the staged folder came from and how it was mapped
MAPPING_QUARANTINE = "_mapping_quarantine.parquet"  # source rows that could not be mapped
SYNTHETIC_MARKER = "_synthetic.json"
SOURCE_FILE, SOURCE_ROW = "_source_file", "_source_row"  # provenance columns of staged rows
# Source columns that identify a person directly (OMOP `person_source_value` often holds the NHS number; Synthea's
# names and identity documents): never kept in a quarantined row, which names its source file and row instead.
IDENTIFYING = frozenset(
    {"person_source_value", "ssn", "drivers", "passport", "prefix", "first", "middle", "last", "suffix", "maiden"}
    | {"address", "address_1", "address_2"}
)


class FormatError(ValueError):
    """A source folder cannot be mapped (missing required file or column); names the file."""


@dataclass
class ConversionReport:
    format: str
    source: str
    staged: str
    synthetic: bool
    files_read: dict[str, int] = field(default_factory=dict)  # file -> rows
    missing_optional_files: list[str] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=dict)  # PHM extract -> rows
    rejected: dict[str, int] = field(default_factory=dict)  # "file: rule" -> rows
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def read_source(
    src: Path, stem: str, required: bool, report: ConversionReport, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """A source table as text columns with `_row` (1-based, file order) and `_file`; None when an
    optional file is absent. Column names are matched case-insensitively; `columns` must all exist."""
    path = next((src / f"{stem}{s}" for s in (".csv", ".csv.gz", ".parquet") if (src / f"{stem}{s}").exists()), None)
    if path is None:
        if required:
            raise FormatError(f"{src}: missing required file {stem}.csv (or .parquet)")
        report.missing_optional_files.append(stem)
        return None
    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix == ".parquet"
            else pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        )
    except (ValueError, OSError) as exc:  # one line, and nothing from the file's rows
        raise FormatError(f"{path}: cannot be read ({first_line(exc)})") from exc
    frame.columns = [str(c) for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    missing = [c for c in (columns or []) if c.lower() not in lower]
    if missing:
        raise FormatError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = frame.rename(columns={lower[c.lower()]: c for c in (columns or [])})
    frame = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object})
    frame["_row"] = range(1, len(frame) + 1)
    frame["_file"] = path.name
    report.files_read[path.name] = len(frame)
    return frame


def column(frame: pd.DataFrame | None, name: str) -> pd.Series:
    """A source column, or an all-missing text column when the file or the column is absent."""
    if frame is None:
        return pd.Series(dtype="string")
    return frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype="string")


def surrogate_nhs_numbers(ids: list[str], start: int = 9_000_000_000) -> dict[str, str]:
    """Deterministic, collision-free 10-digit numbers with a valid check digit for source person ids:
    the i-th id in sorted order gets the i-th valid number from `start` (the loader then replaces them
    with keyed pseudonyms, as it does real NHS numbers)."""
    out: dict[str, str] = {}
    n = start // 10
    for source_id in sorted(set(ids)):
        while True:
            digits = f"{n:09d}"
            check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11) % 11
            n += 1
            if check != 10:
                out[source_id] = digits + str(check)
                break
    return out


class Staging:
    """Collects PHM extracts and rejected source rows, then writes the staged folder."""

    def __init__(self, report: ConversionReport) -> None:
        self.report = report
        self.tables: dict[str, pd.DataFrame] = {}
        self.rejected: list[pd.DataFrame] = []

    def add(self, name: str, frame: pd.DataFrame, origin: pd.DataFrame | None = None) -> None:
        """Stage rows of PHM extract `name`. `origin` is the source table the rows were made from (with `_file`
        and `_row`): each row's index label names its source row there (several rows may share one). Rows
        without an origin (reference tables the mapping derives) keep the staged file as their provenance."""
        frame = frame.drop(columns=[c for c in ("_row", "_file", SOURCE_FILE, SOURCE_ROW) if c in frame])
        if origin is not None:
            source = origin[["_file", "_row"]].reindex(frame.index)
            frame = frame.assign(
                **{
                    SOURCE_FILE: source["_file"].astype("string").array,
                    SOURCE_ROW: source["_row"].astype("Int64").array,
                }
            )
        frame = frame.reset_index(drop=True)
        before = self.tables.get(name)
        if before is None or (before.empty and not frame.empty):
            self.tables[name] = frame
        elif not frame.empty:
            self.tables[name] = _append(before, frame)

    def reject(self, rows: pd.DataFrame, rule: str, column: str, table: str) -> None:
        """Quarantine source rows that break the mapping (kept as text, with file and row, without the columns
        that identify a person: `IDENTIFYING`)."""
        if rows.empty:
            return
        dropped = ["_row", "_file", *(c for c in rows.columns if c.lower() in IDENTIFYING)]
        record = rows.drop(columns=dropped).astype("string").to_dict(orient="records")
        self.rejected.append(
            pd.DataFrame(
                {
                    "source_table": table,
                    "source_file": rows["_file"].astype(str).to_numpy(),
                    "source_row": rows["_row"].astype("int64").to_numpy(),
                    "rule": rule,
                    "column_name": column,
                    "record": [json.dumps({k: (None if pd.isna(v) else str(v)) for k, v in r.items()}) for r in record],
                }
            )
        )
        for file in rows["_file"].unique():
            key = f"{file}: {rule} ({column})"
            self.report.rejected[key] = self.report.rejected.get(key, 0) + int((rows["_file"] == file).sum())

    def write(self, out: Path) -> ConversionReport:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for name, frame in self.tables.items():
            if SOURCE_ROW in frame:
                frame = frame.astype({SOURCE_FILE: "string", SOURCE_ROW: "Int64"})
            frame.to_parquet(out / f"{name}.parquet", index=False)
            self.report.rows_written[name] = len(frame)
        rejected = (
            pd.concat(self.rejected, ignore_index=True)
            if self.rejected
            else pd.DataFrame(columns=["source_table", "source_file", "source_row", "rule", "column_name", "record"])
        )
        rejected.to_parquet(out / MAPPING_QUARANTINE, index=False)
        (out / SOURCE_NOTE).write_text(json.dumps(self.report.to_json(), indent=1))
        if self.report.synthetic:  # synthetic by construction (Synthea): the demo pseudonym key may be used
            (out / SYNTHETIC_MARKER).write_text(json.dumps({"source": self.report.format}))
        return self.report


def _append(before: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """`before` then `frame`, each column typed by the side that has values (an all-missing column on one side
    does not decide the type; pandas' own concat is changing that rule)."""
    empty_before = [c for c in before.columns if c in frame and before[c].isna().all() and frame[c].notna().any()]
    empty_frame = [c for c in frame.columns if c in before and frame[c].isna().all() and before[c].notna().any()]
    joined = pd.concat([before.drop(columns=empty_before), frame.drop(columns=empty_frame)], ignore_index=True)
    return joined[list(dict.fromkeys([*before.columns, *frame.columns]))]
