"""Turn the simulated people and events into the source extracts of DESIGN.md section 3.

Each builder returns a `pyarrow.Table` keyed by NHS number, as an ICS would receive it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources.codes import (
    AE_DIAGNOSES,
    CONDITION_ADMISSION_ICD10,
    CONDITIONS,
    COMMUNITY_SERVICES,
    ELECTIVE_DIAGNOSES,
    EMERGENCY_DIAGNOSES_GENERAL,
    EXACERBATION_ICD10,
    MH_SERVICES,
    TREATMENT_FUNCTIONS,
    is_acsc,
)
from features.synthetic import acsc
from features.synthetic.activity import Activity
from features.synthetic.calendar import Calendar
from features.synthetic.config import GeneratorConfig
from features.synthetic.population import IMD_DOMAINS, NEVER, Geography, People, deprivation
from features.synthetic.respiratory import Respiratory

DATE = pa.date32()
TS = pa.timestamp("s")


def date_array(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=DATE, mask=null)


def id_array(prefix: str, n: int) -> pa.Array:
    """Source identifiers PREFIX000000001, PREFIX000000002, ..."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()), width=9, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def sort_order(day: np.ndarray, person: np.ndarray, code: np.ndarray | None = None) -> np.ndarray:
    """Row order by day, then person, then code: one argsort of a packed int64 key (much cheaper
    than `lexsort` on millions of rows)."""
    key = (np.asarray(day, dtype=np.int64) - 40_000) << 40 | np.asarray(person, dtype=np.int64) << 8
    if code is not None:
        key |= np.asarray(code, dtype=np.int64)
    return np.argsort(key, kind="stable")


def take(values: pa.Array | np.ndarray | list, index: np.ndarray) -> pa.Array:
    """values[index] as an Arrow array: far cheaper than indexing NumPy string arrays."""
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    return pc.take(arr, pa.array(np.asarray(index, dtype=np.int64)))


def organisations(geo: Geography, beds: np.ndarray, cc_beds: np.ndarray) -> dict[str, pa.Table]:
    practices = pa.table(
        {
            "practice_code": geo.practice_code,
            "pcn_code": geo.practice_pcn,
            "place": geo.practice_place,
            "icb_code": np.full(geo.practice_code.size, geo.icb_code),
        }
    )
    imd = pa.table(
        {
            "lsoa11": geo.lsoa_code,
            "imd_decile": geo.imd_decile.astype(np.int16),
            **{f"{d}_decile": geo.imd_domains[d].astype(np.int16) for d in IMD_DOMAINS},
        }
    )
    sites = pa.table(
        {
            "site_code": geo.site_code,
            "site_name": geo.site_name,
            "ga_beds": beds.astype(np.int32),
            "critical_care_beds": cc_beds.astype(np.int32),
        }
    )
    return {"practices": practices, "imd": imd, "sites": sites}


def patients(people: People, geo: Geography) -> pa.Table:
    birth = people.birth.astype("datetime64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    moved = people.exit_move < NEVER
    died = people.death < NEVER
    return pa.table(
        {
            "nhs_number": people.nhs_number,
            "year_of_birth": year.astype(np.int32),
            "month_of_birth": month.astype(np.int32),
            "sex": people.sex,
            "ethnic_category": people.ethnicity_recorded,
            "lsoa11": geo.lsoa_code[people.lsoa],
            "practice_code": geo.practice_code[people.practice],
            "registration_start": date_array(people.reg_start),
            "registration_end": date_array(people.exit, null=~(moved | died)),
            "date_of_death": date_array(people.death, null=~died),
        }
    )


class HospitalBuilder:
    """Spells and A&E attendances from the simulated admissions, plus non-residents' activity."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        people: People,
        geo: Geography,
        cal: Calendar,
        rng: np.random.Generator,
        all_nhs: np.ndarray,
    ):
        self.cfg, self.people, self.geo, self.cal, self.rng = cfg, people, geo, cal, rng
        self.all_nhs = pa.array(all_nhs)  # residents first, then non-residents (unlinked in the warehouse)
        self.n_ooa = all_nhs.size - people.n
        self.day0 = int(cal.days[0])
        self.end = int(cal.days[-1])

    def _site(self, person: np.ndarray) -> np.ndarray:
        n_sites = self.geo.site_code.size
        home = np.where(
            person < self.people.n,
            self.geo.practice_site[self.people.practice[np.minimum(person, self.people.n - 1)]],
            self.rng.integers(0, n_sites, person.size),
        )
        other = self.rng.integers(0, n_sites, person.size)
        return np.where(self.rng.random(person.size) < 0.85, home, other)

    def _age(self, person: np.ndarray, day_idx: np.ndarray) -> np.ndarray:
        birth = np.where(
            person < self.people.n, self.people.birth[np.minimum(person, self.people.n - 1)], self.day0 - 40 * 365
        )
        return (day_idx + self.day0 - birth) / 365.25

    def spells(self, act: Activity, resp: Respiratory) -> tuple[pa.Table, dict[str, np.ndarray]]:
        rng, p = self.rng, self.people
        ooa_em = rng.integers(0, self.n_ooa, int(act.emergency_person.size * self.cfg.out_of_area_share)) + p.n
        ooa_day = rng.integers(0, self.cal.n_days, ooa_em.size).astype(np.int32)
        resp_sev = resp.exac_severe
        person = np.concatenate([act.emergency_person, resp.exac_person[resp_sev], ooa_em, act.elective_person])
        day = np.concatenate([act.emergency_day, resp.exac_day[resp_sev], ooa_day, act.elective_day])
        n_em = act.emergency_person.size + int(resp_sev.sum()) + ooa_em.size
        emergency = np.arange(person.size) < n_em
        n = person.size
        age = self._age(person, day)
        # admission method
        em_methods = np.array(["21", "22", "23", "24", "25", "2A", "2B", "2D"])
        em_p = np.array([0.70, 0.12, 0.01, 0.04, 0.01, 0.04, 0.03, 0.05])
        el_methods = np.array(["11", "12", "13"])
        method = np.where(emergency, rng.choice(em_methods, n, p=em_p), rng.choice(el_methods, n, p=[0.6, 0.3, 0.1]))
        # primary diagnosis: exacerbations, a known condition (35%), or a general emergency reason
        diag = np.where(
            emergency, rng.choice(np.array(EMERGENCY_DIAGNOSES_GENERAL), n), rng.choice(np.array(ELECTIVE_DIAGNOSES), n)
        )
        resident = person < p.n
        safe = np.minimum(person, p.n - 1)
        general = emergency.copy()
        for key, code in CONDITION_ADMISSION_ICD10.items():
            j = [c.key for c in CONDITIONS].index(key)
            has = resident & emergency & (p.onset[safe, j] <= day + self.day0) & (rng.random(n) < acsc.CONDITION_CODED)
            diag = np.where(has, code, diag)
            general &= ~has
        lo, hi = act.emergency_person.size, act.emergency_person.size + int(resp_sev.sum())
        diag[lo:hi] = np.vectorize(EXACERBATION_ICD10.get)(resp.exac_condition[resp_sev])
        general[lo:hi] = False
        # general emergency admissions: an acute ACSC or another reason, from a stream of their own
        dep = np.where(resident, deprivation(self.geo.imd_decile[p.lsoa[safe]]), 0.5)
        diag = acsc.recode(diag, general, dep, age, np.random.default_rng([self.cfg.seed, 101, *b"acsc"]))
        # length of stay: emergency stays lengthen with age and frailty; most electives are day cases
        frail = np.where(resident, p.frailty[safe], 0)
        los_em = np.floor(np.exp(rng.normal(emergency_log_stay(age, frail), 1.0))).clip(0, 150)
        los_el = np.where(rng.random(n) < 0.65, 0, rng.geometric(0.35, n))
        los = np.where(emergency, los_em, los_el).astype(np.int64)
        cc_p = np.where(emergency, emergency_critical_care_share(age), 0.006)
        cc = np.where(rng.random(n) < cc_p, rng.geometric(0.33, n), 0)
        los = np.maximum(los, np.where(cc > 0, cc + 1, 0))
        admit = day.astype(np.int64) + self.day0
        discharge = admit + los
        died_in = resident & (p.death[safe] >= admit) & (p.death[safe] < discharge)
        discharge = np.where(died_in, p.death[safe], discharge)
        ongoing = discharge > self.end
        site = self._site(person)
        order = sort_order(admit, person)
        cols = {
            "person": person[order],
            "admit": admit[order],
            "discharge": discharge[order],
            "ongoing": ongoing[order],
            "cc": cc[order],
            "site": site[order],
            "method": method[order],
            "emergency": emergency[order],
            "acsc": emergency[order] & _acsc(diag[order]),
        }
        table = pa.table(
            {
                "spell_id": id_array("SP", n),
                "nhs_number": self._nhs(cols["person"]),
                "admission_date": date_array(cols["admit"]),
                "discharge_date": date_array(cols["discharge"], null=cols["ongoing"]),
                "admission_method": cols["method"],
                "primary_diagnosis": diag[order],
                "site_code": self.geo.site_code[cols["site"]],
                "critical_care_days": cols["cc"].astype(np.int32),
                "discharge_method": np.where(died_in[order], "4", "1"),
            }
        )
        return table, cols

    def _nhs(self, person: np.ndarray) -> pa.Array:
        return take(self.all_nhs, person)

    def ae(self, act: Activity, spells: dict[str, np.ndarray]) -> pa.Table:
        rng = self.rng
        via_ae = spells["emergency"] & (spells["method"] == "21")
        ooa = rng.integers(0, self.n_ooa, int(act.ae_person.size * self.cfg.out_of_area_share * 3)) + self.people.n
        person = np.concatenate([spells["person"][via_ae], act.ae_person, ooa])
        day = np.concatenate(
            [spells["admit"][via_ae] - self.day0, act.ae_day, rng.integers(0, self.cal.n_days, ooa.size)]
        ).astype(np.int64)
        admitted = np.arange(person.size) < via_ae.sum()
        n = person.size
        site = np.where(admitted, 0, self._site(person))
        site[admitted] = spells["site"][via_ae]
        hour = rng.choice(24, n, p=_arrival_hours())
        arrival = (day + self.day0) * 86400 + hour * 3600 + rng.integers(0, 3600, n)
        # ambulance handovers and admissions take longer; a minority breach four hours
        stay = (np.exp(rng.normal(np.where(admitted, 5.6, 5.0), 0.55, n)) * 60).astype(np.int64)
        acuity = np.where(
            admitted,
            rng.choice([1, 2, 3], n, p=[0.08, 0.42, 0.50]),
            rng.choice([1, 2, 3, 4, 5], n, p=[0.005, 0.06, 0.40, 0.45, 0.085]),
        )
        codes = np.array(list(AE_DIAGNOSES))
        destination = np.where(
            admitted,
            "ADMITTED",
            rng.choice(
                np.array(["HOME", "GP", "REFERRED", "TRANSFERRED", "LEFT"]), n, p=[0.55, 0.25, 0.12, 0.02, 0.06]
            ),
        )
        order = np.lexsort((person, arrival))  # seconds: keep the two-key sort
        return pa.table(
            {
                "attendance_id": id_array("AE", n),
                "nhs_number": self._nhs(person[order]),
                "arrival_time": pa.array(arrival[order], type=TS),
                "departure_time": pa.array((arrival + stay)[order], type=TS),
                "site_code": self.geo.site_code[site[order]],
                "acuity": acuity[order].astype(np.int16),
                "diagnosis_snomed": rng.choice(codes, n)[order],
                "discharge_destination": destination[order],
            }
        )


def _acsc(diag: np.ndarray) -> np.ndarray:
    codes, at = np.unique(diag, return_inverse=True)
    return np.array([is_acsc(c) for c in codes], dtype=bool)[at]


def _arrival_hours() -> np.ndarray:
    h = np.array([2, 1.5, 1.2, 1, 1, 1.2, 2, 3.5, 5.5, 7, 7.5, 7.5, 7, 6.8, 6.5, 6.3, 6.2, 6, 5.6, 5, 4.5, 4, 3.2, 2.5])
    return h / h.sum()


def outpatients(
    act: Activity, people: People, geo: Geography, cal: Calendar, rng: np.random.Generator, nhs: pa.Array
) -> pa.Table:
    person, day = act.op_person, act.op_day.astype(np.int64) + int(cal.days[0])
    n = person.size
    dep = deprivation(geo.imd_decile[people.lsoa[person]])
    age = (day - people.birth[person]) / 365.25
    dna_p = np.clip(0.045 + 0.05 * dep + 0.03 * ((age > 16) & (age < 30)) + 0.015 * people.latent[person], 0.01, 0.3)
    u = rng.random(n)
    status = np.where(u < dna_p, 1, np.where(u < dna_p + 0.05, 2, 0))  # ATTENDED, DNA, CANCELLED
    specialties = list(TREATMENT_FUNCTIONS)
    specialty = np.where(age < 16, specialties.index("420"), rng.integers(0, len(specialties), n))
    order = sort_order(day, person)
    return pa.table(
        {
            "appointment_id": id_array("OP", n),
            "nhs_number": take(nhs, person[order]),
            "appointment_date": date_array(day[order]),
            "specialty": take(specialties, specialty[order]),
            "attendance_status": take(["ATTENDED", "DNA", "CANCELLED"], status[order]),
        }
    )


def contacts(
    person: np.ndarray,
    day_idx: np.ndarray,
    services: list[str],
    prefix: str,
    cal: Calendar,
    service: np.ndarray,
    nhs: pa.Array,
) -> pa.Table:
    """Contacts table; `service` holds an index into `services` per contact."""
    day = day_idx.astype(np.int64) + int(cal.days[0])
    order = sort_order(day, person)
    return pa.table(
        {
            "contact_id": id_array(prefix, person.size),
            "nhs_number": take(nhs, person[order]),
            "contact_date": date_array(day[order]),
            "service": take(services, service[order]),
        }
    )


def community(act: Activity, people: People, cal: Calendar, rng: np.random.Generator, nhs: pa.Array) -> pa.Table:
    """Community contacts; palliative care concentrates in the last year of life."""
    person, day = act.community_person, act.community_day.astype(np.int64) + int(cal.days[0])
    to_death = people.death[person].astype(np.int64) - day
    palliative = rng.random(person.size) < np.where((to_death >= 0) & (to_death < 365), 0.5, 0.01)
    pal = COMMUNITY_SERVICES.index("palliative_care")
    other = rng.integers(0, len(COMMUNITY_SERVICES) - 1, person.size)
    service = np.where(palliative, pal, other + (other >= pal))
    return contacts(person, act.community_day, COMMUNITY_SERVICES, "CC", cal, service, nhs)


def mental_health(act: Activity, cal: Calendar, rng: np.random.Generator, nhs: pa.Array) -> pa.Table:
    service = rng.integers(0, len(MH_SERVICES), act.mh_person.size)
    return contacts(act.mh_person, act.mh_day, MH_SERVICES, "MH", cal, service, nhs)


def emergency_log_stay(age: np.ndarray, frailty: np.ndarray) -> np.ndarray:
    """Mean of the log length of an emergency stay (days; sd 1): longer with age and frailty."""
    return -0.1 + 0.024 * np.maximum(age - 30, 0) + 0.1 * np.log1p(frailty)


def emergency_critical_care_share(age: np.ndarray) -> np.ndarray:
    """Chance an emergency stay includes critical care (then at least its days plus one)."""
    return 0.03 * np.where((age > 45) & (age < 85), 1.5, 1.0)


def emergency_stays(rng: np.random.Generator, age: np.ndarray, frailty: np.ndarray) -> np.ndarray:
    """Lengths of emergency stays (whole days) drawn as the hospital extract draws them."""
    los = np.floor(np.exp(rng.normal(emergency_log_stay(age, frailty), 1.0))).clip(0, 150)
    cc = np.where(rng.random(age.size) < emergency_critical_care_share(age), rng.geometric(0.33, age.size), 0)
    return np.maximum(los, np.where(cc > 0, cc + 1, 0)).astype(np.int64)


def in_group(group: str, people: People, geo: Geography) -> np.ndarray:
    """Who belongs to a defect's group: a broad ethnic group, or core20 (IMD deciles 1-2)."""
    from features.sources.codes import BROAD_ETHNIC_GROUP

    if group == "core20":
        return geo.imd_decile[people.lsoa] <= 2
    return np.vectorize(BROAD_ETHNIC_GROUP.get)(people.ethnicity) == group
