"""The loader's shrink guard: a load that would shrink the population, or any source, sharply against the
current warehouse is refused unless the operator says the fall is real (`phm data load --allow-shrink`), so an
empty, header-only or truncated extract can never replace a good warehouse. A load with no patient at all is
refused always."""

from __future__ import annotations

from pathlib import Path

import duckdb

from features.sources.contracts import CONTRACTS
from phm.core.settings import ShrinkPolicy


class LoadRefused(ValueError):
    """The load was checked and refused; the current warehouse was left as it was."""


def current_rows(warehouse: Path) -> dict[str, int]:
    """Rows loaded per source in the current warehouse (its manifest; table counts for older warehouses)."""
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise LoadRefused(
            f"{warehouse}: the current warehouse cannot be read to compare this load with "
            f"({str(exc).splitlines()[0]}); pass --allow-shrink to replace it anyway"
        ) from exc
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "load_manifest" in present:
            return dict(con.execute("SELECT source_table, rows_loaded FROM load_manifest").fetchall())
        return {
            c.name: con.execute(f'SELECT count(*) FROM "{c.name}"').fetchone()[0]
            for c in CONTRACTS
            if c.name in present
        }
    finally:
        con.close()


def shrinkage(before: dict[str, int], after: dict[str, int], policy: ShrinkPolicy) -> list[str]:
    """Each source whose loaded rows fell by more than the policy allows, in words."""
    out = []
    for table, old in before.items():
        new = after.get(table, 0)
        limit = policy.population if table == "patients" else policy.source
        if old and new < old * (1 - limit):
            out.append(
                f"{'patients (the population)' if table == 'patients' else table} {old:,} -> {new:,} rows "
                f"({(new - old) / old:+.0%}, limit -{limit:.0%})"
            )
    return out


def check_load(
    warehouse: Path,
    loaded: dict[str, int],
    read: dict[str, tuple[str | None, int]],
    policy: ShrinkPolicy,
    allow_shrink: bool,
    rejected: dict[str, int] | None = None,
) -> list[str]:
    """Refuse (LoadRefused) a load with no patient, or one that shrinks the current warehouse beyond the policy;
    return the shrinkage allowed by `allow_shrink` (empty when none). `rejected`: the patients rows quarantined
    by rule, named in the refusal so that the cause (every NHS number invalid, every date unreadable) is seen."""
    if not loaded.get("patients"):
        file, rows = read.get("patients", (None, 0))
        why = ", ".join(f"{rule} {n:,}" for rule, n in sorted((rejected or {}).items(), key=lambda r: -r[1]))
        raise LoadRefused(
            f"{file or 'patients'}: no patient could be loaded ({rows:,} row(s) read): an empty, "
            "header-only or unusable extract"
            + (f" (rows quarantined by rule: {why})" if why else "")
            + ". The warehouse was not changed"
        )
    if not warehouse.exists():
        return []
    shrunk = shrinkage(current_rows(warehouse), loaded, policy)
    if shrunk and not allow_shrink:
        raise LoadRefused(
            "this load would shrink the warehouse sharply: " + "; ".join(shrunk) + ". The warehouse "
            "was not changed. Check the extracts (empty, header-only or truncated files?); if the fall "
            "is real, load again with --allow-shrink (limits: setting load_shrink)"
        )
    return shrunk
