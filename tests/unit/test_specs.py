"""Each model is described once, in its specification module: nothing else names a model, and every
specification is complete and coherent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models import specs

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, specs.NAMES)) + r")(?![A-Za-z0-9_])")


def test_models_are_named_only_in_their_specifications() -> None:
    found = []
    for package in ("phm", "features", "models", "evaluation", "training", "serving"):
        for path in (ROOT / package).rglob("*"):
            if path.suffix not in (".py", ".html", ".j2") or path.is_relative_to(ROOT / "models" / "specs"):
                continue
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if NAME.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, found


@pytest.mark.parametrize("name", specs.NAMES)
def test_a_specification_is_complete(name: str) -> None:
    spec = specs.get(name)
    assert spec.name == name == spec.features.name and spec.cli_name == name.replace("_", "-")
    assert spec.label_column.startswith("label_") and spec.horizon_days > 0
    assert max(spec.training.train_dates) < min(spec.training.validation_dates)  # temporal validation
    assert set(spec.features.carried) <= {f.name for f in spec.features.features}
    cfg = spec.build_config(list(spec.training.validation_dates[:1]))
    assert cfg.features is spec.features and cfg.label == spec.label and cfg.cohort == spec.cohort
    if spec.daily.kind == "worklist":
        shares = [share for _, share in spec.daily.bands]
        assert shares == sorted(shares) and 0 < shares[-1] < 1
    else:
        assert spec.daily.column


def test_one_worklist_model_and_the_rest_beside_it() -> None:
    assert [s.daily.kind for s in specs.SPECS.values()].count("worklist") == 1
    assert {s.name for s in specs.columns()} | {specs.worklist().name} == set(specs.NAMES)
    assert len({s.daily.column for s in specs.columns()}) == len(specs.columns())


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(specs.UnknownModelError, match="choose from " + ", ".join(specs.NAMES)):
        specs.get("no_such_model")
