"""SQL dialects: the only engine-specific code in feature building."""

from __future__ import annotations

from datetime import date

from phm.core.sql import literal


class Dialect:
    """Portable SQL pieces; subclasses override what differs between engines."""

    name = "ansi"

    def date_literal(self, d: date) -> str:
        return f"DATE {literal(d.isoformat())}"

    def as_date(self, expr: str) -> str:
        return f"CAST({expr} AS DATE)"

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def add_days(self, expr: str, days: int) -> str:
        raise NotImplementedError

    def add_months(self, expr: str, months: int) -> str:
        raise NotImplementedError

    def days_between(self, start: str, end: str) -> str:
        """Whole days from start to end (end - start)."""
        raise NotImplementedError

    def arg_max(self, value: str, order: str) -> str:
        raise NotImplementedError

    def starts_with(self, expr: str, prefix: str) -> str:
        return f"substr({expr}, 1, {len(prefix)}) = {literal(prefix)}"

    def years_between(self, birth: str, day: str) -> str:
        """Completed years from a birth date to a day."""
        return (
            f"(year({day}) - year({birth}) - CASE WHEN month({day}) < month({birth}) OR "
            f"(month({day}) = month({birth}) AND day({day}) < day({birth})) THEN 1 ELSE 0 END)"
        )


class DuckDBDialect(Dialect):
    name = "duckdb"

    def add_days(self, expr: str, days: int) -> str:
        sign = "+" if days >= 0 else "-"
        return f"CAST({expr} {sign} INTERVAL {abs(days)} DAY AS DATE)"

    def add_months(self, expr: str, months: int) -> str:
        sign = "+" if months >= 0 else "-"
        return f"CAST({expr} {sign} INTERVAL {abs(months)} MONTH AS DATE)"

    def days_between(self, start: str, end: str) -> str:
        return f"date_diff('day', {self.as_date(start)}, {self.as_date(end)})"

    def arg_max(self, value: str, order: str) -> str:
        return f"arg_max({value}, {order})"


class SparkDialect(Dialect):
    name = "spark"

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS STRING)"

    def add_days(self, expr: str, days: int) -> str:
        return f"date_add({self.as_date(expr)}, {days})"

    def add_months(self, expr: str, months: int) -> str:
        return f"add_months({self.as_date(expr)}, {months})"

    def days_between(self, start: str, end: str) -> str:
        return f"datediff({self.as_date(end)}, {self.as_date(start)})"

    def arg_max(self, value: str, order: str) -> str:
        return f"max_by({value}, {order})"


DIALECTS: dict[str, Dialect] = {"duckdb": DuckDBDialect(), "spark": SparkDialect()}
