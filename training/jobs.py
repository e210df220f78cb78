"""Fit a risk model: build features for the training and later validation periods, tune a few
hyperparameters on the training period only, fit LightGBM, calibrate it on held-out training
people, and fit the logistic-regression baseline. Index dates not configured follow the data
(`training.dates`); the job's configuration records the dates used.

Training people are split by a seeded hash of their pseudonym into fit (60%), early-stopping
and tuning (20%) and calibration (20%) parts, so one person (who may appear at several index
dates) never sits in two parts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.build import build, data_span_of
from features.engine import open_engine
from models.risk import BoostingParams, GradientBoostedRisk, LogisticBaseline
from phm.core.settings import Settings
from phm.core.stats import auroc
from training.safe_learning import weights as safe_weights
from training.config import TrainConfig
from training.dates import DataSpan, TrainingDatesError, check_dates, dates_for_data

Progress = Callable[[str], None]


@dataclass
class FittedJob:
    """Everything a training job produced, before evaluation and registration."""

    cfg: TrainConfig
    model: GradientBoostedRisk
    baseline: LogisticBaseline
    predictors: list[str]
    train: pd.DataFrame
    validation: pd.DataFrame
    manifests: dict[str, dict]
    tuning: list[dict]
    chosen: BoostingParams
    parts: dict[str, int] = field(default_factory=dict)
    span: DataSpan | None = None
    dates_note: str = ""


def person_parts(person_id: pd.Series, seed: int) -> np.ndarray:
    """0 = fit, 1 = early stopping/tuning, 2 = calibration: a seeded hash of the pseudonym."""
    h = pd.util.hash_pandas_object(person_id.astype("int64") ^ np.int64(seed * 2_654_435_761), index=False)
    bucket = (h.to_numpy() % np.uint64(10)).astype(int)
    return np.select([bucket < 6, bucket < 8], [0, 1], 2)


def _sample(mask: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """`mask` thinned at random (seeded) to at most `limit` rows."""
    idx = np.flatnonzero(mask)
    if idx.size <= limit:
        return mask
    keep = np.zeros_like(mask)
    keep[np.random.default_rng(seed).choice(idx, limit, replace=False)] = True
    return keep


def resolve_dates(cfg: TrainConfig, span: DataSpan) -> tuple[TrainConfig, str]:
    """`cfg` with its index dates: as configured (checked against the data), else following the data."""
    spec = cfg.spec
    if cfg.follows_data:
        train, validation, note = dates_for_data(spec, span)
        return cfg.model_copy(update={"train_dates": train, "validation_dates": validation}), note
    check_dates(spec, cfg.train_dates, cfg.validation_dates, span)
    return (
        cfg,
        f"configured dates (data {span}): training {cfg.train_dates[0]}..{cfg.train_dates[-1]}, "
        f"validation {cfg.validation_dates[0]}..{cfg.validation_dates[-1]}",
    )


def build_frames(
    cfg: TrainConfig, settings: Settings, say: Progress, engine: str | None = None
) -> tuple[TrainConfig, pd.DataFrame, pd.DataFrame, dict, DataSpan, str]:
    """The configuration with its index dates resolved against the data, and the training and validation feature
    tables with known labels, built on `engine` (default: the setting); LightGBM then trains in this process on
    the rows built."""
    manifests = {}
    frames = {}
    with open_engine(settings, engine) as source:
        span = DataSpan(*data_span_of(source))
        cfg, note = resolve_dates(cfg, span)
        say(note)
        for part, dates in (("train", cfg.train_dates), ("validation", cfg.validation_dates)):
            say(f"building {part} features ({len(dates)} index date{'s' if len(dates) > 1 else ''}) on {source.name}")
            out = settings.features_dir / f"{cfg.model_name}_{part}.parquet"
            manifests[part] = build(source, cfg.spec.build_config(dates), out)
            frame = pd.read_parquet(out)
            frames[part] = frame[frame[cfg.label].notna()].reset_index(drop=True)
    return cfg, frames["train"], frames["validation"], manifests, span, note


def fit(cfg: TrainConfig, settings: Settings, progress: Progress | None = None, engine: str | None = None) -> FittedJob:
    """Fit `cfg`'s model; the returned job's `cfg` has the index dates used (chosen from the data if not given)."""
    say = progress or (lambda _m: None)
    cfg, train, validation, manifests, span, note = build_frames(cfg, settings, say, engine)
    if cfg.max_train_rows and len(train) > cfg.max_train_rows:
        train = train.sample(cfg.max_train_rows, random_state=cfg.seed).sort_index().reset_index(drop=True)
    w = safe_weights(settings, cfg.spec, train, cfg.safe_learning)
    if cfg.safe_learning != "off":
        say(
            f"safe learning ({cfg.safe_learning}): {int((w == 0).sum()):,} rows the programme may have changed left "
            f"out, {int((w > 1).sum()):,} up-weighted"
        )
        train, w = train[w > 0].reset_index(drop=True), w[w > 0]
    predictors = [p for p in manifests["train"]["predictors"] if pd.api.types.is_numeric_dtype(train[p])]
    y = train[cfg.label].astype(int).to_numpy()
    if y.sum() < 10 or (validation[cfg.label] == 1).sum() < 5:
        raise TrainingDatesError(
            f"too few outcomes to train {cfg.model_name}: {int(y.sum())} in training ({len(train):,} rows at "
            f"{_dates(cfg.train_dates)}), {int((validation[cfg.label] == 1).sum())} in validation ({len(validation):,} "
            f"rows at {_dates(cfg.validation_dates)}); data {span}. At least 10 and 5 are needed: load a larger "
            "population or a longer extract, or configure other dates (--config)"
        )
    part = person_parts(train.person_id, cfg.seed)
    X = train[predictors].astype("float64")
    fit_, stop, cal = (part == 0), (part == 1), (part == 2)
    # tuning uses a seeded sample of the fit and stopping parts (large populations); the final fit uses all
    tune_fit = _sample(fit_, cfg.max_tuning_rows, cfg.seed)
    tune_stop = _sample(stop, cfg.max_tuning_rows // 3, cfg.seed + 1)
    say(f"tuning on {int(tune_fit.sum()):,} of {len(train):,} training rows ({int(y.sum()):,} outcomes in all)")
    tuning = []
    for leaves, child in itertools.product(cfg.grid.num_leaves, cfg.grid.min_child_samples):
        params = cfg.base.model_copy(update={"num_leaves": leaves, "min_child_samples": child, "seed": cfg.seed})
        trial = GradientBoostedRisk(params, cfg.calibration).fit(
            X[tune_fit], y[tune_fit], X[cal], y[cal], X[tune_stop], y[tune_stop], **parts(w, tune_fit, cal, tune_stop)
        )
        tuning.append(
            {
                "num_leaves": leaves,
                "min_child_samples": child,
                "best_iteration": trial.best_iteration_,
                "stop_auroc": auroc(y[tune_stop], trial.raw_proba(X[tune_stop])),
            }
        )
    best = max(tuning, key=lambda t: (t["stop_auroc"], -t["num_leaves"]))
    chosen = cfg.base.model_copy(
        update={"num_leaves": best["num_leaves"], "min_child_samples": best["min_child_samples"], "seed": cfg.seed}
    )
    say(
        f"fitting LightGBM (num_leaves={chosen.num_leaves}, min_child_samples={chosen.min_child_samples}) "
        "and the logistic baseline"
    )
    # find the number of trees by early stopping; on smaller populations refit on fit + stopping
    # people with that many trees (the extra 20% of data matters there, not at a million)
    model = GradientBoostedRisk(chosen, cfg.calibration).fit(
        X[fit_], y[fit_], X[cal], y[cal], X[stop], y[stop], **parts(w, fit_, cal, stop)
    )
    if fit_.sum() < cfg.refit_below_rows:
        chosen = chosen.model_copy(update={"n_estimators": max(20, int(round(model.best_iteration_ * 1.1)))})
        model = GradientBoostedRisk(chosen, cfg.calibration).fit(
            X[fit_ | stop], y[fit_ | stop], X[cal], y[cal], **parts(w, fit_ | stop, cal, None)
        )
    baseline = LogisticBaseline(seed=cfg.seed).fit(
        X[fit_ | stop], y[fit_ | stop], None if cfg.safe_learning == "off" else w[fit_ | stop]
    )
    return FittedJob(
        cfg=cfg,
        model=model,
        baseline=baseline,
        predictors=predictors,
        train=train,
        validation=validation,
        manifests=manifests,
        tuning=tuning,
        chosen=chosen,
        parts={"fit": int(fit_.sum()), "early_stopping": int(stop.sum()), "calibration": int(cal.sum())},
        span=span,
        dates_note=note,
    )


def parts(w: np.ndarray, fit_: np.ndarray, cal: np.ndarray, stop: np.ndarray | None) -> dict:
    """Per-part row weights for `GradientBoostedRisk.fit` (none when every weight is 1: the unweighted fit)."""
    if (w == 1).all():
        return {}
    return {"sample_weight": w[fit_], "cal_weight": w[cal], **({"stop_weight": w[stop]} if stop is not None else {})}


def _dates(days) -> str:
    return str(days[0]) if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} dates)"
