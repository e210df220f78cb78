"""Compile a feature set to one SQL query over a cohort of (person_id, _idx) rows.

Event features are grouped by source table: one aggregate subquery per source, joined to the
cohort on person and index date, filtered to events strictly before the index date. Derived
features are layered on top in dependency order. All dialect differences go through `Dialect`;
aggregates whose result type differs between engines (sums, day counts) are cast to one type, so
every engine writes the same schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date

from features.definitions.model import AttributeFeature, DerivedFeature, EventFeature, FeatureSet, Filter
from features.engine.dialect import Dialect
from features.engine.expressions import to_sql
from phm.core.sql import literal

TableRef = Callable[[str], str]


def sql_literal(value: str | int | float) -> str:
    return literal(value) if isinstance(value, str) else repr(value)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _filter_sql(f: Filter, dialect: Dialect) -> str:
    col = f.column
    if f.op == "in":
        return f"{col} IN ({', '.join(sql_literal(v) for v in f.values)})"
    if f.op == "prefix":
        return "(" + " OR ".join(dialect.starts_with(col, str(v)) for v in f.values) + ")"
    if f.op == "between":
        lo, hi = f.values
        return f"{col} BETWEEN {sql_literal(lo)} AND {sql_literal(hi)}"
    return f"{col} = {sql_literal(f.values[0])}"


class FeatureCompiler:
    """Turns definitions into SQL for one dialect. `table` maps a source name to its SQL reference.

    With a single index date the date is inlined as a literal, so each source is filtered and
    aggregated per person on its own and only the small result is joined to the cohort.
    """

    def __init__(self, dialect: Dialect, table: TableRef = lambda name: name, index_date: date | None = None):
        self.d = dialect
        self.table = table
        self.idx = dialect.date_literal(index_date) if index_date else "c._idx"

    # ---- event features -----------------------------------------------------------------------
    def conditions(self, f: EventFeature) -> tuple[list[str], str, str]:
        """The conditions an event must meet to count for `f` (and bed-day interval bounds)."""
        d, idx = self.d, self.idx
        day = d.as_date(f.date)
        conds = [_filter_sql(w, d) for w in f.where]
        end = start = ""
        if f.aggregation == "bed_days":
            end = f"LEAST(COALESCE({d.as_date(f.end)}, {idx}), {idx})"
            start = day if f.window_days is None else f"GREATEST({day}, {d.add_days(idx, -f.window_days)})"
            conds.append(f"{end} > {start}")
        elif f.window_days is not None:
            conds.append(f"{day} >= {d.add_days(idx, -f.window_days)}")
        if f.aggregation == "active_at_index":
            conds.append(f"({f.end} IS NULL OR {d.as_date(f.end)} >= {idx})")
        return conds, end, start

    def aggregate(self, f: EventFeature) -> str:
        """The aggregate expression of one event feature (inside the per-source subquery)."""
        d = self.d
        day = d.as_date(f.date)
        conds, end, start = self.conditions(f)
        cond = " AND ".join(conds) if conds else "TRUE"
        v = None if f.value is None else to_sql(f.value, d)

        def when(expr: str) -> str:
            return f"CASE WHEN {cond} THEN {expr} END"

        match f.aggregation:
            case "count":
                return f"COUNT({when('1')})"
            case "exists" | "active_at_index":
                return f"MAX(CASE WHEN {cond} THEN 1 ELSE 0 END)"
            case "count_distinct":
                return f"COUNT(DISTINCT {when(v)})"
            case "distinct_days":
                return f"COUNT(DISTINCT {when(day)})"
            case "sum":
                return f"CAST(SUM({when(v)}) AS DOUBLE)"
            case "mean":
                return f"AVG({when(f'CAST({v} AS DOUBLE)')})"
            case "std":
                return f"STDDEV_SAMP({when(f'CAST({v} AS DOUBLE)')})"
            case "min":
                return f"MIN({when(v)})"
            case "max":
                return f"MAX({when(v)})"
            case "slope":
                x = when(f"CAST({d.days_between(self.idx, day)} AS DOUBLE)")
                y = when(f"CAST({v} AS DOUBLE)")
                # undefined (NULL on every engine) unless two readings fall on different days
                return f"CASE WHEN REGR_SXX({y}, {x}) > 0 THEN REGR_SLOPE({y}, {x}) END"
            case "last":
                return d.arg_max(when(v), f"CASE WHEN {cond} AND {v} IS NOT NULL THEN {day} END")
            case "days_since_last":
                return f"CAST({d.days_between(f'MAX({when(day)})', self.idx)} AS BIGINT)"
            case "bed_days":
                return f"CAST(SUM({when(d.days_between(start, end))}) AS BIGINT)"
        raise ValueError(f"unknown aggregation {f.aggregation}")

    def source_query(self, source: str, date_column: str, feats: list[EventFeature]) -> str:
        cols = ",\n       ".join(f"{self.aggregate(f)} AS {f.name}" for f in feats)
        # rows no feature can use are dropped before the join and aggregation
        any_cond = [" AND ".join(self.conditions(f)[0]) or "TRUE" for f in feats]
        prefilter = "" if "TRUE" in any_cond else "\n  AND (" + "\n    OR ".join(f"({c})" for c in any_cond) + ")"
        before = f"{self.d.as_date('e.' + date_column)} < {self.idx}"
        if self.idx != "c._idx":
            return (
                f"SELECT e.person_id, {self.idx} AS _idx,\n       {cols}\n"
                f"FROM {self.table(source)} e\nWHERE {before}{prefilter}\nGROUP BY e.person_id"
            )
        return (
            f"SELECT c.person_id, c._idx,\n       {cols}\n"
            f"FROM cohort c JOIN {self.table(source)} e ON e.person_id = c.person_id\n"
            f"WHERE {before}{prefilter}\n"
            f"GROUP BY c.person_id, c._idx"
        )

    # ---- attributes ---------------------------------------------------------------------------
    def attributes(self, attrs: list[AttributeFeature]) -> str:
        d = self.d
        birth = "make_date(CAST(p.year_of_birth AS INTEGER), CAST(p.month_of_birth AS INTEGER), 1)"
        exprs = {
            "age": f"CAST({d.years_between(birth, 'c._idx')} AS BIGINT)",
            "sex": "p.sex",
            "ethnic_category": "COALESCE(p.ethnic_category, '99')",
            "imd_decile": "i.imd_decile",
            "practice_code": "p.practice_code",
            "registered_days": f"CAST({d.days_between('p.registration_start', 'c._idx')} AS BIGINT)",
        }
        cols = "".join(f",\n       {exprs[a.attribute]} AS {a.name}" for a in attrs)
        return (
            f"SELECT c.person_id, c._idx{cols}\n"
            f"FROM cohort c JOIN {self.table('patients')} p ON p.person_id = c.person_id\n"
            f"LEFT JOIN {self.table('imd')} i ON i.lsoa11 = p.lsoa11"
        )

    # ---- whole set ------------------------------------------------------------------------------
    def compile(self, fs: FeatureSet) -> str:
        attrs = [f for f in fs.features if isinstance(f, AttributeFeature)]
        events = [f for f in fs.features if isinstance(f, EventFeature)]
        derived = [f for f in fs.features if isinstance(f, DerivedFeature)]
        groups: dict[tuple[str, str], list[EventFeature]] = defaultdict(list)
        for f in events:
            groups[(f.source, f.date)].append(f)
        ctes = [f"base AS (\n{self.attributes(attrs)}\n)"]
        joins, selects = [], []
        for i, ((source, date_col), feats) in enumerate(groups.items()):
            ctes.append(f"s{i} AS (\n{self.source_query(source, date_col, feats)}\n)")
            joins.append(f"LEFT JOIN s{i} ON s{i}.person_id = base.person_id AND s{i}._idx = base._idx")
            for f in feats:
                selects.append(
                    f"s{i}.{f.name}"
                    if f.default is None
                    else f"COALESCE(s{i}.{f.name}, {sql_literal(_number(f.default))}) AS {f.name}"
                )
        attr_cols = "".join(f", base.{a.name}" for a in attrs)
        sql = (
            f"WITH {', '.join(ctes)}\nSELECT base.person_id, base._idx{attr_cols}"
            + "".join(f",\n       {s}" for s in selects)
            + "\nFROM base\n"
            + "\n".join(joins)
        )
        # derived features, one layer per dependency depth
        done = {a.name for a in attrs} | {f.name for f in events}
        remaining = list(derived)
        while remaining:
            layer = [f for f in remaining if all(dep in done for dep in f.depends_on)]
            if not layer:
                raise ValueError(f"unresolvable derived features: {[f.name for f in remaining]}")
            sql = (
                "SELECT *"
                + "".join(f", {to_sql(f.expression, self.d)} AS {f.name}" for f in layer)
                + f"\nFROM (\n{sql}\n) t"
            )
            done |= {f.name for f in layer}
            remaining = [f for f in remaining if f not in layer]
        order = ", ".join(f.name for f in fs.features)
        return f"SELECT person_id, _idx AS index_date, {order}\nFROM (\n{sql}\n) f"
