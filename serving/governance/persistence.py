"""Persistence of high risk: of the people in the top share (5%) at one past index date, the share still in the top
share 3, 6 and 12 months later. Risk at high levels regresses to the mean, so "new this month" often matters more
than "still here"; this puts a number on it for the deployed model.

The champion scores the feature tables of past index dates (every `step_months` back from the end of the data over
`history_months`; one build, kept at `$PHM_HOME/features/<model>_persistence.parquet` so the figures can be
checked); at each date the top share of the eligible population is taken by risk (ties by person id); for each
pair of dates a lag apart, the share of the earlier top group also in the later one (people no longer eligible
count as not retained). The result is saved at `reports/persistence/<model>.json` for the Models page."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from evaluation.disclosure import Policy
from features.build import build
from features.series import data_end
from models import specs
from phm.core.settings import Settings
from training import registry, tracking

LAGS = (3, 6, 12)


def months_before(day: date, months: int) -> date:
    return (pd.Timestamp(day) - pd.DateOffset(months=months)).date()


def index_dates(as_of: date, history_months: int, step_months: int) -> list[date]:
    """`as_of` and every `step_months` before it over `history_months`, oldest first."""
    return sorted(months_before(as_of, k) for k in range(0, history_months + 1, step_months))


def top_sets(scored: pd.DataFrame, top_share: float) -> dict[str, np.ndarray]:
    """Per index date, the person ids in the top `top_share` by risk (ceil of the share of people; ties by id)."""
    out = {}
    for day, part in scored.groupby("index_date", sort=True):
        n = math.ceil(top_share * len(part))
        order = np.lexsort((part.person_id.to_numpy(), -part.risk.to_numpy()))
        out[str(pd.Timestamp(day).date())] = part.person_id.to_numpy()[order[:n]]
    return out


def retention(tops: dict[str, np.ndarray], step_months: int, lags: tuple[int, ...] = LAGS) -> list[dict]:
    """Per lag, each pair of index dates that many months apart (the dates are `step_months` apart, oldest first, so
    a lag of L months pairs each date with the one L / step_months places later) and the pooled share still in the
    top group. A lag that is not a whole number of steps has no pairs."""
    days = sorted(tops)
    out = []
    for lag in lags:
        pairs = []
        ahead = lag // step_months if lag % step_months == 0 else None
        for i, d in enumerate(days):
            if ahead is None or i + ahead >= len(days):
                continue
            later = days[i + ahead]
            kept = int(np.isin(tops[d], tops[later]).sum())
            pairs.append(
                {
                    "from": d,
                    "to": later,
                    "top": int(len(tops[d])),
                    "still_top": kept,
                    "share": kept / len(tops[d]) if len(tops[d]) else None,
                }
            )
        top, kept = sum(p["top"] for p in pairs), sum(p["still_top"] for p in pairs)
        out.append({"months": lag, "pairs": pairs, "share": kept / top if top else None})
    return out


def run_persistence(
    settings: Settings,
    name: str | None = None,
    as_of: date | None = None,
    history_months: int = 12,
    step_months: int = 3,
    top_share: float = 0.05,
) -> dict:
    """Compute and save the persistence of the top share for the champion of `name` (default: the worklist
    model)."""
    name = name or specs.worklist().name
    tracking.configure(settings)
    try:
        mv = MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        registry.missing_or_raise(exc)  # a failing store is said as such, not "no champion"
        raise ValueError(f"{name} has no champion; promote a version first") from exc
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().model
    as_of = as_of or data_end(settings.warehouse_path)
    days = index_dates(as_of, history_months, step_months)
    path = table_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    build(settings.warehouse_path, specs.get(name).build_config(days), path)
    features = pd.read_parquet(path)
    predictors = list(model.feature_names_in_)
    scored = pd.DataFrame(
        {
            "index_date": features.index_date,
            "person_id": features.person_id,
            "risk": model.predict_proba(features[predictors].astype("float64"))[:, 1],
        }
    )
    tops = top_sets(scored, top_share)
    result = {
        "model": name,
        "version": str(mv.version),
        "as_of": str(as_of),
        "top_share": top_share,
        "step_months": step_months,
        "index_dates": [str(d) for d in days],
        "feature_table": str(path),
        "people": {
            d: int(n)
            for d, n in scored.groupby(scored.index_date.map(lambda x: str(pd.Timestamp(x).date()))).size().items()
        },
        "lags": retention(tops, step_months),
        "computed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = result_path(settings, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    return result


def table_path(settings: Settings, name: str) -> Path:
    return settings.features_dir / f"{name}_persistence.parquet"


def result_path(settings: Settings, name: str) -> Path:
    return settings.reports_dir / "persistence" / f"{name}.json"


def latest(settings: Settings, name: str | None = None) -> dict | None:
    """The saved result for `name` (default: the worklist model), or None."""
    path = result_path(settings, name or specs.worklist().name)
    return json.loads(path.read_text()) if path.exists() else None


def released(result: dict | None, policy: Policy) -> dict | None:
    """`result` as the Models page shows it to every role: people in the top group and still in it hidden when small
    and rounded, and a share only where the people who stayed and who left would both be shown (a lag's pooled
    share only where every pair's is, so no pair can be worked out from it)."""
    if result is None:
        return None

    def shown(top: int, kept: int, share: float | None) -> tuple[int | None, int | None, float | None]:
        counts = policy.count(top), policy.count(kept), policy.count(top - kept)
        return counts[0], counts[1], policy.mean(share) if None not in counts else None

    lags = []
    for lag in result["lags"]:
        pairs = []
        for p in lag["pairs"]:
            top, kept, share = shown(p["top"], p["still_top"], p["share"])
            pairs.append({**p, "top": top, "still_top": kept, "share": share})
        pooled = policy.mean(lag["share"]) if all(p["share"] is not None for p in pairs) else None
        lags.append({**lag, "pairs": pairs, "share": pooled})
    return {**result, "people": {d: policy.count(int(n)) for d, n in result.get("people", {}).items()}, "lags": lags}
