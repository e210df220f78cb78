"""Synthea encounters mapped to PHM activity by class: A&E attendances, admissions (emergency or elective),
outpatient appointments, community contacts, social care packages and primary care consultations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.common import Staging, column
from features.sources.formats.synthea.events import stage_gp_events
from features.sources.formats.vocab import condition_for_snomed

EMERGENCY_ADMISSION_CODE = "183452005"  # Emergency hospital admission (procedure)
PRIMARY_CARE = ("wellness", "ambulatory", "virtual")
ADMISSION_ICD10 = {
    **codes.CONDITION_ADMISSION_ICD10,
    **codes.EXACERBATION_ICD10,
    "hypertension": "I10X",
    "depression": "F329",
}


def stage_encounter_tables(stage: Staging, enc: pd.DataFrame, numbers: dict[str, str], site_of: dict) -> None:
    nhs = enc["PATIENT"].map(numbers)
    day = enc["start"].dt.strftime("%Y-%m-%d")
    site = column(enc, "ORGANIZATION").fillna("(none)").map(site_of)
    urgent = enc[enc["cls"].isin(["emergency", "urgentcare"])]
    stage.add(
        "ae_attendances",
        pd.DataFrame(
            {
                "attendance_id": urgent["Id"],
                "nhs_number": nhs[urgent.index],
                "arrival_time": urgent["start"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                "departure_time": urgent["stop"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                "site_code": site[urgent.index],
            }
        ),
        enc,
    )
    inpatient = enc[enc["cls"] == "inpatient"]
    arrivals = urgent[["PATIENT", "start"]].rename(columns={"start": "arrived"})
    pairs = inpatient[["Id", "PATIENT", "start"]].merge(arrivals, on="PATIENT")
    after_ae = set(
        pairs.loc[(pairs.start >= pairs.arrived) & (pairs.start - pairs.arrived <= pd.Timedelta(days=1)), "Id"]
    )
    emergency = (column(inpatient, "CODE").astype("string").str.strip() == EMERGENCY_ADMISSION_CODE) | inpatient[
        "Id"
    ].isin(after_ae)
    reason = column(inpatient, "REASONCODE").map(condition_for_snomed).map(ADMISSION_ICD10)
    stage.add(
        "apc_spells",
        pd.DataFrame(
            {
                "spell_id": inpatient["Id"],
                "nhs_number": nhs[inpatient.index],
                "admission_date": day[inpatient.index],
                "discharge_date": inpatient["stop"].dt.strftime("%Y-%m-%d"),
                "admission_method": np.where(emergency, "21", "11"),
                "primary_diagnosis": reason,
                "site_code": site[inpatient.index],
            }
        ),
        enc,
    )
    outpatient = enc[enc["cls"] == "outpatient"]
    stage.add(
        "op_appointments",
        pd.DataFrame(
            {
                "appointment_id": outpatient["Id"],
                "nhs_number": nhs[outpatient.index],
                "appointment_date": day[outpatient.index],
                "attendance_status": "ATTENDED",
            }
        ),
        enc,
    )
    community = enc[enc["cls"].isin(["home", "hospice"])]
    stage.add(
        "community_contacts",
        pd.DataFrame(
            {
                "contact_id": community["Id"],
                "nhs_number": nhs[community.index],
                "contact_date": day[community.index],
                "service": np.where(community["cls"] == "hospice", "palliative_care", "district_nursing"),
            }
        ),
        enc,
    )
    snf = enc[enc["cls"] == "snf"]
    stage.add(
        "social_care",
        pd.DataFrame(
            {
                "package_id": snf["Id"],
                "nhs_number": nhs[snf.index],
                "service_type": "nursing_care",
                "start_date": day[snf.index],
                "end_date": snf["stop"].dt.strftime("%Y-%m-%d"),
            }
        ),
        enc,
    )
    primary = enc[enc["cls"].isin(PRIMARY_CARE)]
    code = column(primary, "CODE").astype("string").str.strip()
    coded = code.str.fullmatch(r"[0-9]{6,18}").fillna(False)
    stage_gp_events(
        stage, enc, "e" + primary["Id"][coded], nhs[primary.index][coded], day[primary.index][coded], code[coded]
    )
    if (~coded).any():
        stage.reject(primary[~coded], "unmapped_code", "CODE", "encounters")
