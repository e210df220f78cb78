"""Audit any table of risk scores and outcomes — for example a commercial tool's output — with the same
metrics, flags and report as the product's own models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.disclosure import Policy
from evaluation.fairness.audit import run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import Grouping
from evaluation.fairness.results import AuditResult

AGE_BANDS = [
    (0, 17, "0-17"),
    (18, 39, "18-39"),
    (40, 54, "40-54"),
    (55, 64, "55-64"),
    (65, 74, "65-74"),
    (75, 84, "75-84"),
    (85, 200, "85+"),
]


class ScoresTableError(ValueError):
    """The scores file cannot be read or lacks a named column."""


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ScoresTableError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt", ".gz"):
            return pd.read_csv(path, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a clear message
        raise ScoresTableError(f"{path}: cannot be read as {path.suffix.lstrip('.')} ({exc})") from exc
    raise ScoresTableError(f"{path}: use a .csv or .parquet file")


def age_band(values: pd.Series) -> pd.Series:
    """Numeric ages become the product's age bands; text is kept as given."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().mean() < 0.5:
        return values.astype("string").fillna("unknown")
    out = pd.Series("unknown", index=values.index, dtype="string")
    for lo, hi, label in AGE_BANDS:
        out[(num >= lo) & (num <= hi)] = label
    return out


def quarantine(frame: pd.DataFrame, score: str, outcome: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows that cannot be audited, and the rest. A rejected row is kept as its line in the file, the reason and
    the offending score and outcome only: the other columns of another tool's table may identify people (NHS
    numbers, names, dates of birth), and this record is written to disk."""
    s = pd.to_numeric(frame[score], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    o = pd.to_numeric(frame[outcome], errors="coerce")
    bad_s, bad_o = ~np.isfinite(s), ~o.isin([0, 1]).to_numpy()
    why_s, why_o = f"{score}: missing or not a number", f"{outcome}: not 0 or 1"
    reason = np.where(bad_s & bad_o, f"{why_s}; {why_o}", np.where(bad_s, why_s, np.where(bad_o, why_o, "")))
    bad = bad_s | bad_o
    rejected = pd.DataFrame(
        {
            "source_row": np.flatnonzero(bad) + 2,
            score: frame.loc[bad, score].to_numpy(),
            outcome: frame.loc[bad, outcome].to_numpy(),
            "quarantine_reason": reason[bad],
        }
    )
    return rejected, frame.loc[~bad]


def audit_table(
    path: Path,
    score: str,
    outcome: str,
    groups: list[str],
    references: dict[str, str] | None = None,
    age: str | None = None,
    sex: str | None = None,
    person: str | None = None,
    name: str = "score",
    cfg: AuditConfig | None = None,
    progress=None,
    disclosure: Policy | None = None,
) -> tuple[AuditResult, pd.DataFrame]:
    """Audit `score` against `outcome` by each of `groups`; returns the result and the quarantined rows
    (source_row = line number in a CSV file, counting the header)."""
    frame = read_table(path)
    named = [c for c in (score, outcome, *groups, age, sex, person) if c]
    missing = [c for c in named if c not in frame]
    if missing:
        raise ScoresTableError(f"{path}: missing column(s) {missing}; the file has {list(frame.columns)}")
    rejected, frame = quarantine(frame, score, outcome)
    cfg = cfg or AuditConfig()
    if references:
        unknown = [k for k in references if k not in groups]
        if unknown:
            raise ScoresTableError(f"--reference names column(s) {unknown} that are not --group columns")
        cfg = cfg.model_copy(update={"references": {**cfg.references, **references}})
    frame = frame.copy()
    if age:
        frame["_age_band"] = age_band(frame[age])
    if sex:
        frame["_sex"] = frame[sex].astype("string").fillna("unknown")
    if age and sex:
        frame["_stratum"] = frame["_age_band"] + " " + frame["_sex"]
    default = "_stratum" if age and sex else "_age_band" if age else "_sex" if sex else None

    def stratum_for(column: str) -> str | None:
        if column == age:
            return "_sex" if sex else None
        if column == sex:
            return "_age_band" if age else None
        return default

    groupings = [
        Grouping(g, g.replace("_", " ").capitalize(), g, adjustable=stratum_for(g) is not None, stratum=stratum_for(g))
        for g in groups
    ]
    subject = {
        "kind": "scores table",
        "name": name,
        "source": str(path),
        "score": score,
        "outcome_column": outcome,
        "outcome": f"the outcome in column '{outcome}'",
        "rows_quarantined": int(len(rejected)),
    }
    result = run_audit(
        frame,
        groupings,
        cfg,
        subject,
        outcome=outcome,
        score=score,
        stratum=default,
        cluster=person,
        progress=progress,
        disclosure=disclosure,
    )
    return result, rejected
