"""Rolling-origin back-test of every forecaster on one series, the choice of model, and the final
forecast with conformal intervals.

* Origins every `origin_spacing_days`, the latest a week before the data ends, the earliest after
  `min_history_days`; at most `origins` of them. Each forecasts `max_horizon` days from the history
  before it; leads that run past the data are unknown (NaN), so recent origins still count at short leads.
* Intervals are split-conformal per lead: sigma(h) scales the errors and the standardised errors are
  pooled (`intervals.py`), calibrated on a rolling window of the most recent `calibration_origins` origins
  only, so a level shift widens them as soon as its errors are known; then the 80% and the 95% interval are
  each widened by the factor that would have made the same window's intervals hold their share of the days
  known (an adaptive conformal step: the errors of a few overlapping windows understate the next one's).
* The coverage reported is honest (sequential): each origin's intervals are calibrated only on errors whose
  days had passed by that origin, as a planner would have had them, and checked on every day of that
  origin's window known so far (so the latest weeks count). MASE uses complete windows only.
* Choice: the ensemble (the statistical models' forecasts weighted by 1/MASE^2 in this back-test, by band of
  lead times - days 1-7 and 8-28 by default - those worse than the seasonal naive over the band left out;
  or their median or mean) unless a single model beats it by
  `selection_margin` on the back-test over at least `min_selection_origins` non-overlapping windows and on
  most origins; without an ensemble in the pool, the seasonal naive is the fallback on thin evidence.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from models.forecasting import accuracy
from models.forecasting.intervals import LEVELS, QUANTILES, ResidualModel, fit_residuals, needed_widening
from models.forecasting.pool import FORECASTERS, Blend, Ensemble, combine

QCOLS = {0.025: "q025", 0.1: "q10", 0.5: "q50", 0.9: "q90", 0.975: "q975"}
MIN_OUTCOME_DAYS = 28  # the shortest back-test window that can say anything about a forecast
MIN_WIDENING_DAYS = 28  # known back-test days needed before they widen the intervals
WIDENING_BOUNDS = (1.0, 3.0)


class SeriesRefused(ValueError):
    """A series too short or too sparse to forecast (the message says why)."""


def check_series(label: str, y: np.ndarray, cfg) -> None:
    """Refuse a series that is too short for one back-test origin, or mostly zeros."""
    need = cfg.min_history_days + MIN_OUTCOME_DAYS
    if y.size < need:
        raise SeriesRefused(
            f"{label}: {y.size} days of history; at least {need} are needed "
            f"({cfg.min_history_days} before the first back-test origin + {MIN_OUTCOME_DAYS} of outcomes)"
        )
    recent = y[-365:]
    zeros = float(np.mean(recent == 0))
    if zeros > cfg.max_zero_share:
        raise SeriesRefused(
            f"{label}: {zeros:.0%} of the last {recent.size} days are zero (more than "
            f"{cfg.max_zero_share:.0%}); too little signal to forecast daily"
        )


def origins_for(n: int, cfg) -> list[int]:
    last = n - 7
    found = [last - k * cfg.origin_spacing_days for k in range(cfg.origins)]
    return sorted(o for o in found if o >= cfg.min_history_days)


def lead_bands(cfg) -> list[int]:
    """The last lead of each band of leads the back-test scores separately (the selection horizons: days 1-7 and
    8-28 by default; later leads are one more band)."""
    return sorted(set(cfg.selection_horizons))


def band_edges(bands: list[int], horizon: int) -> list[tuple[int, int]]:
    """Each band's leads as a slice (start, stop) of 0..horizon-1, the leads after the last band one more."""
    return [(lo, min(hi, horizon)) for lo, hi in zip([0, *bands], [*bands, horizon]) if lo < min(hi, horizon)]


def member_names(cfg) -> list[str]:
    return cfg.ensemble_members or [m for m in cfg.models if m not in ("seasonal_naive", "ensemble")]


def point_forecasts(
    history: pd.Series, capacity: float | None, horizon: int, cfg, keep_members: bool = False
) -> dict[str, np.ndarray]:
    """Every model's forecast from one history (the ensemble from its members' forecasts)."""
    needed = [m for m in cfg.models if m != "ensemble"]
    if "ensemble" in cfg.models:
        needed += [m for m in member_names(cfg) if m not in needed]
    out = {m: FORECASTERS[m](cfg.holidays).fit(history, capacity).predict(horizon) for m in needed}
    if "ensemble" in cfg.models:  # a weighted ensemble is re-weighted from the whole back-test (run_backtest)
        out["ensemble"] = np.clip(combine([out[m] for m in member_names(cfg)], cfg.ensemble_method), 0, None)
    return out if keep_members else {k: v for k, v in out.items() if k in cfg.models}


def ensemble_weights(bt: dict, cfg) -> np.ndarray | None:
    """Back-test weights of the ensemble's members by lead time (members x leads): for each band of leads up to
    a selection horizon (days 1-7 and 8-28 by default; later leads take the last band's), 1 / MASE^2 over the
    band in complete windows, for the members no worse than the seasonal naive over it (all members if none
    is); None if unscored. A member good at next week and one good at next month each lead where it is good."""
    bands = lead_bands(cfg)
    full = np.isfinite(bt["actual"][:, bands[-1] - 1])
    if not full.any():
        return None
    scale = np.where(bt["scales"][full] > 0, bt["scales"][full], np.nan)

    def score(pred: np.ndarray, lo: int, hi: int) -> float:
        with np.errstate(all="ignore"):
            return float(np.nanmean(np.mean(np.abs(bt["actual"][full, lo:hi] - pred[full, lo:hi]), axis=1) / scale))

    members = member_names(cfg)
    out = np.zeros((len(members), bt["actual"].shape[1]))
    lo = 0
    for hi in bands:
        scores = np.array([score(bt["member_preds"][m], lo, hi) for m in members])
        if not np.isfinite(scores).all() or (scores <= 0).any():
            return None
        naive = (
            score(bt["member_preds"]["seasonal_naive"], lo, hi) if "seasonal_naive" in bt["member_preds"] else np.inf
        )
        keep = scores <= naive if (scores <= naive).any() else np.ones(scores.size, bool)
        out[:, lo:hi] = (keep / scores**2)[:, None]
        lo = hi
    out[:, lo:] = out[:, lo - 1 : lo]
    return out


def blend(bt: dict, cfg) -> Blend | None:
    """The weighted ensemble's blend: back-test weights (`ensemble_weights`), and after the first selection band
    a lean toward the anchored median (the mean of the members' median and the anchor, the weekly level): all
    the way through the last band, fading to nothing over as many days again; none with no anchor among the
    members. Weights estimated at longer leads rest on few, noisy windows (even whether the anchor beats the
    naive there); the fixed simple rule gained at days 8-28 on the real series on nearly every grid of origins
    of both periods (`benchmarks.forecast_phases`). None if the back-test scored nothing."""
    weights = ensemble_weights(bt, cfg)
    members = member_names(cfg)
    if weights is None or cfg.ensemble_anchor is None or cfg.ensemble_anchor not in members:
        return None if weights is None else Blend(weights)
    bands = lead_bands(cfg)
    lead = np.arange(1, weights.shape[1] + 1)
    first, last = bands[0], bands[-1]
    lean = np.where(lead <= last, 1.0, np.clip((2 * last - lead) / last, 0, 1)) * (lead > first)
    return Blend(weights, lean, members.index(cfg.ensemble_anchor))


def known_mask(origins: list[int], k: int, horizon: int) -> np.ndarray:
    """Which back-test errors (origin j, lead l) were known on the day of origin k (their day had passed)."""
    o = np.asarray(origins)[:, None]
    return (o + np.arange(horizon)[None, :]) < origins[k]


def sequential_models(errors: np.ndarray, origins: list[int], window: int) -> list[ResidualModel | None]:
    """Each origin's residual model from the errors known by then, of the `window` latest origins (None with
    fewer than two origins' errors known)."""
    out: list[ResidualModel | None] = []
    for k in range(len(origins)):
        known = np.where(known_mask(origins, k, errors.shape[1]), errors, np.nan)[max(0, k - window) : k]
        usable = np.isfinite(known).any(axis=1).sum() if known.size else 0
        out.append(fit_residuals(known) if usable >= 2 else None)
    return out


def needed(models: list[ResidualModel | None], preds: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Each origin's `needed_widening` at each lead for each of `LEVELS` (NaN for origins without intervals and
    unknown days): LEVELS x origins x leads."""
    out = np.full((len(LEVELS), *actual.shape), np.nan)
    for j, m in enumerate(models):
        if m is not None:
            for row, level in enumerate(LEVELS):
                out[row, j] = needed_widening(m, preds[j], actual[j], level)
    return out


def widening(needs: np.ndarray, origins: list[int], before: float, window: int, bands: list[int]) -> np.ndarray:
    """For the 80% and the 95% interval (`LEVELS`) at each lead, the widening (`ResidualModel.widened`) that
    would have made the intervals of the `window` latest origins (of those with intervals, before day `before`)
    hold their share of the days known before that day (`needs`: from `needed`), by band of leads (up to each of
    `bands`, then the rest) - an adaptive conformal step: intervals that missed widen the next ones. A band with
    fewer than `MIN_WIDENING_DAYS` such days takes the factor of all bands together, or 1 if they too have
    fewer. Within `WIDENING_BOUNDS`: never narrower, as a planner is worse served by an interval too narrow than
    by one too wide (and on the real series narrowing lost coverage out of sample). LEVELS x leads."""
    H = needs.shape[2]
    scored = np.isfinite(needs).any(axis=(0, 2))
    earlier = [j for j in range(len(origins)) if origins[j] < before and scored[j]][-window:]
    known = (np.asarray(origins)[earlier, None] + np.arange(H)[None, :]) < before
    out = np.ones((len(LEVELS), H))
    for row, level in enumerate(LEVELS):
        r_all = np.where(known, needs[row, earlier], np.nan)

        def factor(r: np.ndarray, level: float = level) -> float | None:
            r = r[np.isfinite(r)]
            if r.size < MIN_WIDENING_DAYS:
                return None
            return float(np.clip(np.quantile(r, level, method="higher"), *WIDENING_BOUNDS))

        overall = factor(r_all.ravel()) or 1.0
        out[row] = overall
        for lo, hi in band_edges(bands, H):
            out[row, lo:hi] = factor(r_all[:, lo:hi].ravel()) or overall
    return out


def widening_by_band(factors: np.ndarray, bands: list[int]) -> dict[str, dict[str, float]]:
    """The widening (LEVELS x leads) as its bands of leads, e.g. {"80%": {"1-7": 1.0, "8-28": 1.37, "29-90":
    1.46}, "95%": {...}}."""
    return {
        f"{level:.0%}": {f"{lo + 1}-{hi}": round(float(row[lo]), 3) for lo, hi in band_edges(bands, factors.shape[1])}
        for level, row in zip(LEVELS, factors)
    }


def sequential_intervals(
    errors: np.ndarray, preds: np.ndarray, actual: np.ndarray, origins: list[int], window: int, bands: list[int]
) -> tuple[list[dict[float, np.ndarray] | None], np.ndarray]:
    """Each origin's intervals as a planner would have had them: calibrated only on errors known by then (the
    `window` latest origins), widened by what the earlier origins' intervals achieved on the days known by then
    (`widening`). And the widening the same step gives a forecast from the end of the data."""
    models = sequential_models(errors, origins, window)
    needs = needed(models, preds, actual)
    out = [
        None if m is None else m.widened(widening(needs, origins, origins[k], window, bands)).quantiles(preds[k])
        for k, m in enumerate(models)
    ]
    return out, widening(needs, origins, np.inf, window, bands)


def independent_windows(origins: list[int], span: int) -> int:
    """How many of the origins' windows of `span` days do not overlap (greedy from the latest)."""
    count, edge = 0, None
    for o in sorted(origins, reverse=True):
        if edge is None or o + span <= edge:
            count, edge = count + 1, o
    return count


def choose(per_origin: dict[str, np.ndarray], complete: list[int], cfg) -> tuple[str, str]:
    """The model to forecast with, and why (see the module docstring)."""
    span = max(cfg.selection_horizons)
    n_indep = independent_windows(complete, span)
    scores = {m: float(np.nanmean(v)) for m, v in per_origin.items() if np.isfinite(v).any()}
    fallback = "ensemble" if "ensemble" in cfg.models else "seasonal_naive" if "seasonal_naive" in cfg.models else None
    if not scores:
        return fallback or cfg.models[0], "no back-test window complete: fallback"
    singles = {m: s for m, s in scores.items() if m != fallback}
    if fallback is None or fallback not in scores:
        best = min(scores, key=scores.get)
        return best, f"lowest back-test MASE {scores[best]:.3f}"
    if not singles:
        return fallback, "only model"
    best = min(singles, key=singles.get)
    wins = float(np.nanmean(per_origin[best] < per_origin[fallback]))
    if n_indep < cfg.min_selection_origins:
        return (
            fallback,
            f"{n_indep} non-overlapping {span}-day back-test window(s) < {cfg.min_selection_origins}: too thin to choose",
        )
    if singles[best] <= (1 - cfg.selection_margin) * scores[fallback] and wins >= 2 / 3:
        return best, (
            f"MASE {singles[best]:.3f} vs {fallback} {scores[fallback]:.3f} over {n_indep} windows, "
            f"better on {wins:.0%} of origins"
        )
    return fallback, (
        f"no single model beat {fallback} ({scores[fallback]:.3f}) by {cfg.selection_margin:.0%} "
        f"(best {best} {singles[best]:.3f})"
    )


def run_backtest(y: pd.Series, capacity: float | None, cfg) -> dict:
    """Forecasts, actuals and errors of every model at every origin."""
    H, values = cfg.max_horizon, y.to_numpy(dtype=float)
    origins = origins_for(len(values), cfg)
    preds: dict[str, np.ndarray] = {}
    actual = np.full((len(origins), H), np.nan)
    scales = np.zeros(len(origins))
    for k, o in enumerate(origins):
        for name, point in point_forecasts(y.iloc[:o], capacity, H, cfg, keep_members=True).items():
            preds.setdefault(name, np.full((len(origins), H), np.nan))[k] = point
        seen = values[o : o + H]
        actual[k, : seen.size] = seen
        scales[k] = accuracy.seasonal_naive_scale(values[:o])
    bt = {"origins": origins, "member_preds": preds, "actual": actual, "scales": scales, "blend": None}
    if "ensemble" in cfg.models and cfg.ensemble_method == "weighted":
        bt["blend"] = blend(bt, cfg)
        if bt["blend"] is not None:
            stack = np.stack([preds[m] for m in member_names(cfg)])  # members x origins x leads
            preds = {**preds, "ensemble": np.clip(combine(stack, "weighted", bt["blend"]), 0, None)}
    bt["preds"] = {m: preds[m] for m in cfg.models}
    bt["errors"] = {m: actual - p for m, p in bt["preds"].items()}
    return bt


def report_rows(
    bt: dict, site: str, metric: str, cfg
) -> tuple[list[dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The back-test table (per model and horizon), per-origin selection MASE, and each model's widening of its
    final intervals (`sequential_intervals`)."""
    origins, actual, scales, n = bt["origins"], bt["actual"], bt["scales"], len(bt["origins"])
    span = max(cfg.selection_horizons)
    rows, per_origin, seq, widen = [], {}, {}, {}
    for name in cfg.models:
        pred, err = bt["preds"][name], bt["errors"][name]
        seq[name], widen[name] = sequential_intervals(
            err, pred, actual, origins, cfg.calibration_origins, lead_bands(cfg)
        )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # origins with no outcome yet: NaN
            mae = np.nanmean(np.abs(err[:, :span]), axis=1)
        full = np.isfinite(actual[:, span - 1])
        per_origin[name] = np.where(full, mae / np.where(scales > 0, scales, np.nan), np.nan)
        if np.isnan(per_origin[name][full]).all():  # flat history: no MASE scale, choose by MAE
            per_origin[name] = np.where(full, mae, np.nan)
        for h in cfg.horizons:
            done = [k for k in range(n) if np.isfinite(actual[k, h - 1])]
            checked = [k for k in range(n) if seq[name][k] is not None]  # every day known so far counts
            a = actual[checked, :h]
            q = {qq: np.vstack([seq[name][k][qq][:h] for k in checked]) for qq in QUANTILES} if checked else None
            seen = np.isfinite(a)
            rows.append(
                {
                    "site": site,
                    "metric": metric,
                    "model": name,
                    "horizon": h,
                    "mase": float(np.mean([accuracy.mase(actual[k, :h], pred[k, :h], scales[k]) for k in done]))
                    if done
                    else float("nan"),
                    "mape": accuracy.mape(actual[done, :h].ravel(), pred[done, :h].ravel()) if done else float("nan"),
                    "mae": float(np.mean(np.abs(err[done, :h]))) if done else float("nan"),
                    "coverage_80": accuracy.coverage(a[seen], q[0.1][seen], q[0.9][seen]) if q else float("nan"),
                    "coverage_95": accuracy.coverage(a[seen], q[0.025][seen], q[0.975][seen]) if q else float("nan"),
                    "pinball": accuracy.pinball(a[seen], {qq: v[seen] for qq, v in q.items()}) if q else float("nan"),
                    "origins": len(done),
                    "coverage_origins": len(checked),
                }
            )
    return rows, per_origin, widen


def calibration(errors: np.ndarray, window: int, factors: float | np.ndarray = 1.0) -> ResidualModel:
    """The final intervals' residual model: the latest `window` origins' known errors, widened by `factors`."""
    return fit_residuals(errors[-window:]).widened(factors)


def final_forecast(
    series, model: str, residuals: ResidualModel, cfg, ensemble_blend: Blend | None = None
) -> pd.DataFrame:
    y = series.values.astype(float)
    if model == "ensemble":
        fitted = (
            Ensemble(cfg.holidays)
            .configure(member_names(cfg), cfg.ensemble_method, ensemble_blend)
            .fit(y, series.capacity)
        )
    else:
        fitted = FORECASTERS[model](cfg.holidays).fit(y, series.capacity)
    point = fitted.predict(cfg.max_horizon)
    qs = residuals.quantiles(point)
    out = pd.DataFrame(
        {
            "site": series.site,
            "metric": series.metric,
            "date": fitted.future_index(cfg.max_horizon),
            "model": model,
            "mean": point,
            **{QCOLS[q]: v for q, v in qs.items()},
        }
    )
    out["capacity"] = series.capacity if series.capacity else np.nan
    if series.capacity:
        threshold = cfg.threshold_share * series.capacity
        out["threshold"] = threshold
        out["p_exceed"] = residuals.exceed_probability(point, threshold)
    else:
        out["threshold"], out["p_exceed"] = np.nan, np.nan
    out["sigma_a"], out["sigma_b"] = residuals.a, residuals.b
    out["reconciled"] = False
    return out
