"""Where enrolments come from: a CSV of pseudonymised ids and enrolment dates, or (synthetic data only) the
generator's ground truth mapped to the warehouse's pseudonyms."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.sources.pseudonymise import Pseudonymiser, resolve_key
from phm.core.settings import Settings

MARKER = "_synthetic.json"


class EnrolmentFileError(ValueError):
    """An enrolment file that cannot be read."""


def read_enrolment(path: Path) -> pd.DataFrame:
    """Columns person_id (the warehouse pseudonym) and enrol_date (YYYY-MM-DD); errors name the file and row."""
    if not path.is_file():
        raise EnrolmentFileError(f"{path}: no such enrolment file")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EnrolmentFileError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    missing = {"person_id", "enrol_date"} - set(frame.columns)
    if missing:
        raise EnrolmentFileError(f"{path}: missing column(s) {sorted(missing)} (need person_id, enrol_date)")
    ids = pd.to_numeric(frame["person_id"], errors="coerce")
    dates = pd.to_datetime(frame["enrol_date"], format="%Y-%m-%d", errors="coerce")
    for field, bad in (("person_id", ids.isna()), ("enrol_date", dates.isna())):
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is row 1
            raise EnrolmentFileError(f"{path}: row {row}, field {field}: "
                                     + ("not a whole-number pseudonym" if field == "person_id" else "not a date YYYY-MM-DD"))
    return pd.DataFrame({"person_id": ids.astype("int64"), "enrol_date": dates})


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
    return pd.DataFrame({"person_id": ids.astype("int64"), "enrol_date": pd.to_datetime(offers["enrol_date"]).to_numpy()})
