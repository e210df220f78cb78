"""The synthetic ICS: complete, valid, deterministic and realistic against England's figures."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from features.sources import nhs_number
from features.sources.codes import (
    ADMISSION_METHODS,
    BROAD_ETHNIC_GROUP,
    EMERGENCY_ADMISSION_METHODS,
    ETHNIC_CATEGORIES,
    SYNTHETIC_ACSC_ACUTE,
)
from features.synthetic.config import DefectConfig, GeneratorConfig
from features.synthetic.generator import SOURCE_TABLES, generate
from phm.core.stats import auroc
from features.synthetic.respiratory import EXACERBATION_STATE, event_probability, step


def _sql(result, query: str):
    con = duckdb.connect()
    for name in SOURCE_TABLES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{result.out_dir / (name + '.parquet')}')")
    for path in (result.out_dir / "truth").glob("*.parquet"):
        con.execute(f"CREATE VIEW truth_{path.stem} AS SELECT * FROM read_parquet('{path}')")
    return con.execute(query).fetchall()


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_every_table_of_the_design_is_written(ics20k) -> None:
    for name in SOURCE_TABLES:
        assert (ics20k.out_dir / f"{name}.parquet").exists(), name
        assert ics20k.rows[name] > 0, name
    for name in ("emergency_12m", "acsc_12m", "exacerbation_14d", "persons", "defects"):
        assert (ics20k.out_dir / "truth" / f"{name}.parquet").exists()


def test_same_seed_same_bytes_different_seed_different_data(tmp_path: Path) -> None:
    cfg = GeneratorConfig(persons=1_500, seed=11)
    a = _digest(generate(cfg, tmp_path / "a").out_dir)
    b = _digest(generate(cfg, tmp_path / "b").out_dir)
    c = _digest(generate(cfg.model_copy(update={"seed": 12}), tmp_path / "c").out_dir)
    assert a == b
    assert a.keys() == c.keys()
    assert a["patients.parquet"] != c["patients.parquet"]
    assert a["apc_spells.parquet"] != c["apc_spells.parquet"]


def test_csv_output(tmp_path: Path) -> None:
    result = generate(GeneratorConfig(persons=800, seed=3, file_format="csv"), tmp_path / "csv")
    header = (result.out_dir / "apc_spells.csv").read_text().splitlines()[0]
    assert "admission_method" in header and "nhs_number" in header


def test_nhs_numbers_valid_and_codes_from_nhs_code_sets(ics20k) -> None:
    numbers = pq.read_table(ics20k.out_dir / "patients.parquet", columns=["nhs_number"]).column(0).to_pylist()
    assert len(set(numbers)) == len(numbers) == 20_000
    assert all(nhs_number.is_valid(n) for n in numbers)
    methods = {r[0] for r in _sql(ics20k, "SELECT DISTINCT admission_method FROM apc_spells")}
    assert methods <= set(ADMISSION_METHODS)
    assert {"21", "22", "11"} <= methods
    cats = {r[0] for r in _sql(ics20k, "SELECT DISTINCT ethnic_category FROM patients")}
    assert cats <= set(ETHNIC_CATEGORIES) and {"A", "H", "N", "Z", "99"} <= cats
    lsoas = _sql(ics20k, "SELECT count(*) FROM patients WHERE NOT regexp_full_match(lsoa11, 'E01[0-9]{6}')")[0][0]
    assert lsoas == 0
    diag = _sql(
        ics20k, "SELECT count(*) FROM apc_spells WHERE NOT regexp_full_match(primary_diagnosis, '[A-Z][0-9]{2}[0-9X]')"
    )
    assert diag[0][0] == 0
    # practices roll up to PCNs, places and one ICB
    org = _sql(
        ics20k,
        "SELECT count(DISTINCT practice_code), count(DISTINCT pcn_code), count(DISTINCT place), "
        "count(DISTINCT icb_code) FROM practices",
    )[0]
    assert org[0] >= org[1] >= 1 and org[2] >= 2 and org[3] == 1


def test_five_years_of_history(ics20k) -> None:
    lo, hi = _sql(ics20k, "SELECT min(admission_date), max(admission_date) FROM apc_spells")[0]
    assert (hi - lo).days >= 5 * 365


def test_population_near_england(ics20k) -> None:
    s = ics20k.summary
    ages = s["age_bands"]
    assert 0.15 < ages["0-15"] < 0.24
    assert 0.55 < ages["16-64"] < 0.68
    assert 0.14 < ages["65+"] < 0.25
    assert 0.015 < ages["85+"] < 0.045
    assert 0.46 < s["sex_female"] < 0.54
    eth = s["ethnicity_broad_among_known"]
    assert 0.74 < eth["White"] < 0.88 and 0.06 < eth["Asian"] < 0.14 and 0.02 < eth["Black"] < 0.07
    assert 0.01 < eth["Mixed"] < 0.05 and 0.01 < eth["Other"] < 0.04
    assert 0.80 < s["ethnicity_recorded_known"] < 0.96  # a realistic minority unrecorded
    assert all(0.06 < v < 0.14 for v in s["imd_decile_shares"].values())
    assert 6 < s["deaths_per_1000_person_years"] < 14


def test_summary_matches_the_files(ics20k) -> None:
    """The printed age and ethnicity figures are what the extracts actually contain."""
    day = date(2024, 4, 1)
    rows = _sql(
        ics20k,
        f"""SELECT avg(CASE WHEN {day.year} - year_of_birth >= 65 THEN 1 ELSE 0 END),
        avg(CASE WHEN ethnic_category IN ('Z','99') THEN 0 ELSE 1 END) FROM patients
        WHERE registration_start <= DATE '{day}' AND coalesce(registration_end, DATE '2100-01-01') > DATE '{day}'""",
    )[0]
    assert abs(rows[0] - ics20k.summary["age_bands"]["65+"]) < 0.01
    assert abs(rows[1] - ics20k.summary["ethnicity_recorded_known"]) < 0.01


def test_hospital_activity_near_england(ics20k) -> None:
    s = ics20k.summary
    assert 80 < s["emergency_admissions_per_1000_person_years"] < 150
    assert 3.5 < s["emergency_los_mean_days"] < 7.5
    assert 1 <= s["emergency_los_median_days"] <= 4
    for fig in s["emergency_12m"].values():
        assert 0.04 < fig["observed_rate"] < 0.11
    # emergency admissions are a minority of A&E attendances; most are via A&E (method 21)
    em = _sql(
        ics20k,
        f"""SELECT avg(CASE WHEN admission_method = '21' THEN 1 ELSE 0 END) FROM apc_spells
        WHERE admission_method IN ({", ".join(repr(m) for m in EMERGENCY_ADMISSION_METHODS)})""",
    )[0][0]
    assert 0.6 < em < 0.8


def test_weekly_winter_and_bank_holiday_patterns(ics20k) -> None:
    rows = _sql(
        ics20k,
        """SELECT dayofweek(admission_date) AS dow, month(admission_date) AS m, admission_date,
        count(*) FROM apc_spells WHERE admission_method IN ('21','22','23','24','25','2A','2B','2D')
        GROUP BY ALL""",
    )
    by_dow = np.zeros(7)
    by_month = np.zeros(13)
    per_day: dict[date, int] = {}
    for dow, month, d, n in rows:
        by_dow[dow] += n
        by_month[month] += n
        per_day[d] = per_day.get(d, 0) + n
    assert by_dow[1] > by_dow[0] * 1.08  # Monday above Sunday
    winter = by_month[[12, 1, 2]].sum() / 3
    summer = by_month[[6, 7, 8]].sum() / 3
    assert winter > summer * 1.1
    import holidays

    bank = {
        d
        for d in holidays.country_holidays("GB", subdiv="ENG", years=range(2019, 2026))
        if date(2019, 4, 1) <= d <= date(2025, 3, 31)
    }
    assert len(bank) >= 50
    # each bank holiday against the same weekday in the three weeks either side (same season)
    from datetime import timedelta

    on, usual = 0.0, 0.0
    for d in bank:
        near = [
            per_day.get(d + timedelta(weeks=k), 0)
            for k in (-3, -2, -1, 1, 2, 3)
            if d + timedelta(weeks=k) not in bank and d + timedelta(weeks=k) in per_day
        ]
        if near:
            on, usual = on + per_day.get(d, 0), usual + np.mean(near)
    assert on / usual < 0.93  # the generator's weights give ~0.86


def test_sites_have_realistic_occupancy(ics20k) -> None:
    for site in ics20k.summary["sites"]:
        assert site["ga_beds"] >= 5 and site["critical_care_beds"] >= 1
        assert 0.75 < site["ga_occupancy_mean"] < 1.0
    beds = _sql(ics20k, "SELECT sum(ga_beds), sum(critical_care_beds) FROM sites")[0]
    # England: ~1.8 G&A beds and ~0.08 adult critical care beds per 1,000 people
    per_1000 = beds[0] / ics20k.summary["registered_at_last_index_date"] * 1000
    assert 0.8 < per_1000 < 3.0


def test_conditions_depend_on_age_and_deprivation(ics20k) -> None:
    rows = _sql(
        ics20k,
        """SELECT (2024 - p.year_of_birth) >= 65 AS old, i.imd_decile <= 2 AS core20,
        avg(CASE WHEN t.onset_copd IS NOT NULL THEN 1 ELSE 0 END) AS copd,
        avg(CASE WHEN t.onset_hypertension IS NOT NULL THEN 1 ELSE 0 END) AS htn
        FROM patients p JOIN truth_persons t USING (nhs_number) JOIN imd i USING (lsoa11)
        WHERE 2024 - p.year_of_birth >= 40 GROUP BY ALL""",
    )
    fig = {(old, core): (copd, htn) for old, core, copd, htn in rows}
    assert fig[(True, False)][1] > 2 * fig[(False, False)][1]  # hypertension rises with age
    assert fig[(True, True)][0] > 1.3 * fig[(True, False)][0]  # COPD is more common in Core20 areas


def test_ground_truth_is_calibrated_and_informative(ics20k) -> None:
    for day, fig in ics20k.summary["emergency_12m"].items():
        assert abs(fig["observed_rate"] - fig["mean_true_probability"]) < 0.2 * fig["mean_true_probability"], day
        assert 0.74 < fig["oracle_auroc"] < 0.95, day
    rows = _sql(ics20k, "SELECT count(DISTINCT index_date), min(p_true), max(p_true) FROM truth_emergency_12m")[0]
    assert rows[0] >= 2 and 0 < rows[1] < rows[2] < 1


def test_acsc_admissions_realistic_with_a_calibrated_truth(ics20k) -> None:
    """Emergency admissions for ambulatory care sensitive conditions: about one in five (England ~1 in 5 by the NHS
    Outcomes Framework's list), steeper with deprivation, and a truth whose mean matches what happened."""
    s = ics20k.summary
    assert 0.15 < s["acsc_share_of_emergency_admissions"] < 0.25
    for day, fig in s["acsc_12m"].items():
        assert 0.01 < fig["observed_rate"] < 0.03, day
        # 3 binomial standard errors on ~17,000 people
        tolerance = 3 * (fig["mean_true_probability"] / (0.9 * fig["persons"])) ** 0.5
        assert abs(fig["observed_rate"] - fig["mean_true_probability"]) < tolerance, day
        assert 0.85 < fig["oracle_auroc"] < 0.98, day
        assert fig["mean_true_probability"] < s["emergency_12m"][day]["mean_true_probability"]
    emergency = f"admission_method IN ({', '.join(repr(m) for m in EMERGENCY_ADMISSION_METHODS)})"
    by_decile = dict(
        _sql(
            ics20k,
            f"""SELECT i.imd_decile <= 3, avg(CASE WHEN s.primary_diagnosis IN
        {tuple(SYNTHETIC_ACSC_ACUTE)} THEN 1.0 ELSE 0 END) FROM apc_spells s JOIN patients p USING (nhs_number)
        JOIN imd i USING (lsoa11) WHERE {emergency} GROUP BY 1""",
        )
    )
    assert by_decile[True] > 1.2 * by_decile[False]  # acute ACSCs are commoner in deprived areas
    rows = _sql(ics20k, "SELECT count(DISTINCT index_date), min(p_true), max(p_true) FROM truth_acsc_12m")[0]
    assert rows[0] == 3 and 0 < rows[1] < rows[2] < 1


def test_acsc_truth_hardly_depends_on_its_own_draws() -> None:
    """The ACSC truth averages simulated paths of a person's other admissions: two independent sets of paths give
    nearly the same probabilities (measured: correlation 0.9988, typical relative difference 0.1%)."""
    from features.synthetic.activity import simulate_activity
    from features.synthetic.calendar import Calendar, to_days
    from features.synthetic.population import build_geography, build_people

    cfg = GeneratorConfig(persons=5_000, seed=5)
    found = []
    for truth_seed in (101, 202):
        rng = np.random.default_rng(cfg.seed)
        cal = Calendar.build(cfg.start, cfg.end)
        geo = build_geography(cfg, rng)
        people = build_people(cfg, geo, cal, rng)
        found.append(
            simulate_activity(
                people, geo, cal, rng, [to_days(d) for d in cfg.index_dates], truth_seed=truth_seed
            ).truth_acsc
        )
    for day, (persons, p) in found[0].items():
        q = found[1][day][1]
        assert np.array_equal(persons, found[1][day][0]) and not np.array_equal(p, q)
        assert np.corrcoef(p, q)[0, 1] > 0.995
        assert np.median(np.abs(p - q) / p) < 0.01


def test_markov_truth_matches_simulation() -> None:
    """The exacerbation probability computed by backward recursion equals Monte Carlo frequency."""
    rng = np.random.default_rng(0)
    n, a = 100_000, 0.01
    for s0 in (0, 2, 4):
        state = np.full(n, s0)
        hit = np.zeros(n, dtype=bool)
        for _ in range(14):
            state = step(state, np.full(n, a), rng.random(n))
            hit |= state == EXACERBATION_STATE
        exact = event_probability(np.array([s0]), np.full((1, 14), a), 1.0)[0]
        assert abs(hit.mean() - exact) < 4 * np.sqrt(exact * (1 - exact) / n) + 1e-4


def test_home_monitoring_deteriorates_before_exacerbations(ics20k) -> None:
    rows = _sql(
        ics20k,
        """WITH ex AS (
          SELECT DISTINCT p.nhs_number, p.issue_date AS d FROM prescriptions p WHERE p.bnf_code = '0603020T0'
          UNION SELECT nhs_number, admission_date FROM apc_spells WHERE primary_diagnosis IN ('J441', 'J459'))
        SELECT CASE WHEN datediff('day', h.reading_date, ex.d) BETWEEN 1 AND 3 THEN 'before'
                    WHEN datediff('day', h.reading_date, ex.d) BETWEEN 30 AND 60 THEN 'baseline' END AS period,
               avg(spo2), avg(heart_rate), avg(symptom_score), count(*)
        FROM home_monitoring h JOIN ex USING (nhs_number) GROUP BY 1 HAVING period IS NOT NULL""",
    )
    fig = {r[0]: r[1:] for r in rows}
    assert fig["before"][3] > 30
    assert fig["before"][0] < fig["baseline"][0] - 1.0  # SpO2 falls
    assert fig["before"][1] > fig["baseline"][1] + 3  # heart rate rises
    assert fig["before"][2] > fig["baseline"][2] + 1  # symptoms worsen
    flare = ics20k.summary["exacerbation_14d"]
    assert flare["oracle_auroc"] > 0.8
    assert abs(flare["observed_rate_14d"] - flare["mean_true_probability"]) < 0.3 * flare["mean_true_probability"]


def test_under_recording_knob_hides_diagnoses_in_the_chosen_group(tmp_path: Path) -> None:
    cfg = GeneratorConfig(
        persons=6_000, seed=4, defects=DefectConfig(under_record_group="Asian", under_record_share=0.6)
    )
    result = generate(cfg, tmp_path / "ur")
    rows = _sql(
        result,
        """SELECT t.true_ethnic_category, count(*) FILTER (WHERE t.onset_diabetes IS NOT NULL
            AND t.onset_diabetes <= DATE '2025-03-31') AS truly,
          count(*) FILTER (WHERE g.nhs_number IS NOT NULL) AS coded
        FROM truth_persons t LEFT JOIN (SELECT DISTINCT nhs_number FROM gp_events WHERE code = '73211009') g
        USING (nhs_number) GROUP BY 1""",
    )
    coded_share = {}
    for cat, truly, coded in rows:
        group = BROAD_ETHNIC_GROUP[cat]
        t, c = coded_share.get(group, (0, 0))
        coded_share[group] = (t + truly, c + coded)
    asian = coded_share["Asian"][1] / coded_share["Asian"][0]
    white = coded_share["White"][1] / coded_share["White"][0]
    assert white > 0.9
    assert 0.25 < asian < 0.6


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="first day of a month"):
        GeneratorConfig(index_dates=[date(2023, 4, 15)])
    with pytest.raises(ValueError, match="five years"):
        GeneratorConfig(start=date(2022, 1, 1))
    with pytest.raises(ValueError, match="under_record_group"):
        DefectConfig(under_record_group="Martians")


def test_auroc_helper() -> None:
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
