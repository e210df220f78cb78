"""Estimators: risk classifiers and demand forecasters (built in later issues)."""

import phm.core.threads  # noqa: F401  (OMP_WAIT_POLICY before LightGBM loads, also in Spark executors)
