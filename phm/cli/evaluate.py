"""`phm evaluate`: did a programme work? Matched comparison and difference-in-differences from routine data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.common import console, fail, settings

app = typer.Typer(help="Evaluate care programmes against matched comparison groups.", no_args_is_help=True)


@app.command("programme")
def programme_cmd(
    enrolment: Annotated[
        Optional[Path],
        typer.Option(
            help="CSV of enrolments: person_id (warehouse pseudonym), "
            "enrol_date (YYYY-MM-DD); or the enrolments.csv `phm worklist "
            "export-outcomes` writes."
        ),
    ] = None,
    from_outcomes: Annotated[
        bool,
        typer.Option(
            "--from-outcomes",
            help="Read enrolments from the `enrolled` outcomes coordinators recorded (operational database).",
        ),
    ] = False,
    synthetic: Annotated[
        Optional[Path],
        typer.Option(help="Synthetic ICS folder whose programme's enrolments (truth/) to evaluate instead of a CSV."),
    ] = None,
    scores: Annotated[
        Optional[Path],
        typer.Option(
            help="With --cutoff-score: CSV of person_id, score (each "
            "person's score when the enrolment rule was applied)."
        ),
    ] = None,
    cutoff_score: Annotated[
        Optional[float],
        typer.Option(help="Enrolment was offered at or above this score: adds a regression-discontinuity estimate."),
    ] = None,
    scored_on: Annotated[
        Optional[datetime],
        typer.Option(
            formats=["%Y-%m-%d"], help="Month the cut-off rule was applied (default: the first enrolment month)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Programme name for the report and the MLflow run.")] = "programme",
    draws: Annotated[int, typer.Option(min=0, max=5000, help="Bootstrap draws for the intervals.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (matching fit sample, bootstrap).")] = 0,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file (default: under PHM_HOME).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Report folder (default: $PHM_HOME/reports/programme).")] = None,
) -> None:
    """Effect of enrolment on emergency admissions, bed-days and A&E attendances: naive before-after beside the
    matched difference-in-differences, a balance table, and the effect by ethnicity and deprivation. Writes an
    HTML and JSON report (aggregates only, disclosure-controlled) and logs it to MLflow. Enrolments come from the
    coordinators' recorded outcomes, a CSV, or a synthetic ICS's truth; a person enrolled twice counts from their
    first enrolment."""
    from evaluation.programme.enrolment import (
        EnrolmentFileError,
        outcome_enrolment,
        read_enrolment,
        read_scores,
        synthetic_cutoff,
        synthetic_enrolment,
    )
    from evaluation.programme.matching import CalibrationError
    from evaluation.programme.panel import EnrolmentError
    from phm.operational.database import DatabaseError, upgrade
    from training.programme_job import run_programme_evaluation

    if (enrolment is not None) + (synthetic is not None) + from_outcomes != 1:
        raise fail("give exactly one of --enrolment FILE.csv, --from-outcomes or --synthetic FOLDER")
    if (scores is None) != (cutoff_score is None):
        raise fail("give --scores FILE.csv and --cutoff-score together")
    s = settings()
    try:
        if from_outcomes:
            upgrade(s)
            frame = outcome_enrolment(s)
        else:
            frame = read_enrolment(enrolment) if enrolment is not None else synthetic_enrolment(s, synthetic)
        cutoff = None
        if scores is not None:
            month = (scored_on or frame["enrol_date"].min()).replace(day=1)
            cutoff = (read_scores(scores), cutoff_score, month)
        elif synthetic is not None:
            cutoff = synthetic_cutoff(s, synthetic)  # the synthetic programme's own rule, when its scores are kept
        with console.status(f"Evaluating {name}"):
            result = run_programme_evaluation(
                s, frame, name=name, draws=draws, seed=seed, warehouse=warehouse, out_dir=out, cutoff=cutoff
            )
    except (EnrolmentFileError, EnrolmentError, CalibrationError, DatabaseError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    r = result.released
    counts = {k: "* (hidden: disclosure control)" if v is None else f"{v:,}" for k, v in r["counts"].items()}
    console.print(
        f"Enrolled with 12 months of follow-up: {counts['enrolled_with_follow_up']}; matched: {counts['matched']}"
    )
    for outcome, o in r["outcomes"].items():
        ba, did = o["before_after"], o["difference_in_differences"]
        console.print(
            f"{outcome}: naive before-after {_pct(ba['relative'])}; matched DiD {_pct(did['relative'])} "
            f"(95% {_pct(did['relative_ci'][0])} to {_pct(did['relative_ci'][1])})"
        )
    rd = r.get("discontinuity", {}).get("admissions")
    if rd is not None:
        console.print(
            "Regression discontinuity (admissions): "
            + (
                rd["error"]
                if "error" in rd
                else f"effect of enrolment {rd['effect']:+.3f} per person-year (95% {rd['effect_ci'][0]:+.3f} to "
                f"{rd['effect_ci'][1]:+.3f}); {rd['below']} below and {rd['above']} above the cut-off"
            )
        )
    console.print(f"Largest |SMD|: {r['max_abs_smd_matched']} after matching, {r['max_abs_smd_after']} after weighting")
    console.print(f"Saved {result.html} and {result.json}" + (f"; MLflow run {result.run_id}" if result.run_id else ""))


def _pct(v: float | None) -> str:
    return "*" if v is None else f"{100 * v:+.1f}%"
