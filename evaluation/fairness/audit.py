"""Audit any risk score against outcomes by group (`run_audit`): check the scores table, fix the operating
policy (`policy`), audit each grouping (`grouping_audit`) and everyone (`absolute`), compare need at equal
score, try mitigation, and assemble the sealed result with its plain-English summary and hazards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from evaluation.disclosure import Policy as DisclosurePolicy
from evaluation.fairness import engine, narrative
from evaluation.fairness.absolute import absolute_performance
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.grouping_audit import group_tables, grouping_result
from evaluation.fairness.groups import CoverageMeasure, Grouping
from evaluation.fairness.mitigation import group_thresholds
from evaluation.fairness.need import need_audit, thin_record
from evaluation.fairness.policy import judged_config, order_positions, policy
from evaluation.fairness.publish import protected_counts
from evaluation.fairness.results import (
    AbsoluteResult,
    AuditResult,
    GroupingResult,
    NeedGroupingResult,
)


class AuditInputError(ValueError):
    """The scores table cannot be audited (missing column, no outcomes, ...)."""


def usable_rows(frame: pd.DataFrame, outcome: str, score: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Outcome and score as numbers, and which rows have both (0/1 outcome, finite score)."""
    yv = pd.to_numeric(frame[outcome], errors="coerce")
    pv = pd.to_numeric(frame[score], errors="coerce")
    return yv, pv, yv.isin([0, 1]) & pv.notna() & np.isfinite(pv)


def run_audit(
    frame: pd.DataFrame,
    groupings: list[Grouping],
    cfg: AuditConfig,
    subject: dict,
    outcome: str = "outcome",
    score: str = "risk",
    stratum: str | None = "stratum",
    cluster: str | None = None,
    coverage: list[CoverageMeasure] | None = None,
    coverage_descriptions: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    disclosure: DisclosurePolicy | None = None,
) -> AuditResult:
    """Audit `score` against `outcome` in every grouping. Rows lacking a score or outcome are excluded
    and counted; nothing else is dropped (small groups are marked). With a disclosure `policy`, the group counts
    are also released under it for the publishable report (one row per person only)."""
    say = progress or (lambda _m: None)
    missing = [c for c in (outcome, score, *(g.column for g in groupings)) if c not in frame]
    if missing:
        raise AuditInputError(f"missing column(s) {missing}; available: {list(frame.columns)}")
    yv, pv, usable = usable_rows(frame, outcome, score)
    excluded = int((~usable).sum())
    frame = frame.loc[usable].reset_index(drop=True)
    y = yv[usable].astype(int).to_numpy()
    p = pv[usable].astype(float).to_numpy()
    check_outcomes(outcome, y.size, int(y.sum()))
    probabilities = bool(p.min() >= 0 and p.max() <= 1)
    cfg = judged_config(cfg, probabilities)
    positions = order_positions(p.size, cfg)
    pol = policy(p.size, cfg, dict(zip(positions.tolist(), np.partition(p, positions)[positions].tolist())))
    bins = pol.binning.index(p)
    lp = engine.logit(p) if probabilities else p
    clusters = None
    if cluster and cluster in frame and frame[cluster].duplicated().any():
        clusters = pd.factorize(frame[cluster])[0]
    results = []
    for i, g in enumerate(groupings):
        say(f"auditing {g.title.lower()}")
        tables = group_tables(
            frame, g, y, p, lp, pol.binning, bins, stratum, clusters, pol.threshold, probabilities, coverage or []
        )
        results.append(
            grouping_result(
                g, tables, cfg, pol.binning, pol.threshold, pol.curve_thresholds, probabilities, cfg.seed + 7919 * i
            )
        )
    say("performance for everyone")
    absolute = absolute_performance(
        y, p, bins, pol.binning.nbins, cfg, cfg.seed + 15_485_863, probabilities, cluster=clusters
    )
    need, need_note = [], None
    if cfg.need_at_equal_score and clusters is None:
        say("comparing need at equal score")
        need = need_audit(frame, p, cfg, cfg.seed + 104_729)
        if not need:
            need_note = (
                "Not compared: the table has no measures of need independent of service use (GP-coded "
                "conditions, frailty deficits, deaths in the follow-up) or none of the standard groupings."
            )
    elif cfg.need_at_equal_score:
        need_note = (
            "Not compared: people have several rows (person-days); need at equal score needs one row per person."
        )
    population = population_summary(
        cfg,
        pol.threshold,
        rows=int(y.size),
        excluded=excluded,
        people=int(frame[cluster].nunique()) if cluster and cluster in frame else int(y.size),
        events=int(y.sum()),
        flagged=int((p >= pol.threshold).sum()),
        probabilities=probabilities,
        bootstrap="Poisson, by person" + (" (clustered rows)" if clusters is not None else ""),
        coverage_descriptions=coverage_descriptions,
        need_note=need_note,
    )
    mitigation = None
    if cfg.mitigation == "group_thresholds":
        by = next((g for g in groupings if g.name == cfg.mitigation_grouping), None)
        if by is not None:
            say("trying group-specific thresholds")
            mitigation = group_thresholds(
                frame[by.column].astype("string").fillna("Unknown").to_numpy(),
                y,
                p,
                pol.threshold,
                cfg,
                by.name,
                frame[cluster].to_numpy() if cluster and cluster in frame else None,
            )
    result = assemble(subject, cfg, population, results, mitigation, need, absolute)
    if disclosure is not None:
        columns = {g.name: g.column for g in groupings}
        columns.update({n.name: "thin_record" for n in need if n.name == "thin_record"})
        if "thin_record" in columns and "thin_record" not in frame:
            frame = frame.assign(thin_record=thin_record(frame))
        people = frame.assign(**{outcome: y})
        if clusters is not None:  # several rows per person: people (their first row's groups), with any outcome
            people = (
                people.assign(_person=clusters)
                .groupby("_person", sort=False)
                .agg({**{c: "first" for c in set(columns.values())}, outcome: "max"})
            )
        counts = protected_counts(people, columns, outcome, disclosure)
        result = result.model_copy(update={"published_counts": counts}).sealed()
    return result


def check_outcomes(outcome: str, rows: int, events: int) -> None:
    if rows == 0 or events == 0 or events == rows:
        raise AuditInputError(
            f"outcome {outcome!r} needs both 0s and 1s among scored rows ({rows:,} usable rows, {events:,} outcomes)"
        )


def population_summary(
    cfg: AuditConfig,
    threshold: float,
    rows: int,
    excluded: int,
    people: int,
    events: int,
    flagged: int,
    probabilities: bool,
    bootstrap: str,
    coverage_descriptions: dict[str, str] | None,
    **extra,
) -> dict:
    return {
        "rows": rows,
        "rows_excluded_missing_score_or_outcome": excluded,
        "people": people,
        "events": events,
        "event_rate": events / rows,
        "threshold": threshold,
        "policy": (
            f"risk >= {cfg.threshold:g}"
            if cfg.threshold is not None
            else f"top {cfg.top_share:.1%} by risk (risk >= {threshold:.4f})"
        ),
        "flagged": flagged,
        "scores_are_probabilities": probabilities,
        "bootstrap": bootstrap,
        "coverage_descriptions": coverage_descriptions or {},
        **extra,
    }


def assemble(
    subject: dict,
    cfg: AuditConfig,
    population: dict,
    results: list[GroupingResult],
    mitigation,
    need: list[NeedGroupingResult] | None = None,
    absolute: AbsoluteResult | None = None,
) -> AuditResult:
    """The sealed result: flags and uncertain gaps in grouping order (then need at equal score), the
    plain-English summary, hazards."""
    need = need or []
    every = [c for r in results for c in r.comparisons] + [c for n in need for c in n.comparisons]
    flags = (absolute.flags if absolute else []) + [c for c in every if c.status == "flag"]
    uncertain = [c for c in every if c.status == "uncertain"]
    result = AuditResult(
        subject=subject,
        config=cfg,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        population=population,
        groupings=results,
        flags=flags,
        uncertain=uncertain,
        summary=[],
        hazards=[],
        mitigation=mitigation,
        need=need,
        absolute=absolute,
    )
    result.summary = narrative.summary(result)
    result.hazards = narrative.hazards(result)
    return result.sealed()
