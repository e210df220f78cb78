"""Estimators: risk classifiers and demand forecasters (built in later issues)."""
