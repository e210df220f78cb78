"""Alembic migrations of the operational database (`phm db upgrade`; the service upgrades at start)."""
