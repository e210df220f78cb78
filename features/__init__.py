"""Linked health and care data in, person-level predictors out (the lowest layer)."""
