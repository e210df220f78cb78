"""Planning scenarios: what happens to admissions, bed-days and occupancy if care coordinators reach the
people at highest emergency-admission risk and prevent some of their admissions.

Inputs, prepared when forecasts are fitted (`prepare_inputs`): everyone's current risk from the
champion emergency-admission model (as at the day after the data end) and their risk a year
earlier with the emergency admissions they then had in the following year, each person's usual
site (their emergency admissions by site over three years), and the lengths of stay and critical
care days of recent emergency spells.

The effect: today's top k% by risk are expected to have as many emergency admissions per person
as the top k% of a year ago went on to have (observed, so no assumption about admissions per
admitted person); a share p of those are prevented from the first forecast day. Each prevented admission would have occupied a G&A bed for its length of
stay less its critical care days, and a critical care bed for those. Uncertainty comes from Monte
Carlo (Poisson arrivals, lengths of stay drawn from the empirical distribution) with common random
numbers, so p = 0 gives exactly the baseline and a larger p never adds beds.

Disclosure control (`evaluation.disclosure`): a group under the policy's threshold is refused, and group sizes
move in steps of the policy's `step` people (10 by default), so no scenario describes fewer people than a
published count may, and no two scenarios differ by fewer; counts in the notes are rounded.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy.stats import poisson

from evaluation.disclosure import DisclosureError, Policy
from phm.core.config import Document
from features.build import build
from features.series import ICS, data_end
from models import specs
from phm.core.settings import Settings

SCORES, PAST, STAYS = "risk_scores.parquet", "risk_scores_year_before.parquet", "emergency_stays.parquet"


class ScenarioError(ValueError):
    """The scenario cannot be run (no forecasts, no risk scores, unknown site or metric, ...)."""


class Scenario(Document):
    """A planner's intervention (schema version 1)."""

    kind: Literal["reach_top_risk"] = "reach_top_risk"
    site: str = Field(description="Site code, or ICS for the whole system.")
    metric: Literal["emergency_admissions", "ga_beds_occupied", "critical_care_beds_occupied"]
    horizon: int = Field(28, ge=1, description="Days ahead (up to the fitted maximum).")
    top_share: float = Field(0.05, gt=0, le=0.5, description="Coordinators reach the highest-risk share of people.")
    prevented_share: float = Field(0.2, ge=0, le=1, description="Share of those people's admissions prevented.")
    simulations: int = Field(2000, ge=100, le=100_000)
    seed: int = 1


class ScenarioResult(BaseModel):
    scenario: Scenario
    people_reached: int
    expected_admissions_in_group_per_day: float
    prevented_admissions_per_day: float
    summary: dict[str, dict[str, float]]
    daily: list[dict]
    notes: list[str]


def prepare_inputs(settings: Settings, folder: Path, model, version: str, model_name: str | None = None) -> dict:
    """Score everyone with `model` (a pyfunc: the worklist model's champion, version `version`, that the caller found
    approved for use, `serving.batch.common.approved_champion`) and save the inputs scenarios need."""
    spec = specs.get(model_name) if model_name else specs.worklist()
    model_name = spec.name
    as_of = data_end(settings.warehouse_path)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        index_date = as_of + timedelta(days=1)
        stays = con.execute(
            """
            SELECT person_id, site_code, admission_date,
                   date_diff('day', admission_date, coalesce(discharge_date, $as_of + 1)) AS los,
                   least(coalesce(critical_care_days, 0),
                         date_diff('day', admission_date, coalesce(discharge_date, $as_of + 1))) AS cc
            FROM apc_spells WHERE admission_method LIKE '2%' AND admission_date > $as_of - INTERVAL 3 YEAR
              AND admission_date <= $as_of""",
            {"as_of": as_of},
        ).df()
    finally:
        con.close()
    names = model.metadata.get_input_schema().input_names()

    def score(day) -> pd.DataFrame:
        out = settings.features_dir / f"{model_name}_scenario_{day}.parquet"
        build(settings.warehouse_path, spec.build_config([day]), out)
        features = pd.read_parquet(out)
        risk = model.predict(features[names].astype("float64"))["risk"].to_numpy()
        return pd.DataFrame({"person_id": features["person_id"].to_numpy(), "risk": risk})

    scores = score(index_date)
    # how many emergency admissions did the people then at the top go on to have? (observed, a year on)
    past_day = index_date - timedelta(days=365)
    past = score(past_day)
    after = stays[(stays.admission_date >= pd.Timestamp(past_day)) & (stays.admission_date < pd.Timestamp(index_date))]
    past["admissions_next_12m"] = past.person_id.map(after.groupby("person_id").size()).fillna(0).to_numpy()
    folder.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(folder / SCORES, index=False)
    past.to_parquet(folder / PAST, index=False)
    stays.to_parquet(folder / STAYS, index=False)
    info = {
        "model": model_name,
        "alias": "champion",
        "version": str(version),
        "index_date": str(index_date),
        "people": int(len(scores)),
    }
    (folder / "scenario_inputs.json").write_text(json.dumps(info, indent=1))
    return info


def clear_inputs(folder: Path) -> None:
    """Remove the scenario inputs from `folder` (kept from an earlier fit): no champion may score them now."""
    for name in (SCORES, PAST, STAYS, "scenario_inputs.json"):
        (folder / name).unlink(missing_ok=True)


def _site_share(stays: pd.DataFrame, people: np.ndarray, site: str) -> float:
    """Share of the reached people's emergency admissions that go to `site` (their usual sites)."""
    if site == ICS:
        return 1.0
    theirs = stays[stays.person_id.isin(people)]
    pool = theirs if len(theirs) >= 30 else stays
    return float((pool.site_code == site).mean()) if len(pool) else 0.0


def _stays_drawn(counts: np.ndarray, pool: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulation, day and the stay (an index into the pool of `pool` stays) of every prevented admission, drawn as
    common random numbers: the j-th admission of a simulation's day has the same stay whatever the prevented share,
    so a larger share only adds admissions (and their beds) - intervals as well as means never add beds."""
    rng = np.random.default_rng(seed)
    sims, days, picks = [], [], []
    for j in range(int(counts.max())):
        u = rng.random(counts.shape)  # layer j, drawn whether or not this share reaches it
        s, d = np.nonzero(counts > j)
        sims.append(s)
        days.append(d)
        picks.append(np.minimum((u[s, d] * pool).astype(int), pool - 1))
    return np.concatenate(sims), np.concatenate(days), np.concatenate(picks)


def run_scenario(folder: Path, scenario: Scenario, policy: Policy | None = None) -> ScenarioResult:
    """Baseline forecast vs the scenario for one site and metric, with 80% and 95% intervals."""
    policy = policy or Policy()
    if not (folder / "forecasts.parquet").exists():
        raise ScenarioError("no forecasts yet: run `phm forecast fit` first")
    meta = folder / "fit.json"
    if meta.exists() and str(json.loads(meta.read_text()).get("source", "")).startswith("CSV"):
        raise ScenarioError(
            "scenarios need forecasts fitted from the warehouse (they reach its people by risk); the latest forecasts "
            "came from a planner's CSV: run `phm forecast fit` without --csv first"
        )
    if not (folder / SCORES).exists():
        raise ScenarioError(
            "no risk scores for scenarios: they come from the emergency-admission champion, approved by a clinical "
            "safety officer for the configuration in force; promote one, then run `phm forecast fit` again"
        )
    forecasts = pd.read_parquet(folder / "forecasts.parquet")
    known = sorted(forecasts.site.unique())
    if scenario.site not in known:
        raise ScenarioError(f"unknown site {scenario.site!r}; forecasts exist for {', '.join(known)}")
    base = forecasts[(forecasts.site == scenario.site) & (forecasts.metric == scenario.metric)].sort_values("date")
    if base.empty:
        raise ScenarioError(f"no {scenario.metric} forecast for {scenario.site}")
    if scenario.horizon > len(base):
        raise ScenarioError(f"horizon {scenario.horizon} is beyond the fitted maximum of {len(base)} days")
    base = base.head(scenario.horizon).reset_index(drop=True)
    scores = pd.read_parquet(folder / SCORES)
    stays = pd.read_parquet(folder / STAYS)
    past = pd.read_parquet(folder / PAST)
    try:
        k = policy.group_size(int(np.ceil(scenario.top_share * len(scores))), f"top {scenario.top_share:.2%} by risk")
        k_past = policy.group_size(int(np.ceil(scenario.top_share * len(past))), "group a year earlier")
    except DisclosureError as exc:
        raise ScenarioError(str(exc)) from exc
    if k > len(scores) or k_past > len(past):
        raise ScenarioError("the group would hold more people than are scored: choose a smaller share")
    top = scores.nlargest(k, "risk")
    past_top = past.nlargest(k_past, "risk")
    per_person_year = float(past_top.admissions_next_12m.mean())  # observed, not modelled
    expected = per_person_year * k / 365.25 * _site_share(stays, top.person_id.to_numpy(), scenario.site)
    rate = expected * scenario.prevented_share
    theirs = stays[stays.person_id.isin(top.person_id)]
    pool = theirs if len(theirs) >= 30 else stays
    los = pool.los.to_numpy(dtype=int)
    cc = pool.cc.to_numpy(dtype=int)
    H, S = scenario.horizon, scenario.simulations
    rng = np.random.default_rng(scenario.seed)
    uniforms = rng.random((S, H))  # common random numbers: the same draws for every prevented share
    counts = poisson.ppf(uniforms, rate).astype(int) if rate > 0 else np.zeros((S, H), dtype=int)
    reduction = np.zeros((S, H))
    if scenario.metric == "emergency_admissions":
        reduction = counts.astype(float)
    elif counts.sum() and los.size:
        sim, day, pick = _stays_drawn(counts, los.size, scenario.seed + 1)
        stay, crit = los[pick], cc[pick]
        start, stop = (
            (day, day + crit) if scenario.metric == "critical_care_beds_occupied" else (day + crit, day + stay)
        )
        delta = np.zeros((S, H + 1))
        keep = start < stop
        np.add.at(delta, (sim[keep], np.minimum(start[keep], H)), 1)
        np.add.at(delta, (sim[keep], np.minimum(stop[keep], H)), -1)
        reduction = np.cumsum(delta, axis=1)[:, :H]
    # the mean effect is exact (linear in the prevented share); intervals come from the simulation
    if scenario.metric == "emergency_admissions":
        mean_reduction = np.full(H, rate)
    elif los.size:
        j = np.arange(H)
        if scenario.metric == "critical_care_beds_occupied":
            occupied = (cc[None, :] > j[:, None]).mean(1)
        else:
            occupied = ((los[None, :] > j[:, None]) & (cc[None, :] <= j[:, None])).mean(1)
        mean_reduction = rate * np.cumsum(occupied)
    else:
        mean_reduction = np.zeros(H)
    q = np.quantile(reduction, [0.025, 0.1, 0.9, 0.975], axis=0)
    daily = []
    for t in range(H):
        row = base.iloc[t]
        daily.append(
            {
                "date": str(row["date"].date()),
                "baseline_mean": float(row["mean"]),
                "baseline_q10": float(row["q10"]),
                "baseline_q90": float(row["q90"]),
                "baseline_q025": float(row["q025"]),
                "baseline_q975": float(row["q975"]),
                "change_mean": -float(mean_reduction[t]),
                "change_q10": -float(q[2, t]),
                "change_q90": -float(q[1, t]),
                "scenario_mean": float(max(row["mean"] - mean_reduction[t], 0)),
                "scenario_q10": float(max(row["q10"] - mean_reduction[t], 0)),
                "scenario_q90": float(max(row["q90"] - mean_reduction[t], 0)),
                "scenario_q025": float(max(row["q025"] - mean_reduction[t], 0)),
                "scenario_q975": float(max(row["q975"] - mean_reduction[t], 0)),
            }
        )
    total = reduction.sum(1)
    admissions_total = counts.sum(1)
    summary = {
        "admissions_prevented_over_horizon": _interval(admissions_total, rate * H),
        (
            "bed_days_saved_over_horizon"
            if scenario.metric != "emergency_admissions"
            else "admissions_saved_over_horizon"
        ): _interval(total, float(mean_reduction.sum())),
        "change_on_last_day": _interval(-reduction[:, -1], -float(mean_reduction[-1])),
    }
    notes = [
        f"{k:,} people reached (top {scenario.top_share:.1%} of {policy.rounded(len(scores)):,} by current risk, "
        f"rounded to a multiple of {policy.step} for disclosure control). The top "
        f"{scenario.top_share:.1%} a year earlier went on to have {per_person_year:.2f} emergency admissions per "
        "person in the following year (observed); that rate is assumed for today's top group.",
        f"Lengths of stay from about {policy.rounded(len(pool)):,} recent emergency spells of "
        + ("these people." if pool is theirs else "all patients (too few among these people)."),
        "Intervals reflect arrivals and lengths of stay, not uncertainty in the risk model or in p.",
    ]
    return ScenarioResult(
        scenario=scenario,
        people_reached=k,
        expected_admissions_in_group_per_day=expected,
        prevented_admissions_per_day=rate,
        summary=summary,
        daily=daily,
        notes=notes,
    )


def _interval(draws: np.ndarray, mean: float) -> dict[str, float]:
    lo95, lo80, hi80, hi95 = np.quantile(draws, [0.025, 0.1, 0.9, 0.975])
    return {"mean": float(mean), "q025": float(lo95), "q10": float(lo80), "q90": float(hi80), "q975": float(hi95)}
