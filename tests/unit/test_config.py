"""Strict configuration: every typed configuration refuses unknown keys (a misspelling is an error naming the key and
the nearest known one), every configuration document carries `schema_version` (another version is a clear
error), and the JSON Schemas exported under `schemas/` are the code's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from phm.cli.config import documents, schema_texts, stale_schemas
from phm.core.config import explain
from phm.core.settings import SettingsError, get_settings

ROOT = Path(__file__).resolve().parents[2]
# Feature definitions (features/definitions/model.py) are code reviewed with the catalogue, not files users write;
# making them strict is left to that module's owner (issue 19's split: only `definition_hash` was changed here).
NOT_YET_STRICT = {"FeatureSet", "EventFeature", "DerivedFeature", "AttributeFeature", "Filter"}


def _nested(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for f in model.model_fields.values():
        stack = [f.annotation]
        while stack:
            a = stack.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                _nested(a, seen)
            stack.extend(getattr(a, "__args__", ()) or ())


def test_every_configuration_and_every_part_of_one_refuses_unknown_keys() -> None:
    found: set = set()
    for cls in documents().values():
        _nested(cls, found)
    assert len(found) >= 20  # the documents and their parts (tuning grid, boosting, defects, cohort, policy, ...)
    lenient = sorted(c.__name__ for c in found if c.model_config.get("extra") != "forbid")
    assert set(lenient) <= NOT_YET_STRICT, lenient
    for name, cls in documents().items():
        assert cls.model_fields["schema_version"].default == 1, name


@pytest.mark.parametrize(
    ("document", "data", "named"),
    [
        ("audit_config", {"top_shares": 0.1}, "top_shares: unknown key (did you mean top_share?)"),
        (
            "train_config",
            {
                "model_name": "emergency_admission",
                "train_dates": ["2023-04-01"],
                "validation_dates": ["2024-04-01"],
                "seeed": 3,
            },
            "seeed: unknown key (did you mean seed?)",
        ),
        (
            "train_config",
            {
                "model_name": "emergency_admission",
                "train_dates": ["2023-04-01"],
                "validation_dates": ["2024-04-01"],
                "grid": {"num_leave": [7]},
            },
            "grid.num_leave: unknown key (did you mean grid.num_leaves?)",
        ),
        (
            "generator_config",
            {"persons": 500, "defects": {"malformed_shar": 0.1}},
            "defects.malformed_shar: unknown key (did you mean defects.malformed_share?)",
        ),
        ("forecast_config", {"orgins": 3}, "orgins: unknown key (did you mean origins?)"),
        ("monitor_config", {"psi_alrt": 0.2}, "psi_alrt: unknown key (did you mean psi_alert?)"),
        (
            "scenario",
            {"site": "ICS", "metric": "ga_beds_occupied", "prevented": 0.2},
            "prevented: unknown key (did you mean prevented_share?)",
        ),
    ],
)
def test_a_misspelled_key_is_an_error_naming_it(document: str, data: dict, named: str) -> None:
    cls = documents()[document]
    with pytest.raises(ValidationError) as caught:
        cls.model_validate(data)
    assert named in explain(caught.value, cls)


def test_another_schema_version_is_a_clear_error() -> None:
    cls = documents()["audit_config"]
    with pytest.raises(ValidationError) as caught:
        cls.model_validate({"schema_version": 0})
    text = explain(caught.value, cls)
    assert text.startswith("schema_version: this configuration was written for an older version of its schema (0)")
    assert "reads schema_version 1" in text
    assert cls.model_validate({"schema_version": 1}).top_share == 0.05  # the current version, and no version, read


def test_settings_refuse_an_unknown_key_in_phm_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    home.mkdir()
    monkeypatch.setenv("PHM_HOME", str(home))
    (home / "phm.toml").write_text('engin = "spark"\n')
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert str(home / "phm.toml") in str(caught.value) and "engin: unknown key (did you mean engine?)" in str(
        caught.value
    )
    (home / "phm.toml").write_text("[policy.emergency_admission]\ntop_shares = 0.1\n")
    with pytest.raises(
        SettingsError,
        match=r"policy\.emergency_admission\.top_shares: unknown key \(did you mean "
        r"policy\.emergency_admission\.top_share\?\)",
    ):
        get_settings()
    (home / "phm.toml").write_text("schema_version = 2\n")
    with pytest.raises(SettingsError, match="written for a newer version of its schema"):
        get_settings()
    # unknown PHM_* environment variables are not settings (PHM_SERVICE_WORKERS, PHM_CONFIG): ignored
    (home / "phm.toml").write_text('engine = "spark"\n')
    monkeypatch.setenv("PHM_SERVICE_WORKERS", "3")
    assert get_settings().engine == "spark"


def test_band_cut_offs_must_grow() -> None:
    from phm.core.settings import OperatingPolicy

    with pytest.raises(ValidationError, match="must grow from the highest band to the lowest"):
        OperatingPolicy(bands={"very high": 0.02, "high": 0.01, "raised": 0.05})
    with pytest.raises(ValidationError, match="between 0 and 1"):
        OperatingPolicy(bands={"very high": 0.0, "high": 0.01, "raised": 0.05})


def test_exported_json_schemas_are_current() -> None:
    folder = ROOT / "schemas"
    assert stale_schemas(folder) == [], "regenerate with `phm config schemas --out schemas`"
    assert sorted(p.name for p in folder.glob("*.schema.json")) == sorted(schema_texts())
    settings = json.loads((folder / "settings.schema.json").read_text())
    assert settings["additionalProperties"] is False and "policy" in settings["properties"]
    audit = json.loads((folder / "audit_config.schema.json").read_text())
    assert audit["additionalProperties"] is False and audit["properties"]["schema_version"]["default"] == 1
