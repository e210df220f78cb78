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

COMMUNITY_SERVICES = ["district_nursing", "physiotherapy", "community_matron", "podiatry",
                      "speech_language", "rapid_response", "palliative_care"]
MH_SERVICES = ["iapt", "cmht", "crisis", "memory_clinic", "perinatal", "camhs"]
SOCIAL_CARE_SERVICES = ["home_care", "residential_care", "nursing_care", "reablement",
                        "direct_payment", "day_care"]
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
    "R074", "J189", "N390", "R55X", "A419", "R104", "K922", "S720", "R296", "L039",
    "J22X", "E86X", "R060", "K590", "I219", "I639", "R410",
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

ICD10_PATTERN = r"^[A-Z][0-9]{2}[0-9X]?$"
SNOMED_PATTERN = r"^[0-9]{6,18}$"
BNF_PATTERN = r"^[0-9]{4}[0-9A-Z]{5}$"
LSOA_PATTERN = r"^[EW]01[0-9]{6}$"
PRACTICE_PATTERN = r"^[A-Z][0-9]{5}$"
SITE_PATTERN = r"^R[A-Z0-9]{2}[0-9]{2}$"
