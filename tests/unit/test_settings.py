"""Typed settings: PHM_HOME holds all state; env vars beat the TOML file; secrets stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from phm.core.settings import get_settings


def test_home_from_environment_and_derived_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "state"))
    s = get_settings()
    assert s.home == tmp_path / "state"
    assert s.warehouse_path.parent.is_dir() and s.warehouse_path.parent.parent == s.home
    assert s.reports_dir.is_dir() and s.logs_dir.is_dir()
    assert s.mlflow_tracking_uri.startswith("sqlite:///") and str(s.home) in s.mlflow_tracking_uri


def test_toml_file_and_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "phm.toml").write_text('log_level = "DEBUG"\ndemo = true\n')
    monkeypatch.setenv("PHM_HOME", str(home))
    s = get_settings()
    assert s.log_level == "DEBUG" and s.demo is True
    monkeypatch.setenv("PHM_LOG_LEVEL", "WARNING")
    assert get_settings().log_level == "WARNING"
    other = tmp_path / "other.toml"
    other.write_text('log_level = "ERROR"\n')
    monkeypatch.delenv("PHM_LOG_LEVEL")
    monkeypatch.setenv("PHM_CONFIG", str(other))
    assert get_settings().log_level == "ERROR"


def test_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_PSEUDONYM_KEY", "super-secret-value-123456")
    s = get_settings()
    assert "super-secret" not in repr(s) and "super-secret" not in str(s.describe())
    assert s.describe()["pseudonym_key"] == "set"


def test_bad_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_DEMO", "perhaps")
    with pytest.raises(ValueError, match="demo"):
        get_settings()
