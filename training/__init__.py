"""Training jobs tracked in MLflow (built in later issues)."""
