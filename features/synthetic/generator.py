"""Generate a whole synthetic ICS: extracts, ground truth and a realism summary.

Output folder layout::

    OUT/patients.parquet, practices.parquet, ... (one extract per table, DESIGN.md section 3)
    OUT/truth/*.parquet        ground truth: true risks, latent attributes, injected defects
    OUT/summary.json           realism figures (no identifiers)
    OUT/_synthetic.json        marker: this folder is synthetic (the demo key may be used)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.sources import nhs_number
from features.sources.codes import BROAD_ETHNIC_GROUP, CONDITION_KEYS
from features.synthetic import records, tables
from features.synthetic.activity import simulate_activity
from features.synthetic.calendar import Calendar, to_days
from features.synthetic.config import GeneratorConfig
from features.synthetic.defects import inject
from features.synthetic.intervention import Programme
from features.synthetic.programme_truth import programme_truth
from features.synthetic.population import NEVER, build_geography, build_people
from features.synthetic.respiratory import simulate_respiratory
from features.synthetic.truth import WAREHOUSE, outcome_summary, truth_tables

SOURCE_TABLES = [
    "patients",
    "practices",
    "imd",
    "sites",
    "gp_events",
    "prescriptions",
    "ae_attendances",
    "apc_spells",
    "op_appointments",
    "community_contacts",
    "mh_contacts",
    "social_care",
    "housing",
    "home_monitoring",
]
MARKER = "_synthetic.json"

Progress = Callable[[str], None]


@dataclass
class GenerationResult:
    out_dir: Path
    rows: dict[str, int]
    summary: dict


def generate(cfg: GeneratorConfig, out_dir: Path, progress: Progress | None = None) -> GenerationResult:
    """Simulate the ICS described by `cfg` and write it to `out_dir` (replacing what was there)."""
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(cfg.seed)
    cal = Calendar.build(cfg.start, cfg.end)
    index_days = [to_days(d) for d in cfg.index_dates]

    say("geography and people")
    geo = build_geography(cfg, rng)
    people = build_people(cfg, geo, cal, rng)
    say("deaths, admissions and community activity")
    shift = None
    if cfg.shift is not None:
        broad = np.vectorize(BROAD_ETHNIC_GROUP.get, otypes=["U7"])(people.ethnicity)
        who = np.ones(people.n, bool) if cfg.shift.group is None else broad == cfg.shift.group
        shift = (to_days(cfg.shift.start), who.astype(np.float64), cfg.shift.factor)
    use = None
    if cfg.access_barrier is not None:
        use = np.where(tables.in_group(cfg.access_barrier.group, people, geo), cfg.access_barrier.factor, 1.0)
    programme = None
    if cfg.programme is not None:
        programme = Programme.build(
            cfg.programme,
            geo.practice_code,
            people.practice,
            cfg.seed,
            {g: tables.in_group(g, people, geo) for g in cfg.programme.group_factors},
        )
    act = simulate_activity(people, geo, cal, rng, index_days, shift, use, programme, truth_seed=cfg.seed)
    say("COPD and asthma exacerbations, home monitoring")
    resp = simulate_respiratory(people, geo, cal, rng, to_days(cfg.monitoring_start), index_days)

    say("building extracts")
    n_ooa = max(10, int(cfg.persons * 0.05))
    ooa_nhs = nhs_number.generate(np.random.default_rng([cfg.seed, 7]), people.n + n_ooa)
    ooa_nhs = np.setdiff1d(ooa_nhs, people.nhs_number)[:n_ooa]
    all_nhs = np.concatenate([people.nhs_number, ooa_nhs])
    nhs = pa.array(all_nhs)
    hidden = records.under_recorded(cfg, people, geo, rng)

    def stream(name: str) -> np.random.Generator:
        """Each extract draws from its own seeded stream, so they can be built concurrently."""
        return np.random.default_rng([cfg.seed, 101, *name.encode()])

    def hospital() -> dict[str, pa.Table]:
        hosp = tables.HospitalBuilder(cfg, people, geo, cal, stream("hospital"), all_nhs)
        spells, cols = hosp.spells(act, resp)
        beds, cc_beds, occupancy = _size_sites(cols, geo.site_code.size, cal)
        built = {**tables.organisations(geo, beds, cc_beds), "apc_spells": spells, "ae_attendances": hosp.ae(act, cols)}
        return {**built, "_spells": cols, "_beds": (beds, cc_beds, occupancy)}

    tasks = {
        "hospital": hospital,
        "patients": lambda: {"patients": tables.patients(people, geo)},
        "op": lambda: {"op_appointments": tables.outpatients(act, people, geo, cal, stream("op"), nhs)},
        "contacts": lambda: {
            "community_contacts": tables.community(act, people, cal, stream("community"), nhs),
            "mh_contacts": tables.mental_health(act, cal, stream("mh"), nhs),
        },
        "gp": lambda: {"gp_events": records.gp_events(people, cal, stream("gp"), hidden, nhs)},
        "rx": lambda: {"prescriptions": records.prescriptions(people, cal, resp, stream("rx"), hidden, nhs)},
        "other": lambda: {
            "social_care": records.social_care(people, geo, cal, stream("social")),
            "housing": records.housing(people, geo, cal, stream("housing")),
            "home_monitoring": records.home_monitoring(resp, cal, nhs),
        },
    }
    out: dict = {}
    with ThreadPoolExecutor(max_workers=2) as pool:  # NumPy and Arrow release the GIL on big arrays
        for part in pool.map(lambda task: task(), tasks.values()):
            out.update(part)
    spell_cols = out.pop("_spells")
    beds, cc_beds, occupancy = out.pop("_beds")
    defects: list[dict] = []
    if cfg.defects.malformed_share > 0:
        bad_rng = np.random.default_rng([cfg.seed, 13])
        for name in SOURCE_TABLES:
            out[name], rec = inject(name, out[name], cfg.defects.malformed_share, bad_rng)
            defects += rec

    truth = truth_tables(people, act, resp, cal, hidden, defects)
    if programme is not None:
        truth.update(programme_truth(programme, people, geo, resp, cal, spell_cols, cfg.seed))
    summary = _summary(cfg, people, geo, act, resp, cal, spell_cols, occupancy, beds, cc_beds, index_days)

    say("writing files")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "truth").mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda name: _write(out[name], out_dir / name, cfg.file_format), SOURCE_TABLES))
    for name, table in truth.items():
        pq.write_table(table, out_dir / "truth" / f"{name}.parquet", compression="zstd")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    (out_dir / MARKER).write_text(
        json.dumps(
            {
                "generator": "phm synthetic ICS",
                "config": cfg.model_dump(mode="json"),
                "warehouse_truth": list(WAREHOUSE),
            },
            indent=2,
            sort_keys=True,
        )
    )
    return GenerationResult(out_dir, {k: v.num_rows for k, v in out.items()}, summary)


def _write(table: pa.Table, stem: Path, fmt: str) -> None:
    if fmt == "csv":
        pacsv.write_csv(table, stem.with_suffix(".csv"))
    else:
        pq.write_table(table, stem.with_suffix(".parquet"), compression="zstd", row_group_size=1_000_000)


def _size_sites(spells: dict[str, np.ndarray], n_sites: int, cal: Calendar) -> tuple[np.ndarray, np.ndarray, dict]:
    """Midnight bed occupancy per site and day; beds sized so the last year runs ~90% full on average
    (adult critical care ~80%), which gives winter peaks above 95% as in England."""
    day0, n_days = int(cal.days[0]), cal.n_days
    adm = np.clip(spells["admit"] - day0, 0, n_days)
    dis = np.where(spells["ongoing"], n_days, np.clip(spells["discharge"] - day0, 0, n_days))
    ga = np.zeros((n_sites, n_days + 1))
    np.add.at(ga, (spells["site"], adm), 1)
    np.add.at(ga, (spells["site"], dis), -1)
    cc_end = np.clip(spells["admit"] - day0 + spells["cc"], 0, n_days)
    cc = np.zeros((n_sites, n_days + 1))
    has_cc = spells["cc"] > 0
    np.add.at(cc, (spells["site"][has_cc], adm[has_cc]), 1)
    np.add.at(cc, (spells["site"][has_cc], cc_end[has_cc]), -1)
    cc_occ = cc.cumsum(axis=1)[:, :n_days]
    ga_occ = ga.cumsum(axis=1)[:, :n_days] - cc_occ  # a critical care midnight is not also a G&A one
    last_year = slice(n_days - 365, n_days)
    beds = np.maximum(5, np.ceil(ga_occ[:, last_year].mean(axis=1) / 0.90)).astype(int)
    cc_beds = np.maximum(1, np.ceil(cc_occ[:, last_year].mean(axis=1) / 0.80)).astype(int)
    return beds, cc_beds, {"ga": ga_occ, "cc": cc_occ}


def _share(values: np.ndarray, labels: list) -> dict:
    total = max(values.size, 1)
    return {str(k): round(float((values == k).sum()) / total, 4) for k in labels}


def _summary(cfg, people, geo, act, resp, cal: Calendar, spells, occ, beds, cc_beds, index_days) -> dict:
    day0 = int(cal.days[0])
    last_index = index_days[-1]
    resident = (people.reg_start <= last_index) & (people.exit > last_index) & (people.birth <= last_index)
    age = people.age_at(last_index)[resident]
    years = cal.n_days / 365.25
    person_years = float(
        np.clip(
            (np.minimum(people.exit, int(cal.days[-1]) + 1) - np.maximum(people.reg_start, day0)) / 365.25, 0, None
        ).sum()
    )
    em = spells["emergency"] & (spells["person"] < people.n)
    los = (np.where(spells["ongoing"], np.nan, spells["discharge"] - spells["admit"]))[em]
    copd = people.onset[:, CONDITION_KEYS.index("copd")] < NEVER
    copd_years = float(
        np.clip(
            (
                np.minimum(people.exit, int(cal.days[-1]))
                - np.maximum(np.maximum(people.onset[:, CONDITION_KEYS.index("copd")], people.reg_start), day0)
            )
            / 365.25,
            0,
            None,
        )[copd].sum()
    )
    copd_exac = int(np.isin(resp.exac_person, np.flatnonzero(copd)).sum()) if copd.any() else 0
    sites = []
    winter = np.isin((cal.days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1, [12, 1, 2])
    last_year = np.arange(cal.n_days) >= cal.n_days - 365
    for s in range(geo.site_code.size):
        ga, cc = occ["ga"][s], occ["cc"][s]
        sites.append(
            {
                "site_code": str(geo.site_code[s]),
                "ga_beds": int(beds[s]),
                "critical_care_beds": int(cc_beds[s]),
                "ga_occupancy_mean": round(float(ga[last_year].mean() / beds[s]), 3),
                "ga_occupancy_winter": round(float(ga[last_year & winter].mean() / beds[s]), 3),
                "ga_occupancy_peak": round(float(ga[last_year].max() / beds[s]), 3),
                "cc_occupancy_mean": round(float(cc[last_year].mean() / cc_beds[s]), 3),
            }
        )
    recorded_known = np.isin(people.ethnicity_recorded[resident], ["Z", "99"], invert=True)
    broad = np.vectorize(BROAD_ETHNIC_GROUP.get, otypes=["U7"])(people.ethnicity_recorded[resident])
    return {
        "persons": int(people.n),
        "registered_at_last_index_date": int(resident.sum()),
        "history": {"start": str(cfg.start), "end": str(cfg.end), "years": round(years, 2)},
        "age_bands": {
            "0-15": round(float((age < 16).mean()), 4),
            "16-64": round(float(((age >= 16) & (age < 65)).mean()), 4),
            "65+": round(float((age >= 65).mean()), 4),
            "85+": round(float((age >= 85).mean()), 4),
        },
        "sex_female": round(float((people.sex[resident] == "F").mean()), 4),
        "ethnicity_recorded_known": round(float(recorded_known.mean()), 4),
        "ethnicity_broad_among_known": _share(broad[recorded_known], ["White", "Asian", "Black", "Mixed", "Other"]),
        "imd_decile_shares": _share(geo.imd_decile[people.lsoa[resident]], list(range(1, 11))),
        "deaths_per_1000_person_years": round(float((people.death < NEVER).sum() / person_years * 1000), 2),
        "emergency_admissions_per_1000_person_years": round(float(em.sum() / person_years * 1000), 1),
        "elective_admissions_per_1000_person_years": round(
            float((~spells["emergency"]).sum() / person_years * 1000), 1
        ),
        "emergency_los_mean_days": round(float(np.nanmean(los)), 2),
        "emergency_los_median_days": float(np.nanmedian(los)),
        "emergency_zero_day_share": round(float(np.nanmean(los == 0)), 3),
        **outcome_summary(people, act, resp, spells),
        "copd_exacerbations_per_patient_year": round(copd_exac / max(copd_years, 1e-9), 3),
        "condition_prevalence": {
            k: round(float((people.onset[resident, j] <= last_index).mean()), 4) for j, k in enumerate(CONDITION_KEYS)
        },
        "sites": sites,
        "home_monitored_patients": int(resp.monitored_person.size),
    }
