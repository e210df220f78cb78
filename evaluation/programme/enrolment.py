"""Where enrolments come from: the `enrolled` outcomes coordinators recorded in the operational database, a CSV
of pseudonymised ids and enrolment dates (ours, or the `enrolments.csv` that `phm worklist export-outcomes`
writes), or (synthetic data only) the generator's ground truth mapped to the warehouse's pseudonyms. A person
enrolled more than once is evaluated from their first enrolment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.sources.pseudonymise import Pseudonymiser, resolve_key
from phm.core.settings import Settings
from phm.operational import outcomes

MARKER = "_synthetic.json"


class EnrolmentFileError(ValueError):
    """An enrolment file that cannot be read."""


def read_enrolment(path: Path) -> pd.DataFrame:
    """Columns person_id (the warehouse pseudonym) and enrol_date (YYYY-MM-DD), or, as `phm worklist
    export-outcomes` writes them, person_id and enrolled_at (an ISO date and time; one row per enrolment period,
    the first per person kept). Errors name the file, row and field."""
    if not path.is_file():
        raise EnrolmentFileError(f"{path}: no such enrolment file")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EnrolmentFileError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    exported = "enrol_date" not in frame.columns and "enrolled_at" in frame.columns
    date_col = "enrolled_at" if exported else "enrol_date"
    missing = {"person_id", date_col} - set(frame.columns)
    if missing:
        raise EnrolmentFileError(
            f"{path}: missing column(s) {sorted(missing)} (need person_id, enrol_date; or "
            "person_id, enrolled_at as `phm worklist export-outcomes` writes)"
        )
    ids = pd.to_numeric(frame["person_id"], errors="coerce")
    if exported:
        dates = pd.to_datetime(frame[date_col], format="ISO8601", errors="coerce")
        wanted = "not an ISO date and time (YYYY-MM-DDTHH:MM:SS)"
    else:
        dates = pd.to_datetime(frame[date_col], format="%Y-%m-%d", errors="coerce")
        wanted = "not a date YYYY-MM-DD"
    for field, bad in (("person_id", ids.isna() | (ids % 1 != 0)), (date_col, dates.isna())):
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is row 1
            raise EnrolmentFileError(
                f"{path}: row {row}, field {field}: "
                + ("not a whole-number pseudonym" if field == "person_id" else wanted)
            )
    found = pd.DataFrame({"person_id": ids.astype("int64"), "enrol_date": dates.dt.normalize()})
    return _first_per_person(found) if exported else found


def outcome_enrolment(settings: Settings) -> pd.DataFrame:
    """Enrolments from the outcomes recorded in the operational database: each person's first `enrolled` outcome,
    dated the day it was recorded (ids are already the warehouse's pseudonyms)."""
    periods = outcomes.enrolments(outcomes.history(settings))
    if not periods:
        raise EnrolmentFileError("no `enrolled` outcome is recorded in the operational database yet")
    found = pd.DataFrame(
        {
            "person_id": [int(p["person_id"]) for p in periods],
            "enrol_date": pd.to_datetime([p["enrolled_at"] for p in periods]).normalize(),
        }
    )
    return _first_per_person(found)


def _first_per_person(frame: pd.DataFrame) -> pd.DataFrame:
    """Each person's earliest enrolment (a later re-enrolment is not a new person entering the programme)."""
    return (
        frame.sort_values(["enrol_date", "person_id"], kind="stable")
        .drop_duplicates("person_id")
        .reset_index(drop=True)
    )


def synthetic_enrolment(settings: Settings, folder: Path) -> pd.DataFrame:
    """Enrolments of a synthetic ICS's programme (truth/programme_offers), as warehouse pseudonyms. Refused for
    a folder the generator did not mark as synthetic."""
    if not (folder / MARKER).is_file():
        raise EnrolmentFileError(f"{folder}: not a synthetic ICS folder (no {MARKER}); give an enrolment CSV instead")
    path = folder / "truth" / "programme_offers.parquet"
    if not path.is_file():
        raise EnrolmentFileError(f"{folder}: this synthetic ICS has no programme (generate with --programme-start)")
    offers = pq.read_table(path, columns=["nhs_number", "enrolled", "enrol_date"]).to_pandas()
    offers = offers[offers["enrolled"]]
    key, _demo = resolve_key(settings, synthetic=json.loads((folder / MARKER).read_text()) is not None)
    ids = Pseudonymiser(key).mapping(offers["nhs_number"]).column("person_id").to_numpy()
    return pd.DataFrame(
        {"person_id": ids.astype("int64"), "enrol_date": pd.to_datetime(offers["enrol_date"]).to_numpy()}
    )


def read_scores(path: Path) -> pd.DataFrame:
    """Columns person_id (warehouse pseudonym) and score: each person's score when the enrolment rule was applied
    (everyone the rule looked at, enrolled or not). Errors name the file, row and field."""
    if not path.is_file():
        raise EnrolmentFileError(f"{path}: no such scores file")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EnrolmentFileError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    missing = {"person_id", "score"} - set(frame.columns)
    if missing:
        raise EnrolmentFileError(f"{path}: missing column(s) {sorted(missing)} (need person_id, score)")
    ids, scores = pd.to_numeric(frame["person_id"], errors="coerce"), pd.to_numeric(frame["score"], errors="coerce")
    for field, bad in (("person_id", ids.isna() | (ids % 1 != 0)), ("score", scores.isna())):
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise EnrolmentFileError(
                f"{path}: row {row}, field {field}: not a "
                + ("whole-number pseudonym" if field == "person_id" else "number")
            )
    if ids.duplicated().any():
        row = int(ids.duplicated().to_numpy().nonzero()[0][0]) + 2
        raise EnrolmentFileError(f"{path}: row {row}, field person_id: the person is scored twice")
    return pd.DataFrame({"person_id": ids.astype("int64"), "score": scores.astype(float)})


def synthetic_cutoff(settings: Settings, folder: Path) -> tuple[pd.DataFrame, float, pd.Timestamp] | None:
    """The synthetic programme's cut-off rule in its first month, when the generator kept that month's scores
    (truth/programme_scores): everyone scoring at least the lowest score offered that month was offered (offers
    go highest first), so that score is the cut-off. Returns (scores as pseudonyms, cut-off, month) or None."""
    path = folder / "truth" / "programme_scores.parquet"
    if not (folder / MARKER).is_file() or not path.is_file():
        return None
    scores = pq.read_table(path).to_pandas()
    offers = pq.read_table(folder / "truth" / "programme_offers.parquet", columns=["offer_date", "score"]).to_pandas()
    if scores.empty or offers.empty:
        return None
    month = pd.Timestamp(scores["month"].iloc[0])
    first = offers[pd.to_datetime(offers["offer_date"]) == month]
    if first.empty:
        return None
    key, _demo = resolve_key(settings, synthetic=json.loads((folder / MARKER).read_text()) is not None)
    ids = Pseudonymiser(key).mapping(scores["nhs_number"]).column("person_id").to_numpy()
    return (
        pd.DataFrame({"person_id": ids.astype("int64"), "score": scores["score"].to_numpy(float)}),
        float(first["score"].min()),
        month,
    )
