"""Metrics, calibration, fairness audit and reports (built in later issues)."""
