"""Compile feature definitions to SQL and run them on an engine (DuckDB here; Spark later).

Design note: definitions compile to SQL through a small `Dialect` (date arithmetic, arg-max,
literals); everything engine-specific lives in `dialect.py`, so a second engine is a new dialect
plus a runner, not a rewrite. We generate SQL ourselves rather than use Ibis (which needs
pyspark<4.1 and sqlglot<30.18 here) to avoid pinning the stack.
"""
