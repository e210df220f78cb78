"""What a load reports: rows read, loaded and quarantined (by rule) per table, linkage, coverage, and any
shrinkage the operator allowed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableReport:
    table: str
    file: str | None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_unlinked: int = 0
    rows_opted_out: int = 0  # rows of people with a type 1 objection, removed (counted here only)
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    linkage_rate: float | None = None
    missing_optional_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    date_range: tuple[str, str] | None = None
    sha256: str | None = None


@dataclass
class LoadReport:
    source: str
    warehouse: str
    as_of: str
    synthetic: bool
    demo_key: bool
    tables: dict[str, TableReport]
    ethnicity_known_share: float
    imd_linked_share: float
    truth_tables: list[str]
    source_format: str = "phm"
    source_notes: list[str] = field(default_factory=list)
    mapping_rejected: dict[str, int] = field(default_factory=dict)
    shrink_allowed: list[str] = field(default_factory=list)  # falls the operator accepted (--allow-shrink)
    opt_outs: dict | None = None  # the opt_outs extract: rows, people listed, malformed rows, people removed

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "tables"}
        out["tables"] = {k: v.__dict__ for k, v in self.tables.items()}
        return out
