"""A copy of the product's code with one edit, as a new release would ship it: run the real `phm` command or the
real service on it by putting the copy first on PYTHONPATH (the editable install's finder comes after it)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("phm", "features", "models", "evaluation", "training", "serving")

# one predictor of the worklist model, as the feature catalogue declares it, and the family module declaring it
CATALOGUE = "features/definitions/catalogue/utilisation.py"
AE_FEATURE = (
    '            name="ae_attendances_12m",\n'
    '            family="A&E",\n'
    '            source="ae_attendances",\n'
    '            date="arrival_time",\n'
    "            window_days=365,\n"
    '            description="A&E attendances in the year before the index date",\n'
)


def edited_copy(root: Path, path: str, old: str, new: str) -> Path:
    """Copy the packages under `root` and replace `old` (found exactly once) by `new` in `path`; returns `root`."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / path
    text = target.read_text()
    assert text.count(old) == 1, f"{path} no longer holds the text this test edits"
    target.write_text(text.replace(old, new))
    return root


def changed_feature_window(root: Path) -> Path:
    """The code with the A&E attendance predictor's window shortened from 365 to 180 days (computation changes)."""
    return edited_copy(root, CATALOGUE, AE_FEATURE, AE_FEATURE.replace("window_days=365", "window_days=180"))


def reworded_feature(root: Path) -> Path:
    """The code with the A&E attendance predictor's description reworded (words only)."""
    return edited_copy(
        root,
        CATALOGUE,
        AE_FEATURE,
        AE_FEATURE.replace("A&E attendances in the year before the index date", "Visits to A&E in the last 12 months"),
    )
