"""Risk classifiers with a scikit-learn style API.

`GradientBoostedRisk`: LightGBM whose probabilities are recalibrated on held-out data (Platt
scaling on the log-odds, or isotonic), so a predicted 10% means about 1 in 10.
`LogisticBaseline`: median imputation, scaling and logistic regression, the simple comparator.
Both take a pandas DataFrame of numeric predictors (NaN allowed) and return P(outcome).
LightGBM trains and predicts on `phm.core.threads.lightgbm_threads()` threads (the `threads` setting, else the
cores available) unless told otherwise; its idle threads sleep rather than spin (`OMP_WAIT_POLICY`, set by the
`models` package before LightGBM loads).
"""

from __future__ import annotations

from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from phm.core.threads import lightgbm_threads
from phm.core.config import Strict

EPS = 1e-6


class BoostingParams(Strict):
    """LightGBM settings (a few are tuned; the rest fixed for determinism)."""

    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(100, ge=1)
    learning_rate: float = Field(0.06, gt=0, le=1)
    n_estimators: int = Field(500, ge=1)
    max_bin: int = Field(63, ge=7, description="Histogram bins; counts and flags need few")
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    seed: int = 1
    threads: int | None = Field(
        None,
        ge=1,
        description="LightGBM threads (None: the threads setting, else the cores "
        "available); results do not depend on it",
    )
    monotone: dict[str, int] = Field(default_factory=dict, description="+1/-1: risk may only rise/fall with it")

    def lgbm(self, columns: list[str] | None = None) -> lgb.LGBMClassifier:
        extra = {}
        if self.monotone and columns is not None:
            extra = {
                "monotone_constraints": [self.monotone.get(c, 0) for c in columns],
                "monotone_constraints_method": "intermediate",
            }
        return lgb.LGBMClassifier(
            **extra,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            learning_rate=self.learning_rate,
            n_estimators=self.n_estimators,
            subsample=self.subsample,
            subsample_freq=1,
            max_bin=self.max_bin,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.seed,
            n_jobs=lightgbm_threads(self.threads),
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


class GradientBoostedRisk(ClassifierMixin, BaseEstimator):
    """LightGBM + calibration fitted on a separate calibration set."""

    def __init__(self, params: BoostingParams | None = None, calibration: Literal["sigmoid", "isotonic"] = "sigmoid"):
        self.params = params
        self.calibration = calibration

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        X_cal: pd.DataFrame,
        y_cal: np.ndarray,
        X_stop: pd.DataFrame | None = None,
        y_stop: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        cal_weight: np.ndarray | None = None,
        stop_weight: np.ndarray | None = None,
    ) -> "GradientBoostedRisk":
        """Fit trees on (X, y), stopping early on (X_stop, y_stop) if given, then calibrate on (X_cal, y_cal); each
        part optionally weighted per row (e.g. `evaluation.programme.holdout.safe_weights`)."""
        params = self.params or BoostingParams()
        self.booster_ = params.lgbm(list(X.columns))
        fit_args: dict = {}
        if X_stop is not None:
            fit_args = {
                "eval_X": (X_stop,),
                "eval_y": (y_stop,),
                "eval_metric": "binary_logloss",
                "callbacks": [lgb.early_stopping(50, verbose=False)],
            }
            if stop_weight is not None:
                fit_args["eval_sample_weight"] = [stop_weight]
        self.booster_.fit(X, y, sample_weight=sample_weight, **fit_args)
        self.feature_names_in_ = np.asarray(X.columns)
        self.classes_ = np.array([0, 1])
        raw = self.raw_proba(X_cal)
        if self.calibration == "isotonic":
            self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=EPS, y_max=1 - EPS).fit(
                raw, y_cal, sample_weight=cal_weight
            )
        else:
            self.calibrator_ = LogisticRegression(C=1e6, max_iter=1000).fit(
                logit(raw)[:, None], y_cal, sample_weight=cal_weight
            )
        return self

    def use_threads(self, threads: int | None) -> "GradientBoostedRisk":
        """Threads LightGBM predicts with (None: this machine's `lightgbm_threads()`, not the training machine's).
        A service with one worker per core, or a Spark task, uses 1: the workers are the parallelism. Predictions
        do not depend on it."""
        self.predict_threads_ = threads
        return self

    def _predict_kwargs(self) -> dict:
        threads = getattr(self, "predict_threads_", None)  # models pickled before `use_threads` lack it
        return {"num_iteration": self.best_iteration_, "num_threads": lightgbm_threads(threads)}

    @property
    def best_iteration_(self) -> int:
        return int(self.booster_.best_iteration_ or self.booster_.n_estimators)

    def raw_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict_proba(X[self.feature_names_in_], **self._predict_kwargs())[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self._calibrate(self.raw_proba(X))
        return np.column_stack([1 - p, p])

    def risk_from_values(self, values: np.ndarray) -> np.ndarray:
        """Calibrated P(outcome) from a float64 array in `feature_names_in_` order, through the raw booster:
        the same values as `predict_proba`, without its DataFrame checks and copies (population scoring)."""
        return self._calibrate(self.booster_.booster_.predict(values, **self._predict_kwargs()))

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibration == "isotonic":
            return self.calibrator_.predict(raw)
        return self.calibrator_.predict_proba(logit(raw)[:, None])[:, 1]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """LightGBM's own per-feature contributions (log-odds) for each row; last column is the bias."""
        out = self.booster_.predict(X[self.feature_names_in_], pred_contrib=True, **self._predict_kwargs())
        return pd.DataFrame(out, columns=[*self.feature_names_in_, "_bias"], index=X.index)

    def contributions_array(self, values: np.ndarray) -> np.ndarray:
        """The same from a float array in `feature_names_in_` order, through the raw booster (fast)."""
        return self.booster_.booster_.predict(values, pred_contrib=True, **self._predict_kwargs())

    def importance(self) -> pd.Series:
        gain = self.booster_.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)


class LogisticBaseline(ClassifierMixin, BaseEstimator):
    """Median imputation + standardisation + logistic regression."""

    def __init__(self, C: float = 1.0, seed: int = 1):
        self.C = C
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "LogisticBaseline":
        self.pipeline_ = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=3000, random_state=self.seed),
        )
        self.pipeline_.fit(X, y, logisticregression__sample_weight=sample_weight)
        self.feature_names_in_ = np.asarray(X.columns)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(X[self.feature_names_in_])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
