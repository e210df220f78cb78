"""Other source layouts (Synthea CSV exports, OMOP CDM v5.4 extracts) mapped onto the linked data model.

Each format package (`synthea`, `omop`) turns a source folder into a staged folder of PHM extracts (the layout
`features/sources/contracts.py` declares), plus rows that break the mapping and a note of what was
mapped and how; the ordinary loader then validates, pseudonymises and links the staged folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from features.sources.formats.common import ConversionReport, FormatError

Format = Literal["phm", "synthea", "omop"]
__all__ = ["ConversionReport", "FormatError", "Format", "detect", "convert"]


def _has(src: Path, stem: str) -> bool:
    return any((src / f"{stem}{s}").exists() for s in (".parquet", ".csv", ".csv.gz"))


def detect(src: Path) -> Format:
    """Which layout `src` holds; a clear error when it is none of them."""
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder")
    if _has(src, "practices") and _has(src, "patients"):
        return "phm"
    if (src / "patients.csv").exists() and (src / "encounters.csv").exists():
        return "synthea"
    if _has(src, "person") and _has(src, "visit_occurrence"):
        return "omop"
    raise FormatError(
        f"{src}: not a folder of PHM extracts (practices + patients), a Synthea CSV export (patients.csv + "
        "encounters.csv) or an OMOP CDM extract (person + visit_occurrence, CSV or Parquet)"
    )


def convert(src: Path, fmt: Format, out: Path) -> ConversionReport:
    """Map a Synthea or OMOP folder into a staged folder of PHM extracts at `out`."""
    if fmt == "synthea":
        from features.sources.formats.synthea import convert as run
    elif fmt == "omop":
        from features.sources.formats.omop import convert as run
    else:
        raise FormatError(f"{fmt!r} needs no conversion")
    return run(src, out)
