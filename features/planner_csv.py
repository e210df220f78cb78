"""A planner's own daily series from a CSV (date, site, metric, value[, capacity]), read strictly: every refusal
names the file, the field and the physical lines (never a cell's contents); small gaps are repaired with a warning.
The warehouse's own series are built in `features/series.py`."""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

MAX_REPAIRED_GAP_DAYS = 7


class SeriesFileError(ValueError):
    """A planner's CSV of daily series cannot be used as it is (the message names the line or field, never a cell)."""


FIELDS = ("date", "site", "metric", "value", "capacity")
DAYFIRST_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y")
_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"
_OFFSET = r"^(\d{4}-?\d{2}-?\d{2}[T ].*?)\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"  # a timestamp's UTC offset
MAX_NUMBER = 1e9  # no count or bed figure comes near: above it (or infinite) a cell is not a usable number


def parse_columns(spec: str | None) -> dict[str, str]:
    """`date=Date,value=Occupied` -> {"date": "Date", "value": "Occupied"} (our field -> the file's column)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, sep, col = part.partition("=")
        key = key.strip().lower()
        if not sep or not col.strip():
            raise SeriesFileError(f"--columns: {part.strip()!r} is not field=Column (e.g. date=Date,value=Occupied)")
        if key not in FIELDS:
            raise SeriesFileError(f"--columns: unknown field {key!r}; fields are {', '.join(FIELDS)}")
        if key in out:
            raise SeriesFileError(f"--columns: field {key!r} is mapped twice; map each field to one column")
        out[key] = col.strip()
    return check_mapping(out)


def check_mapping(mapping: dict[str, str]) -> dict[str, str]:
    """The mapping, each column stripped, if no column feeds two fields (`date=Date,value=Date` is refused)."""
    mapping = {key: col.strip() for key, col in mapping.items()}
    for col in mapping.values():
        if len(keys := [k for k, c in mapping.items() if c == col]) > 1:
            raise SeriesFileError(f"--columns: column {col!r} is mapped to more than one field ({', '.join(keys)})")
    return mapping


def parse_numbers(text: pd.Series) -> pd.Series:
    """Numbers as a planner's spreadsheet writes them: "44,592" (thousands separators) as well as "44592"."""
    clean = text.str.strip()
    grouped = clean.str.match(_THOUSANDS)
    numbers = pd.to_numeric(clean.where(~grouped, clean.str.replace(",", "", regex=False)), errors="coerce")
    return numbers.astype("float64")  # 20-digit integers would come back as uint64


def parse_dates(text: pd.Series, dayfirst: bool) -> pd.Series:
    """ISO dates (yyyy-mm-dd) by default; with `dayfirst` UK dates (dd/mm/yyyy, dd-mm-yyyy, dd.mm.yyyy).

    An ISO timestamp's UTC offset (2020-08-02T00:00:00+01:00, ...Z) is dropped, not converted: each row keeps the
    date it was written on (a day of local timestamps is that day, whether summer time moved the offset or not)."""
    text = text.str.strip()
    if not dayfirst:
        stamped = text.str.len() > 10  # only a timestamp can carry an offset
        if stamped.any():
            text = text.where(~stamped, text[stamped].str.replace(_OFFSET, r"\1", regex=True))
        out = pd.to_datetime(text, errors="coerce", format="ISO8601")
        if out.dtype == object:  # offsets left in a form not stripped (2020-08-01Z): each at its own date
            out = pd.to_datetime(out.map(lambda t: t.replace(tzinfo=None) if pd.notna(t) else pd.NaT))
        return out.dt.tz_localize(None) if isinstance(out.dtype, pd.DatetimeTZDtype) else out
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for fmt in DAYFIRST_FORMATS:
        out = out.fillna(pd.to_datetime(text, errors="coerce", format=fmt))
    return out


def _records(path: Path) -> tuple[list[list[str]], list[int]]:
    """The file's records (blank lines skipped) and the physical line each starts on (quoted line breaks counted)."""
    if path.is_dir() or not path.is_file():
        raise SeriesFileError(f"{path}: {'is a directory' if path.is_dir() else 'not a regular file'}, not a CSV file")
    try:
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
        text = data.decode("utf-8")
    except OSError as exc:
        raise SeriesFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    except UnicodeDecodeError as exc:
        line = len(re.split(rb"\r\n|\r|\n", data[: exc.start]))
        raise SeriesFileError(f"{path}: not UTF-8 text (line {line}); save it as 'CSV UTF-8'") from exc
    reader, records, starts, first = csv.reader(io.StringIO(text, newline="")), [], [], 1
    try:
        for record in reader:
            if record and (len(record) > 1 or record[0].strip()):  # not a blank line
                records.append(record)
                starts.append(first)
            first = reader.line_num + 1
    except csv.Error as exc:  # e.g. a field over the csv module's size limit; the message quotes no cell
        raise SeriesFileError(f"{path}: not a readable CSV at line {reader.line_num} ({exc})") from exc
    if nul := [line for line, record in zip(starts, records) if any("\0" in field for field in record)]:
        raise SeriesFileError(f"{path}: a NUL byte on line(s) {_few(nul)}; the file is damaged or not plain text")
    if not records:
        raise SeriesFileError(f"{path}: has no rows (it is empty or blank); expected a header date,site,metric,value")
    return records, starts


def _few(lines: list[int]) -> str:
    return f"{lines[:10]}{' ...' if len(lines) > 10 else ''}"


def read_series_csv(
    path: Path, dayfirst: bool = False, columns: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """A planner's own daily series: columns date, site, metric, value (and optionally capacity).

    Options: `dayfirst` reads UK dates (dd/mm/yyyy; the default is ISO yyyy-mm-dd, and anything else is
    refused rather than guessed); `columns` maps our fields to the file's column names. Values and capacity
    may carry thousands separators ("44,592"). Refused with an error naming the file, field and physical lines
    (never a cell's contents): missing columns or two for one field, unreadable dates, values that are not
    numbers, infinite or above 1e9, or negative, "/" or a control character (a line break) in a site or metric,
    a NUL byte, and the same day given
    twice with a different value or capacity. Repaired with a warning (what a planner would want): exact
    duplicate rows are dropped, and gaps of up to 7 days are filled by linear interpolation; longer gaps are refused.
    """
    if not path.exists():
        raise SeriesFileError(f"{path}: no such file")
    records, starts = _records(path)
    header, mapping = [name.strip() for name in records[0]], check_mapping(columns or {})
    if absent := [f"{col!r} (for {key})" for key, col in mapping.items() if col not in header]:
        raise SeriesFileError(  # the first line may be data (no header): say how many columns, not what they hold
            f"{path}: --columns names column(s) not in the file: {', '.join(absent)}; its first line has "
            f"{len(header)} column(s), none so named (it must be the header; names match exactly, capitals included)"
        )
    fields = [{col: key for key, col in mapping.items()}.get(name, name.lower()) for name in header]
    for field in FIELDS:  # the names clashing read as a field, or are the user's own --columns: no cell content
        if len(clash := [repr(records[0][i]) for i, f in enumerate(fields) if f == field]) > 1:
            raise SeriesFileError(
                f"{path}: columns {', '.join(clash)} {'both' if len(clash) == 2 else 'all'} give field {field} (after "
                f"--columns, ignoring capitals and spaces); rename or drop all but one"
            )
    if missing := [c for c in ("date", "site", "metric", "value") if c not in fields]:
        raise SeriesFileError(
            f"{path}: missing column(s) {missing}; expected date, site, metric, value[, capacity] "
            f"(map your own names with --columns, e.g. date=Date,value=Occupied)"
        )
    if len(records) == 1:
        raise SeriesFileError(f"{path}: has a header but no data rows")
    rows, width = records[1:], len(header)
    if long := [line for line, row in zip(starts[1:], rows) if any(f.strip() for f in row[width:])]:
        raise SeriesFileError(f"{path}: more fields than the header's {width} on line(s) {_few(long)} (a comma?)")
    raw = pd.DataFrame(  # a short row's missing fields are empty, and refused as such where a field is needed
        {f: [row[i] if i < len(row) else "" for row in rows] for i, f in enumerate(fields) if f in FIELDS}, dtype=str
    )
    line = pd.Series(starts[1:], index=raw.index)  # the physical line each row starts on
    dates = parse_dates(raw["date"], dayfirst)
    values = parse_numbers(raw["value"])

    def refuse(mask: pd.Series, what: str, why: str = "") -> None:
        if mask.any():
            raise SeriesFileError(f"{path}: {what} on line(s) {_few(line[mask].tolist())}{why}")

    hint = "dd/mm/yyyy expected with --dayfirst" if dayfirst else "yyyy-mm-dd expected; use --dayfirst for dd/mm/yyyy"
    refuse(dates.isna(), f"field date: missing or not a date ({hint})")
    for field in ("site", "metric"):
        refuse(raw[field].str.strip() == "", f"field {field}: empty")
        refuse(
            raw[field].str.contains("/", regex=False),
            f"field {field}: contains '/'",
            "; results are named site/metric, so site 'A/B' with metric 'beds' and site 'A' with metric 'B/beds' "
            "would be one series: use another character",
        )
        refuse(
            raw[field].str.contains(r"[\x00-\x1f\x7f]", regex=True),
            f"field {field}: holds a line break or another control character",
            "; names are shown on screens, pages and files one line each",
        )
    unusable = f"not a usable number (infinite or above {MAX_NUMBER:,.0f})"
    refuse(values.isna(), "field value: missing or not a number")
    refuse(values.abs() > MAX_NUMBER, f"field value: {unusable}")  # inf, Infinity, 1E+308 (1e400 is not a number)
    refuse(values < 0, "field value: negative (counts and beds cannot be)")
    frame = pd.DataFrame(
        {
            "date": dates.dt.normalize(),
            "site": raw["site"].str.strip(),
            "metric": raw["metric"].str.strip(),
            "value": values,
            "line": line,
        }
    )
    if "capacity" in raw:
        cap = parse_numbers(raw["capacity"])
        refuse(raw["capacity"].str.strip().ne("") & (cap.isna() | (cap <= 0)), "field capacity: not a positive number")
        refuse(cap > MAX_NUMBER, f"field capacity: {unusable}")
        frame["capacity"] = cap
    else:
        frame["capacity"] = np.nan
    warnings: list[str] = []
    key = ["date", "site", "metric"]
    exact = frame.duplicated(key + ["value", "capacity"], keep="first")  # the same in every field
    if exact.any():
        warnings.append(
            f"dropped {int(exact.sum())} exact duplicate row(s) (first on line {int(frame.line[exact].iloc[0])})"
        )
        frame = frame[~exact]
    clash = frame.duplicated(key, keep=False)
    if clash.any():
        first = frame[clash].sort_values(key + ["line"]).head(2)
        what = "values" if first.value.iloc[0] != first.value.iloc[1] else "capacities"
        raise SeriesFileError(
            f"{path}: {first.site.iloc[0]}/{first.metric.iloc[0]} has different {what} for "
            f"{first.date.iloc[0].date()} on lines {first.line.tolist()}"
        )
    out = []
    for (site, metric), part in frame.groupby(["site", "metric"], sort=True):
        part = part.set_index("date").sort_index()
        full = pd.date_range(part.index[0], part.index[-1], freq="D")
        missing_days = full.difference(part.index)
        if len(missing_days):
            runs = (pd.Series(missing_days).diff().dt.days.ne(1)).cumsum()
            longest = int(pd.Series(missing_days).groupby(runs.to_numpy()).size().max())
            if longest > MAX_REPAIRED_GAP_DAYS:
                raise SeriesFileError(
                    f"{path}: {site}/{metric} has a gap of {longest} days (from "
                    f"{missing_days[0].date()}); fill it or split the series "
                    f"(gaps up to {MAX_REPAIRED_GAP_DAYS} days are interpolated)"
                )
            warnings.append(
                f"{site}/{metric}: filled {len(missing_days)} missing day(s) by linear interpolation "
                f"(first {missing_days[0].date()})"
            )
        part = part.reindex(full)
        part["value"] = part["value"].interpolate(limit_direction="both")
        part["capacity"] = part["capacity"].ffill().bfill()
        out.append(part.assign(site=site, metric=metric).rename_axis("date").reset_index())
    result = pd.concat(out, ignore_index=True)[["date", "site", "metric", "value", "capacity"]]
    return result, warnings
