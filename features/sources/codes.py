"""NHS code sets shared by the generator, the data contracts and (later) feature definitions.

Sources: NHS Data Dictionary (ethnic category, admission method, treatment function codes),
ICD-10 stems for long-term conditions as listed in the product's reference sheet, BNF sections.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- Ethnic category (NHS Data Dictionary, 2001-census based) --------------------------------
ETHNIC_CATEGORIES: dict[str, str] = {
    "A": "White British",
    "B": "White Irish",
    "C": "Any other White background",
    "D": "White and Black Caribbean",
    "E": "White and Black African",
    "F": "White and Asian",
    "G": "Any other Mixed background",
    "H": "Indian",
    "J": "Pakistani",
    "K": "Bangladeshi",
    "L": "Any other Asian background",
    "M": "Caribbean",
    "N": "African",
    "P": "Any other Black background",
    "R": "Chinese",
    "S": "Any other ethnic group",
    "Z": "Not stated",
    "99": "Not known",
}
BROAD_ETHNIC_GROUP: dict[str, str] = {
    **dict.fromkeys("ABC", "White"),
    **dict.fromkeys("DEFG", "Mixed"),
    **dict.fromkeys("HJKL", "Asian"),
    **dict.fromkeys("MNP", "Black"),
    **dict.fromkeys("RS", "Other"),
    "Z": "Unknown",
    "99": "Unknown",
}
KNOWN_ETHNIC_CATEGORIES = [c for c in ETHNIC_CATEGORIES if BROAD_ETHNIC_GROUP[c] != "Unknown"]

SEX_CODES = {"M": "Male", "F": "Female", "I": "Indeterminate", "U": "Not known"}

# ---- Admission method (HES APC ADMIMETH) -----------------------------------------------------
ELECTIVE_ADMISSION_METHODS = ["11", "12", "13"]
EMERGENCY_ADMISSION_METHODS = ["21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"]
OTHER_ADMISSION_METHODS = ["31", "32", "81", "82", "83"]
ADMISSION_METHODS = ELECTIVE_ADMISSION_METHODS + EMERGENCY_ADMISSION_METHODS + OTHER_ADMISSION_METHODS

# ---- A&E (ECDS-like) -------------------------------------------------------------------------
ACUITY_CODES = [1, 2, 3, 4, 5]
AE_DISCHARGE_DESTINATIONS = {
    "ADMITTED": "Admitted to a hospital bed",
    "HOME": "Discharged home",
    "GP": "Discharged with GP follow-up",
    "REFERRED": "Referred to outpatient or community service",
    "TRANSFERRED": "Transferred to another provider",
    "LEFT": "Left before treatment",
    "DIED": "Died in department",
}
# SNOMED CT findings used as A&E diagnoses.
AE_DIAGNOSES = {
    "29857009": "Chest pain",
    "267036007": "Dyspnoea",
    "21522001": "Abdominal pain",
    "125605004": "Fracture of bone",
    "44465007": "Sprain of ankle",
    "312608009": "Laceration",
    "68566005": "Urinary tract infection",
    "195967001": "Asthma",
    "195951007": "Acute exacerbation of COPD",
    "233604007": "Pneumonia",
    "91175000": "Seizure",
    "271594007": "Syncope",
    "161898004": "Falls",
    "422587007": "Nausea",
    "25064002": "Headache",
}

# ---- Outpatient treatment function codes -----------------------------------------------------
TREATMENT_FUNCTIONS = {
    "100": "General surgery",
    "101": "Urology",
    "110": "Trauma and orthopaedics",
    "130": "Ophthalmology",
    "300": "General internal medicine",
    "301": "Gastroenterology",
    "320": "Cardiology",
    "330": "Dermatology",
    "340": "Respiratory medicine",
    "361": "Nephrology",
    "400": "Neurology",
    "420": "Paediatrics",
    "430": "Elderly medicine",
    "502": "Gynaecology",
    "370": "Medical oncology",
    "710": "Adult mental illness",
}

COMMUNITY_SERVICES = [
    "district_nursing",
    "physiotherapy",
    "community_matron",
    "podiatry",
    "speech_language",
    "rapid_response",
    "palliative_care",
]
MH_SERVICES = ["iapt", "cmht", "crisis", "memory_clinic", "perinatal", "camhs"]
SOCIAL_CARE_SERVICES = ["home_care", "residential_care", "nursing_care", "reablement", "direct_payment", "day_care"]
HOUSING_FLAGS = ["temporary_accommodation", "overcrowding", "homeless", "poor_condition"]


# ---- Long-term conditions ---------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """A long-term condition: how the GP record codes it and how hospital records code it."""

    key: str
    label: str
    snomed: str  # GP record diagnosis code (SNOMED CT)
    icd10: tuple[str, ...]  # ICD-10 stems (3 characters) in hospital records
    prevalence: float  # rough England-wide prevalence, all ages (QOF-like)


CONDITIONS: tuple[Condition, ...] = (
    Condition("hypertension", "Hypertension", "38341003", ("I10", "I11", "I12", "I13", "I15"), 0.14),
    Condition("diabetes", "Diabetes", "73211009", ("E10", "E11", "E12", "E13", "E14"), 0.07),
    Condition("asthma", "Asthma", "195967001", ("J45", "J46"), 0.065),
    Condition("copd", "COPD", "13645005", ("J40", "J41", "J42", "J43", "J44"), 0.019),
    Condition("chd", "Coronary heart disease", "53741008", ("I20", "I21", "I22", "I23", "I24", "I25"), 0.03),
    Condition("heart_failure", "Heart failure", "84114007", ("I50",), 0.010),
    Condition("atrial_fibrillation", "Atrial fibrillation", "49436004", ("I48",), 0.021),
    Condition("ckd", "Chronic kidney disease", "709044004", ("N18",), 0.035),
    Condition("stroke", "Stroke", "230690007", ("I60", "I61", "I62", "I63", "I64"), 0.018),
    Condition("dementia", "Dementia", "52448006", ("F00", "F01", "F02", "F03", "G30"), 0.008),
    Condition("depression", "Depression", "35489007", ("F32", "F33"), 0.11),
)
CONDITION_KEYS = [c.key for c in CONDITIONS]

# Frailty deficits in the spirit of the electronic frailty index (SNOMED CT findings).
FRAILTY_DEFICITS = {
    "161898004": "Falls",
    "165232002": "Urinary incontinence",
    "15188001": "Hearing loss",
    "397540003": "Visual impairment",
    "228158008": "Difficulty walking",
    "386807006": "Memory impairment",
    "64859006": "Osteoporosis",
    "160689007": "Housebound",
    "89362005": "Weight loss",
    "404640003": "Dizziness",
    "105529008": "Lives alone",
    "400047006": "Peripheral vascular disease",
}
# Routine observations recorded in primary care (SNOMED CT) with a numeric value.
OBSERVATIONS = {
    "271649006": "Systolic blood pressure",
    "60621009": "Body mass index",
}
SMOKER_CODE = "77176002"  # Smoker (finding)

# ---- Prescribing: BNF chemical substances (first 4 characters = BNF section) -----------------
BNF_BY_CONDITION: dict[str, tuple[str, ...]] = {
    "hypertension": ("0206020A0", "0205051R0"),  # amlodipine, ramipril
    "diabetes": ("0601022B0",),  # metformin
    "asthma": ("0301011R0", "0302000C0"),  # salbutamol, beclometasone
    "copd": ("0301011R0", "0301020Q0"),  # salbutamol, tiotropium
    "chd": ("0212000B0", "0209000A0"),  # atorvastatin, aspirin
    "heart_failure": ("0202020L0", "0204000H0"),  # furosemide, bisoprolol
    "atrial_fibrillation": ("0208020Z0", "0204000H0"),  # apixaban, bisoprolol
    "ckd": ("0205051R0",),
    "stroke": ("0212000B0", "0209000C0"),  # atorvastatin, clopidogrel
    "dementia": ("0411000D0",),  # donepezil
    "depression": ("0403030Q0",),  # sertraline
}
BNF_COMMON = ("0103050P0", "0602010V0", "0407010H0")  # omeprazole, levothyroxine, paracetamol
RESCUE_PACK = ("0603020T0", "0501013B0")  # prednisolone + amoxicillin (BNF 6.3.2 and 5.1)

# ---- Hospital diagnoses (ICD-10, 4 characters as in HES DIAG_4_01) ---------------------------
EMERGENCY_DIAGNOSES_GENERAL = (
    "R074",
    "J189",
    "N390",
    "R55X",
    "A419",
    "R104",
    "K922",
    "S720",
    "R296",
    "L039",
    "J22X",
    "E86X",
    "R060",
    "K590",
    "I219",
    "I639",
    "R410",
)
ELECTIVE_DIAGNOSES = ("H259", "M171", "K802", "C509", "N400", "K409", "M161", "C189", "Z511")
EXACERBATION_ICD10 = {"copd": "J441", "asthma": "J459"}
CONDITION_ADMISSION_ICD10 = {
    "heart_failure": "I500",
    "atrial_fibrillation": "I489",
    "diabetes": "E119",
    "chd": "I209",
    "stroke": "I639",
    "dementia": "F039",
    "ckd": "N189",
}


# ---- Ambulatory care sensitive conditions (ACSC) ---------------------------------------------
# Emergency admissions with one of these primary diagnoses are counted by the NHS Outcomes Framework as
# avoidable with good primary and community care. Source: NHS Digital, NHS Outcomes Framework indicator
# specifications 2.3.i "Unplanned hospitalisation for chronic ambulatory care sensitive conditions" and 3a
# "Emergency admissions for acute conditions that should not usually require hospital admission" (conditions from
# the NHS Institute for Innovation and Improvement's ACSC list). Indicator 2.3.ii (asthma, diabetes and epilepsy in
# under-19s) uses codes already in 2.3.i. Stems are ICD-10 without the dot (3 characters: every code under it).
# Applied to the primary diagnosis only: the specifications' procedure exclusions (angina, heart failure,
# hypertension) and the COPD rule for J20 with a secondary diagnosis need fields the extracts do not carry, so J20
# is left out. Transcribed by hand: check against the current specification before relying on a figure.
@dataclass(frozen=True)
class AcscGroup:
    """One condition of the ACSC list: which indicator counts it and its ICD-10 stems."""

    key: str
    label: str
    indicator: str  # "2.3i" (chronic) or "3a" (acute)
    icd10: tuple[str, ...]


def _stems(*codes: str) -> tuple[str, ...]:
    return tuple(c.replace(".", "") for c in codes)


ACSC_GROUPS: tuple[AcscGroup, ...] = (
    # chronic (NHS OF 2.3.i)
    AcscGroup("angina", "Angina", "2.3i", _stems("I20", "I24.0", "I24.8", "I24.9", "I25", "Z03.4")),
    AcscGroup("asthma", "Asthma", "2.3i", _stems("J45", "J46")),
    AcscGroup("atrial_fibrillation", "Atrial fibrillation and flutter", "2.3i", _stems("I48")),
    AcscGroup("copd", "Chronic obstructive pulmonary disease", "2.3i", _stems("J41", "J42", "J43", "J44", "J47")),
    AcscGroup("heart_failure", "Congestive heart failure", "2.3i", _stems("I11.0", "I50", "J81")),
    AcscGroup("epilepsy", "Convulsions and epilepsy", "2.3i", _stems("G40", "G41", "R56", "O15")),
    AcscGroup("dementia", "Dementia", "2.3i", _stems("F00", "F01", "F02", "F03")),
    AcscGroup(
        "diabetes", "Diabetes complications", "2.3i", tuple(f"E1{t}{k}" for t in "01234" for k in "012345678")
    ),  # E10.0-E10.8 ... E14.0-E14.8
    AcscGroup("hypertension", "Hypertension", "2.3i", _stems("I10", "I11.9")),
    AcscGroup("iron_deficiency_anaemia", "Iron-deficiency anaemia", "2.3i", _stems("D50.1", "D50.8", "D50.9")),
    AcscGroup("hepatitis_b", "Chronic viral hepatitis B", "2.3i", _stems("B18.0", "B18.1")),
    # acute (NHS OF 3a)
    AcscGroup("cellulitis", "Cellulitis", "3a", _stems("L03", "L04", "L08.0", "L08.8", "L08.9", "L88", "L98.0")),
    AcscGroup(
        "dehydration",
        "Dehydration and gastroenteritis",
        "3a",
        _stems("E86", "K52.2", "K52.8", "K52.9", "A02.0", "A04", "A05.9", "A07.2", "A08", "A09"),
    ),
    AcscGroup(
        "dental",
        "Dental conditions",
        "3a",
        _stems("A69.0", "K02", "K03", "K04", "K05", "K06", "K08", "K09.8", "K09.9", "K12", "K13"),
    ),
    AcscGroup(
        "ent_infection", "Ear, nose and throat infections", "3a", _stems("H66", "H67", "J02", "J03", "J06", "J31.2")
    ),
    AcscGroup("gangrene", "Gangrene", "3a", _stems("R02")),
    AcscGroup("pelvic_inflammatory_disease", "Pelvic inflammatory disease", "3a", _stems("N70", "N73", "N74")),
    AcscGroup(
        "ulcer", "Perforated or bleeding ulcer", "3a", tuple(f"K2{s}{k}" for s in "5678" for k in "012456")
    ),  # K25-K28 .0-.2 and .4-.6
    AcscGroup(
        "urinary_infection",
        "Pyelonephritis and kidney or urinary tract infection",
        "3a",
        _stems("N10", "N11", "N12", "N13.6", "N39.0"),
    ),
    AcscGroup(
        "influenza_pneumonia",
        "Influenza and pneumonia",
        "3a",
        _stems("J10", "J11", "J13", "J14", "J15.3", "J15.4", "J15.7", "J15.9", "J16.8", "J18.1", "J18.8"),
    ),
    AcscGroup(
        "vaccine_preventable",
        "Other vaccine-preventable conditions",
        "3a",
        _stems("A35", "A36", "A37", "A80", "B05", "B06", "B16.1", "B16.9", "B26", "G00.0", "M01.4"),
    ),
)
ACSC_ICD10: tuple[str, ...] = tuple(stem for g in ACSC_GROUPS for stem in g.icd10)


def is_acsc(code: str) -> bool:
    """Whether an ICD-10 primary diagnosis (4 characters as in HES, or 3) is an ambulatory care sensitive condition."""
    code = code.replace(".", "").upper()
    return any(code.startswith(stem) for stem in ACSC_ICD10)


# Acute ACSC primary diagnoses the synthetic ICS gives some general emergency admissions, with their weights.
SYNTHETIC_ACSC_ACUTE = {
    "N390": 0.30,
    "N10X": 0.08,
    "L039": 0.20,
    "E86X": 0.12,
    "K529": 0.08,
    "J039": 0.05,
    "H669": 0.03,
    "J181": 0.08,
    "K047": 0.02,
    "K254": 0.02,
    "R02X": 0.02,
}


ICD10_PATTERN = r"^[A-Z][0-9]{2}[0-9X]?$"
SNOMED_PATTERN = r"^[0-9]{6,18}$"
BNF_PATTERN = r"^[0-9]{4}[0-9A-Z]{5}$"
LSOA_PATTERN = r"^[EW]01[0-9]{6}$"
PRACTICE_PATTERN = r"^[A-Z][0-9]{5}$"
SITE_PATTERN = r"^R[A-Z0-9]{2}[0-9]{2}$"
