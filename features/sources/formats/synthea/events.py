"""Synthea per-patient files mapped to GP events and prescriptions: conditions (SNOMED), medications (an issue
every 28 days while the medicine runs) and observations (blood pressure, BMI, smoking)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.common import ConversionReport, Staging, column, read_source
from features.sources.formats.vocab import CONDITION_SNOMED, bnf_for_name, condition_for_snomed

OBSERVATION_LOINC = {"8480-6": "271649006", "39156-5": "60621009"}  # systolic BP, BMI
SMOKING_LOINC = "72166-2"
REFILL_DAYS, MAX_ISSUES = 28, 600


def known_rows(stage: Staging, frame: pd.DataFrame, numbers: dict[str, str], table: str) -> pd.DataFrame:
    """Rows whose PATIENT is in patients.csv; the others quarantined as unknown_person."""
    ok = frame["PATIENT"].isin(numbers.keys())
    stage.reject(frame[~ok], "unknown_person", "PATIENT", table)
    return frame[ok].copy()


def events_file(
    stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str], stem: str, columns: list[str]
) -> pd.DataFrame | None:
    """An optional per-patient file, its rows for unknown patients quarantined; None when absent."""
    frame = read_source(src, stem, False, report, columns)
    return None if frame is None else known_rows(stage, frame, numbers, stem)


def stage_conditions(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str]) -> None:
    frame = events_file(stage, src, report, numbers, "conditions", ["START", "PATIENT", "CODE"])
    if frame is None:
        return
    raw = frame["CODE"].astype("string").str.strip()
    key = raw.map(condition_for_snomed)
    code = key.map(CONDITION_SNOMED).fillna(raw.where(raw.str.fullmatch(r"[0-9]{6,18}").fillna(False)))
    start = pd.to_datetime(frame["START"], errors="coerce", format="ISO8601")
    bad = code.isna() | start.isna()
    stage.reject(frame[code.isna()], "unmapped_code", "CODE", "conditions")
    stage.reject(frame[code.notna() & start.isna()], "wrong_type", "START", "conditions")
    ok = frame[~bad]
    stage_gp_events(
        stage,
        frame,
        "c" + ok["_row"].astype(str),
        ok["PATIENT"].map(numbers),
        start[~bad].dt.strftime("%Y-%m-%d"),
        code[~bad],
    )


def stage_medications(
    stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str], end: pd.Timestamp, death: pd.Series
) -> None:
    """An issue every REFILL_DAYS from START while the medicine runs: to STOP (or the export's end), never after
    the export's end or the patient's DEATHDATE (`death`: patient Id -> date). Only a source row whose own START
    lies after death yields an issue after it (one, on START), which the loader quarantines against that row."""
    frame = events_file(stage, src, report, numbers, "medications", ["START", "PATIENT", "DESCRIPTION"])
    if frame is None:
        return
    bnf = frame["DESCRIPTION"].map(bnf_for_name)
    stage.reject(frame[bnf.isna()], "unmapped_code", "DESCRIPTION", "medications")
    ok = frame[bnf.notna()].assign(bnf=bnf[bnf.notna()])
    start = pd.to_datetime(ok["START"], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None).dt.normalize()
    stage.reject(ok[start.isna()], "wrong_type", "START", "medications")
    ok, start = ok[start.notna()], start[start.notna()]
    stop = pd.to_datetime(column(ok, "STOP"), errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    died = ok["PATIENT"].map(death.groupby(level=0).min()).astype("datetime64[ns]")
    last = stop.fillna(end).clip(upper=end)
    cut = died.notna() & (died < last) & (start <= died)  # a row starting after death: its own one issue
    last = last.mask(cut, died)
    issues = (((last.dt.normalize() - start).dt.days // REFILL_DAYS) + 1).clip(lower=1, upper=MAX_ISSUES)
    issues = issues.fillna(1).astype(int)
    rep = ok.loc[ok.index.repeat(issues)]
    step = np.concatenate([np.arange(n) for n in issues]) if len(issues) else np.array([], dtype=int)
    dates = start.loc[rep.index].to_numpy() + (step * REFILL_DAYS).astype("timedelta64[D]")
    stage.add(
        "prescriptions",
        pd.DataFrame(
            {
                "prescription_id": "m" + rep["_row"].astype(str).to_numpy() + "_" + step.astype(str),
                "nhs_number": rep["PATIENT"].map(numbers).to_numpy(),
                "issue_date": pd.to_datetime(dates).strftime("%Y-%m-%d"),
                "bnf_code": rep["bnf"].to_numpy(),
            },
            index=rep.index,
        ),
        frame,
    )
    report.notes.append(
        f"Medicines are issued every {REFILL_DAYS} days from START to STOP (or the export's end), "
        "never after the export's end or the patient's death"
        + (f"; {int(cut.sum()):,} medicine(s) stopped at the patient's death." if cut.any() else ".")
    )


def stage_observations(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str]) -> None:
    frame = events_file(stage, src, report, numbers, "observations", ["DATE", "PATIENT", "CODE"])
    if frame is None:
        return
    code = frame["CODE"].astype("string").str.strip()
    value = pd.to_numeric(column(frame, "VALUE"), errors="coerce")
    smoker = (code == SMOKING_LOINC) & column(frame, "VALUE").astype("string").str.lower().str.contains(
        "current"
    ).fillna(False)
    snomed = (
        code.map(OBSERVATION_LOINC)
        .where(value.notna())
        .fillna(pd.Series(np.where(smoker, codes.SMOKER_CODE, None), index=frame.index))
    )
    used = snomed.notna()
    when = pd.to_datetime(frame["DATE"], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    used &= when.notna()
    report.notes.append(f"{int((~used).sum()):,} observation rows not used: no predictor reads them.")
    rows = frame[used]
    stage_gp_events(
        stage,
        frame,
        "o" + rows["_row"].astype(str),
        rows["PATIENT"].map(numbers),
        when[used].dt.strftime("%Y-%m-%d"),
        snomed[used],
        value[used].where(~smoker[used]),
    )


def stage_gp_events(stage: Staging, origin: pd.DataFrame, ids, nhs, dates, code, value=None) -> None:
    """Coded primary care events (SNOMED CT), with a value where one was measured, from rows of `origin`."""
    stage.add(
        "gp_events",
        pd.DataFrame(
            {
                "event_id": ids,
                "nhs_number": nhs,
                "event_date": dates,
                "code_system": "SNOMED",
                "code": code,
                "value": value,
            }
        ),
        origin,
    )
