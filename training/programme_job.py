"""`phm evaluate programme`: evaluate a programme against the warehouse, release the report under the
disclosure policy, write it under reports/programme and log it to MLflow (experiment `programme-evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from evaluation.disclosure import Policy
from evaluation.programme.evaluate import evaluate_programme
from evaluation.programme.report import release, write
from phm.core.settings import Settings

EXPERIMENT = "programme-evaluation"


@dataclass
class ProgrammeRun:
    released: dict
    html: Path
    json: Path
    run_id: str | None


def run_programme_evaluation(
    settings: Settings,
    enrolment: pd.DataFrame,
    *,
    name: str = "programme",
    draws: int = 200,
    seed: int = 0,
    warehouse: Path | None = None,
    out_dir: Path | None = None,
    log: bool = True,
    cutoff: tuple[pd.DataFrame, float, date] | None = None,
) -> ProgrammeRun:
    """Evaluate, release, write and (if `log`) log to MLflow; only the released aggregates leave this function."""
    source = warehouse or settings.warehouse_path
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no warehouse. Load extracts with `phm data load` first.")
    con = duckdb.connect(str(source), read_only=True)
    try:
        result = evaluate_programme(con, enrolment, draws=draws, seed=seed, cutoff=cutoff)
    finally:
        con.close()
    released = release(result, Policy.from_settings(settings))
    html, js = write(released, out_dir or settings.reports_dir / "programme", title=f"Programme evaluation: {name}")
    run_id = None
    if log:
        import mlflow

        from training.tracking import configure, experiment_id

        configure(settings)
        with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT), run_name=name) as active:
            mlflow.log_params(
                {
                    "programme": name,
                    "bootstrap_draws": draws,
                    "seed": seed,
                    "matching_k": released["method"]["k"],
                    "caliper_sd": released["method"]["caliper_sd"],
                }
            )
            metrics = {
                "max_abs_smd_after": released["max_abs_smd_after"],
                "max_abs_smd_matched": released["max_abs_smd_matched"],
            }
            for outcome, o in released["outcomes"].items():
                for method in ("before_after", "difference_in_differences"):
                    if o[method]["relative"] is not None:
                        metrics[f"{outcome}_{method}_relative"] = o[method]["relative"]
            rd = released.get("discontinuity", {}).get("admissions", {})
            if rd.get("effect") is not None:
                metrics["admissions_discontinuity_effect"] = rd["effect"]
            mlflow.log_metrics(metrics)
            mlflow.log_artifact(str(html), "programme_evaluation")
            mlflow.log_artifact(str(js), "programme_evaluation")
            run_id = active.info.run_id
    return ProgrammeRun(released, html, js, run_id)
