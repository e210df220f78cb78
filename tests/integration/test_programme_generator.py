"""The synthetic programme: offers follow the rules, the extracts hold the factual admissions, and the
counterfactual differs only through the true factor."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow.parquet as pq
import pytest

from features.sources.codes import EMERGENCY_ADMISSION_METHODS
from features.synthetic.config import GeneratorConfig, ProgrammeConfig
from features.synthetic.generator import generate


def _programme(tmp_path, factor: float, practices=None):
    cfg = GeneratorConfig(
        persons=3_000,
        seed=11,
        programme=ProgrammeConfig(
            start=date(2023, 4, 1), capacity=8, uptake=0.6, top_share=0.05, factor=factor, practices=practices
        ),
    )
    return generate(cfg, tmp_path / f"ics_{factor}")


def test_offers_respect_start_capacity_and_practices(tmp_path) -> None:
    first = generate(GeneratorConfig(persons=3_000, seed=11), tmp_path / "plain")
    practice = pq.read_table(first.out_dir / "practices.parquet").column("practice_code").to_pylist()[0]
    out = _programme(tmp_path, 0.5, [practice]).out_dir
    con = duckdb.connect()
    offers = f"read_parquet('{out / 'truth/programme_offers.parquet'}')"
    patients = f"read_parquet('{out / 'patients.parquet'}')"
    assert con.execute(f"SELECT min(offer_date) >= DATE '2023-04-01', count(*) > 0 FROM {offers}").fetchone() == (
        True,
        True,
    )
    assert (
        con.execute(
            f"SELECT max(n) FROM (SELECT count(*) n FROM {offers} WHERE enrolled GROUP BY enrol_date)"
        ).fetchone()[0]
        <= 8
    )
    # only the chosen practice's patients are offered (registration as recorded at the end of the history)
    practices = con.execute(
        f"SELECT DISTINCT p.practice_code FROM {offers} o JOIN {patients} p USING (nhs_number)"
    ).fetchall()
    assert practices == [(practice,)]
    declined = con.execute(f"SELECT avg(CASE WHEN enrolled THEN 0 ELSE 1 END) FROM {offers}").fetchone()[0]
    assert 0.2 < declined < 0.6  # uptake 0.6


@pytest.mark.slow
def test_extracts_hold_the_factual_admissions_and_no_effect_means_equal_paths(tmp_path) -> None:
    for factor in (0.5, 1.0):
        out = _programme(tmp_path, factor).out_dir
        con = duckdb.connect()
        methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
        rows = con.execute(f"""
            WITH spells AS (SELECT nhs_number, date_trunc('month', admission_date)::DATE AS month, count(*) AS n
                            FROM read_parquet('{out / "apc_spells.parquet"}')
                            WHERE admission_method IN ({methods}) GROUP BY ALL)
            SELECT sum(o.admissions), sum(coalesce(s.n, 0)), sum(o.admissions_counterfactual),
                   count(*) FILTER (WHERE o.admissions <> coalesce(s.n, 0))
            FROM read_parquet('{out / "truth/programme_outcomes.parquet"}') o
            LEFT JOIN spells s USING (nhs_number, month)""").fetchone()
        factual, in_extract, counterfactual, mismatched = rows
        assert factual > 0 and mismatched == 0 and factual == in_extract
        effect = pq.read_table(out / "truth/programme_effect.parquet").to_pylist()[0]
        assert effect["admissions"] == factual and effect["admissions_counterfactual"] == counterfactual
        if factor == 1.0:
            assert counterfactual == factual and effect["relative_effect"] == 0.0
        else:
            assert counterfactual > factual
            assert -0.7 < effect["relative_effect"] < -0.3  # factor 0.5 on all but respiratory admissions


def test_a_holdout_is_a_random_share_of_the_picked_never_offered(tmp_path) -> None:
    cfg = GeneratorConfig(
        persons=3_000,
        seed=11,
        programme=ProgrammeConfig(
            start=date(2023, 4, 1), capacity=8, uptake=0.6, top_share=0.05, factor=0.5, holdout=0.3
        ),
    )
    out = generate(cfg, tmp_path / "held").out_dir
    held = pq.read_table(out / "truth/programme_holdout.parquet").to_pandas()
    offers = pq.read_table(out / "truth/programme_offers.parquet").to_pandas()
    outcomes = pq.read_table(out / "truth/programme_outcomes.parquet").to_pandas()
    assert len(held) > 0 and held.nhs_number.is_unique
    assert not set(held.nhs_number) & set(offers.nhs_number) and not set(held.nhs_number) & set(outcomes.nhs_number)
    assert (held.held_date >= date(2023, 4, 1)).all()
    # people drawn once, when first picked: held out with probability 0.3 (held / (held + offered), up to those
    # picked but still waiting for capacity at the end, who were drawn too)
    share = len(held) / (len(held) + len(offers))
    assert 0.2 < share < 0.45
    # the same programme without a holdout writes no holdout table
    plain = _programme(tmp_path, 0.5).out_dir
    assert not (plain / "truth/programme_holdout.parquet").exists()


def test_bed_days_and_a_group_with_its_own_factor(tmp_path) -> None:
    cfg = GeneratorConfig(
        persons=3_000,
        seed=11,
        programme=ProgrammeConfig(
            start=date(2023, 4, 1), capacity=8, uptake=0.6, top_share=0.05, factor=0.5, group_factors={"core20": 1.0}
        ),
    )
    out = generate(cfg, tmp_path / "groups").out_dir
    con = duckdb.connect()
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    # factual bed-days are the extract's emergency stays by month of admission (to the end of the data if ongoing)
    factual, in_extract, mismatched = con.execute(f"""
        WITH stays AS (SELECT nhs_number, date_trunc('month', admission_date)::DATE AS month,
                              sum(date_diff('day', admission_date, coalesce(discharge_date, DATE '2025-03-31'))) AS d
                       FROM read_parquet('{out / "apc_spells.parquet"}')
                       WHERE admission_method IN ({methods}) GROUP BY ALL)
        SELECT sum(o.bed_days), sum(coalesce(s.d, 0)), count(*) FILTER (WHERE o.bed_days <> coalesce(s.d, 0))
        FROM read_parquet('{out / "truth/programme_outcomes.parquet"}') o
        LEFT JOIN stays s USING (nhs_number, month)""").fetchone()
    assert factual > 0 and mismatched == 0 and factual == in_extract
    outcomes = pq.read_table(out / "truth/programme_outcomes.parquet").to_pandas()
    core, rest = outcomes[outcomes.core20], outcomes[~outcomes.core20]
    assert len(core) > 0 and len(rest) > 0
    assert (core.factor == 1.0).all() and (rest.factor == 0.5).all()
    # no effect in the Core20 group: both paths the same; elsewhere fewer admissions and bed-days
    assert (core.admissions == core.admissions_counterfactual).all() and (
        core.bed_days == core.bed_days_counterfactual
    ).all()
    assert rest.admissions_counterfactual.sum() > rest.admissions.sum()
    assert rest.bed_days_counterfactual.sum() > rest.bed_days.sum()
    by_group = (
        pq.read_table(out / "truth/programme_effect_by_group.parquet").to_pandas().set_index(["grouping", "group"])
    )
    assert by_group.loc[("core20", "core20"), "relative_effect"] == 0.0
    assert by_group.loc[("core20", "core20"), "bed_days_relative_effect"] == 0.0
    assert by_group.loc[("core20", "rest"), "relative_effect"] < -0.2
    assert by_group.xs("ethnic_group").admissions.sum() == outcomes.admissions.sum()
