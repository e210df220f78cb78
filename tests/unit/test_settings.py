"""Typed settings: PHM_HOME holds all state; env vars beat the TOML file; secrets stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from phm.core.settings import SettingsError, get_settings


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


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PHM_CONFIG names the file on purpose: a typo in its path must not silently run on defaults
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "h"))
    for named in (tmp_path / "etc" / "phm.tmol", tmp_path):
        monkeypatch.setenv("PHM_CONFIG", str(named))
        with pytest.raises(SettingsError, match=f"PHM_CONFIG names {named}, which is not a file"):
            get_settings()
    monkeypatch.delenv("PHM_CONFIG")
    assert get_settings().home == tmp_path / "h"  # the default $PHM_HOME/phm.toml stays optional


def test_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_PSEUDONYM_KEY", "super-secret-value-123456")
    s = get_settings()
    assert "super-secret" not in repr(s) and "super-secret" not in str(s.describe())
    assert s.describe()["pseudonym_key"] == "set"


def test_config_show_holds_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # `phm config show` is "the resolved settings": the access log's fsync and the load's shrink guard were missing
    monkeypatch.setenv("PHM_LEDGER_FSYNC", "true")
    monkeypatch.setenv("PHM_LOAD_SHRINK", '{"population": 0.2, "source": 0.3}')
    shown = get_settings().describe()
    assert shown["ledger_fsync"] is True
    assert shown["load_shrink"] == {"population": 0.2, "source": 0.3}


def test_bad_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_DEMO", "perhaps")
    with pytest.raises(ValueError, match="demo"):
        get_settings()


def test_state_folders_and_files_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    monkeypatch.setenv("PHM_HOME", str(tmp_path / "new" / "state"))
    old = os.umask(0o022)
    try:
        s = get_settings()  # every entry point reads settings first: from here on, files are owner-only
        for folder in (s.home, s.home.parent, s.reports_dir, s.warehouse_path.parent, s.logs_dir):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        (s.reports_dir / "x.json").write_text("{}")
        assert stat.S_IMODE((s.reports_dir / "x.json").stat().st_mode) == 0o600
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        monkeypatch.setenv("PHM_HOME", str(loose))
        os.chmod(loose, 0o755)
        (loose / "reports").mkdir()
        os.chmod(loose / "reports", 0o755)
        assert stat.S_IMODE(get_settings().reports_dir.stat().st_mode) == 0o700  # PHM's own folders tightened
        assert stat.S_IMODE(loose.stat().st_mode) == 0o755  # a home the user made is left as it is
    finally:
        os.umask(old)


def test_shrink_policy_from_the_environment_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    from phm.core.settings import SettingsError

    assert get_settings().load_shrink.population == 0.10 and get_settings().load_shrink.source == 0.25
    monkeypatch.setenv("PHM_LOAD_SHRINK", '{"population": 0.3}')
    assert get_settings().load_shrink.population == 0.3
    monkeypatch.setenv("PHM_LOAD_SHRINK", '{"populaton": 0.3}')
    with pytest.raises(SettingsError, match="populaton: unknown key"):
        get_settings()
    monkeypatch.setenv("PHM_LOAD_SHRINK", '{"population": 2}')
    with pytest.raises(SettingsError, match="population"):
        get_settings()
