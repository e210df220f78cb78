"""Code mappings shared by the Synthea and OMOP formats: conditions (SNOMED CT, ICD-10) to the
long-term condition flags' codes, medicines (by name) to BNF chemical substances, and race and
ethnicity to NHS ethnic categories. Documented in the README's mapping tables."""

from __future__ import annotations

import re

import pandas as pd

from features.sources import codes


def _text(value: object) -> str | None:
    """A source value as trimmed text; None for a missing one (None, pandas NA, NaN) or blank text. Mapped
    columns are pandas strings, whose missing value is NA in pandas 2 (NA has no truth value) and NaN in 3."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


CONDITION_SNOMED = {c.key: c.snomed for c in codes.CONDITIONS}  # the code the features look for

# SNOMED CT concepts seen in Synthea and OMOP data -> condition key (canonical codes included)
SNOMED_TO_CONDITION: dict[str, str] = {
    **{c.snomed: c.key for c in codes.CONDITIONS},
    "59621000": "hypertension",  # essential hypertension
    "44054006": "diabetes",
    "46635009": "diabetes",
    "127013003": "diabetes",  # type 2, type 1, diabetic renal disease
    "233678006": "asthma",  # childhood asthma
    "185086009": "copd",
    "87433001": "copd",  # chronic obstructive bronchitis, pulmonary emphysema
    "22298006": "chd",
    "414545008": "chd",
    "399211009": "chd",  # MI, ischaemic heart disease, history of MI
    "88805009": "heart_failure",
    "42343007": "heart_failure",  # chronic congestive heart failure, CHF
    "431855005": "ckd",
    "431856006": "ckd",
    "433144002": "ckd",
    "431857002": "ckd",
    "46177005": "ckd",
    "26929004": "dementia",
    "230265002": "dementia",  # Alzheimer's disease
    "370143000": "depression",
    "36923009": "depression",  # major depressive disorder, major depression
}


def condition_for_snomed(code: str | None) -> str | None:
    text = _text(code)
    return SNOMED_TO_CONDITION.get(text) if text else None


def condition_for_icd10(code: str | None) -> str | None:
    """The condition whose ICD-10 stems include the code's first three characters."""
    text = _text(code)
    if not text:
        return None
    stem = re.sub(r"[^A-Z0-9]", "", text.upper())[:3]
    return next((c.key for c in codes.CONDITIONS if stem in c.icd10), None)


# medicine name (lower case, word start) -> BNF chemical substance (9 characters)
BNF_BY_NAME: list[tuple[str, str]] = [
    ("amlodipine", "0206020A0"),
    ("ramipril", "0205051R0"),
    ("lisinopril", "0205051L0"),
    ("hydrochlorothiazide", "0202010F0"),
    ("metformin", "0601022B0"),
    ("insulin", "0601012V0"),
    ("albuterol", "0301011R0"),
    ("salbutamol", "0301011R0"),
    ("beclometasone", "0302000C0"),
    ("beclomethasone", "0302000C0"),
    ("fluticasone", "0302000N0"),
    ("budesonide", "0302000K0"),
    ("tiotropium", "0301020Q0"),
    ("atorvastatin", "0212000B0"),
    ("simvastatin", "0212000Y0"),
    ("aspirin", "0209000A0"),
    ("clopidogrel", "0209000C0"),
    ("furosemide", "0202020L0"),
    ("bisoprolol", "0204000H0"),
    ("metoprolol", "0204000K0"),
    ("apixaban", "0208020Z0"),
    ("warfarin", "0208020V0"),
    ("donepezil", "0411000D0"),
    ("sertraline", "0403030Q0"),
    ("fluoxetine", "0403030E0"),
    ("citalopram", "0403030D0"),
    ("omeprazole", "0103050P0"),
    ("levothyroxine", "0602010V0"),
    ("paracetamol", "0407010H0"),
    ("acetaminophen", "0407010H0"),
    ("prednisolone", "0603020T0"),
    ("prednisone", "0603020T0"),
    ("amoxicillin", "0501013B0"),
    ("nitroglycerin", "0206010F0"),
    ("glyceryl trinitrate", "0206010F0"),
    ("ibuprofen", "1001010J0"),
]


def bnf_for_name(name: str | None) -> str | None:
    """The BNF substance for a medicine's name or description, when one of the mapped names appears."""
    text = _text(name)
    if not text:
        return None
    text = text.lower()
    return next((bnf for word, bnf in BNF_BY_NAME if re.search(rf"\b{re.escape(word)}", text)), None)


# US-style race (Synthea, OMOP race concepts) -> NHS ethnic category; absent or unknown -> Z
RACE_TO_ETHNIC = {
    "white": "C",
    "black": "P",
    "black or african american": "P",
    "asian": "L",
    "native": "S",
    "american indian or alaska native": "S",
    "hawaiian": "S",
    "native hawaiian or other pacific islander": "S",
    "other": "S",
}
OMOP_RACE_CONCEPTS = {"8527": "C", "8516": "P", "8515": "L", "8657": "S", "8557": "S"}
# OMOP UK ethnicity concepts (NHS categories A-S), where a UK extract carries them as source values
NHS_CATEGORY = re.compile(r"^([A-HJ-NPRSZ]|99)$")


def ethnic_category(race: str | None, source_value: str | None = None) -> str:
    """An NHS ethnic category: an NHS code given as the source value wins; else the race mapping; else Z."""
    source = _text(source_value)
    if source and NHS_CATEGORY.match(source.upper()):
        return source.upper()
    race_text = _text(race)
    if race_text is None:
        return "Z"
    key = race_text.lower()
    return RACE_TO_ETHNIC.get(key) or OMOP_RACE_CONCEPTS.get(key) or "Z"
