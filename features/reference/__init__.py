"""The reference engine: every feature definition evaluated in plain pandas, independent of the SQL compiler,
so engine parity is checked against a second implementation (see `engine.evaluate_features`)."""

from features.reference.engine import evaluate_features, read_sources, reference_features, source_tables

__all__ = ["evaluate_features", "read_sources", "reference_features", "source_tables"]
