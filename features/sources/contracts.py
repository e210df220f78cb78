"""Data contracts: what each source extract must look like, declared once as data.

A contract names the columns (with accepted source aliases such as HES `ADMIDATE`), their types,
code sets or patterns, ranges, the unique key, date-order rules, and which column dates the row
for the birth/death checks made when it is linked to `patients`. The loader compiles contracts to
SQL; rules broken by a row become its quarantine reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from phm.core.config import Strict

from features.sources import codes

ColumnType = Literal["string", "integer", "float", "date", "timestamp"]

# Quarantine reasons, in the order they are checked (the first broken rule is recorded).
RULES = {
    "invalid_nhs_number": "NHS number is not 10 digits with a valid modulus-11 check digit",
    "missing_value": "a required field is empty",
    "wrong_type": "a value cannot be read as the column's type",
    "unknown_code": "a code is not in the column's code set or pattern",
    "out_of_range": "a number is outside the plausible range",
    "future_date": "a date is after the extract's as-of date",
    "date_out_of_range": "a date is before 1900",
    "end_before_start": "an end date is before its start date",
    "before_birth": "the row is dated before the person's month of birth",
    "unknown_reference": "the row refers to a practice or site that is not in its reference table",
    "duplicate_key": "another row already has the same key (the first is kept)",
    "unlinked": "valid NHS number with no matching patient record",
    "after_death": "the row is dated after the person's date of death",
    "unmapped_code": "a Synthea or OMOP code or value has no mapping onto the linked data model",
    "unknown_person": "a Synthea or OMOP row refers to a person id that is not in its person table",
}


class Column(Strict):
    """One column of an extract."""

    name: str
    type: ColumnType = "string"
    required: bool = False
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    codes: list[str] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    references: tuple[str, str] | None = None  # (table, column)
    nhs_number: bool = False
    strip: str | None = None  # characters removed before checks (e.g. '.' in ICD-10 codes)


class TableContract(Strict):
    """One source table: columns, key, date-order rules and how it links to people."""

    name: str
    description: str
    columns: list[Column]
    key: list[str] = Field(default_factory=list)  # empty: exact duplicate rows count as duplicates
    order: list[tuple[str, str]] = Field(default_factory=list)  # (start, end) with end >= start
    event_date: str | None = None  # dates the row for birth/death checks
    required_table: bool = False

    @property
    def person_column(self) -> str | None:
        return next((c.name for c in self.columns if c.nhs_number), None)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _nhs() -> Column:
    return Column(
        name="nhs_number",
        required=True,
        nhs_number=True,
        aliases=["NHS_NUMBER", "NHSNO", "nhs_no"],
        description="NHS number (replaced by a keyed pseudonym `person_id` at load)",
    )


def _id(name: str, what: str) -> Column:
    return Column(name=name, description=f"source identifier of the {what}")


def _date(name: str, required: bool = False, aliases: list[str] | None = None, what: str = "") -> Column:
    return Column(name=name, type="date", required=required, aliases=aliases or [], description=what)


ICD10 = codes.ICD10_PATTERN
CONTRACTS: list[TableContract] = [
    TableContract(
        name="practices",
        description="GP practices and their PCN, place and ICB",
        required_table=True,
        key=["practice_code"],
        columns=[
            Column(name="practice_code", required=True, pattern=codes.PRACTICE_PATTERN),
            Column(name="pcn_code", required=True),
            Column(name="place"),
            Column(name="icb_code"),
        ],
    ),
    TableContract(
        name="imd",
        description="English Indices of Deprivation by LSOA (decile 1 = most deprived)",
        key=["lsoa11"],
        columns=[
            Column(name="lsoa11", required=True, pattern=codes.LSOA_PATTERN, aliases=["lsoa_code"]),
            Column(name="imd_decile", type="integer", required=True, min=1, max=10),
        ]
        + [
            Column(name=f"{d}_decile", type="integer", min=1, max=10)
            for d in ["income", "employment", "education", "health", "crime", "barriers", "living_environment"]
        ],
    ),
    TableContract(
        name="sites",
        description="Acute hospital sites and their bed base",
        key=["site_code"],
        columns=[
            Column(name="site_code", required=True, pattern=codes.SITE_PATTERN),
            Column(name="site_name"),
            Column(name="ga_beds", type="integer", required=True, min=0, max=5000),
            Column(name="critical_care_beds", type="integer", min=0, max=500),
        ],
    ),
    TableContract(
        name="patients",
        description="Demography and GP registration",
        required_table=True,
        key=["nhs_number"],
        order=[("registration_start", "registration_end")],
        event_date="registration_start",
        columns=[
            _nhs(),
            Column(name="year_of_birth", type="integer", required=True, min=1890, max=2100, aliases=["yob"]),
            Column(name="month_of_birth", type="integer", required=True, min=1, max=12, aliases=["mob"]),
            Column(name="sex", required=True, codes=list(codes.SEX_CODES), aliases=["gender"]),
            Column(name="ethnic_category", codes=list(codes.ETHNIC_CATEGORIES), aliases=["ETHNOS", "ethnicity"]),
            Column(name="lsoa11", pattern=codes.LSOA_PATTERN, aliases=["LSOA11", "lsoa"]),
            Column(
                name="practice_code",
                required=True,
                references=("practices", "practice_code"),
                aliases=["gp_practice_code"],
            ),
            _date("registration_start", required=True),
            _date("registration_end"),
            _date("date_of_death", aliases=["dod"]),
        ],
    ),
    TableContract(
        name="gp_events",
        description="Primary care coded events: diagnoses, observations, frailty deficits",
        key=["event_id"],
        event_date="event_date",
        columns=[
            _id("event_id", "GP event"),
            _nhs(),
            _date("event_date", required=True),
            Column(name="code_system", codes=["SNOMED", "READ", "CTV3"]),
            Column(name="code", required=True, pattern=r"^([0-9]{6,18}|[A-Za-z0-9.]{5})$"),
            Column(name="value", type="float"),
        ],
    ),
    TableContract(
        name="prescriptions",
        description="Primary care prescriptions issued",
        key=["prescription_id"],
        event_date="issue_date",
        columns=[
            _id("prescription_id", "issue"),
            _nhs(),
            _date("issue_date", required=True),
            Column(name="bnf_code", required=True, pattern=codes.BNF_PATTERN),
        ],
    ),
    TableContract(
        name="ae_attendances",
        description="Emergency department attendances (ECDS-like)",
        key=["attendance_id"],
        order=[("arrival_time", "departure_time")],
        event_date="arrival_time",
        columns=[
            _id("attendance_id", "attendance"),
            _nhs(),
            Column(name="arrival_time", type="timestamp", required=True),
            Column(name="departure_time", type="timestamp"),
            Column(name="site_code", required=True, references=("sites", "site_code")),
            Column(name="acuity", type="integer", codes=[str(a) for a in codes.ACUITY_CODES]),
            Column(name="diagnosis_snomed", pattern=codes.SNOMED_PATTERN),
            Column(name="discharge_destination", codes=list(codes.AE_DISCHARGE_DESTINATIONS)),
        ],
    ),
    TableContract(
        name="apc_spells",
        description="Admitted patient care spells (HES APC-like)",
        key=["spell_id"],
        order=[("admission_date", "discharge_date")],
        event_date="admission_date",
        columns=[
            _id("spell_id", "spell"),
            _nhs(),
            _date("admission_date", required=True, aliases=["ADMIDATE"]),
            _date("discharge_date", aliases=["DISDATE"]),
            Column(name="admission_method", required=True, codes=codes.ADMISSION_METHODS, aliases=["ADMIMETH"]),
            Column(name="primary_diagnosis", pattern=ICD10, strip=".", aliases=["DIAG_4_01"]),
            Column(name="site_code", required=True, references=("sites", "site_code"), aliases=["SITETRET"]),
            Column(name="critical_care_days", type="integer", min=0, max=365),
            Column(name="discharge_method", codes=["1", "2", "3", "4", "5", "8", "9"], aliases=["DISMETH"]),
        ],
    ),
    TableContract(
        name="op_appointments",
        description="Outpatient appointments",
        key=["appointment_id"],
        event_date="appointment_date",
        columns=[
            _id("appointment_id", "appointment"),
            _nhs(),
            _date("appointment_date", required=True),
            Column(name="specialty", pattern=r"^[1-8][0-9]{2}$", description="treatment function code"),
            Column(name="attendance_status", required=True, codes=["ATTENDED", "DNA", "CANCELLED"]),
        ],
    ),
    TableContract(
        name="community_contacts",
        description="Community health service contacts",
        key=["contact_id"],
        event_date="contact_date",
        columns=[
            _id("contact_id", "contact"),
            _nhs(),
            _date("contact_date", required=True),
            Column(name="service", codes=codes.COMMUNITY_SERVICES),
        ],
    ),
    TableContract(
        name="mh_contacts",
        description="Mental health service contacts",
        key=["contact_id"],
        event_date="contact_date",
        columns=[
            _id("contact_id", "contact"),
            _nhs(),
            _date("contact_date", required=True),
            Column(name="service", codes=codes.MH_SERVICES),
        ],
    ),
    TableContract(
        name="social_care",
        description="Adult social care packages",
        key=["package_id"],
        order=[("start_date", "end_date")],
        event_date="start_date",
        columns=[
            _id("package_id", "package"),
            _nhs(),
            Column(name="service_type", required=True, codes=codes.SOCIAL_CARE_SERVICES),
            _date("start_date", required=True),
            _date("end_date"),
        ],
    ),
    TableContract(
        name="housing",
        description="Housing flags (wider determinants)",
        event_date="recorded_date",
        columns=[
            _nhs(),
            Column(name="flag", required=True, codes=codes.HOUSING_FLAGS),
            _date("recorded_date", required=True),
        ],
    ),
    TableContract(
        name="home_monitoring",
        description="Home monitoring readings (COPD/asthma)",
        key=["nhs_number", "reading_date"],
        event_date="reading_date",
        columns=[
            _nhs(),
            _date("reading_date", required=True),
            Column(name="spo2", type="integer", min=50, max=100),
            Column(name="fev1_pct_predicted", type="float", min=5, max=160),
            Column(name="peak_flow_pct_predicted", type="float", min=5, max=160),
            Column(name="heart_rate", type="integer", min=20, max=250),
            Column(name="symptom_score", type="integer", min=0, max=10),
            Column(name="steps", type="integer", min=0, max=100_000),
        ],
    ),
]
CONTRACTS_BY_NAME = {c.name: c for c in CONTRACTS}
