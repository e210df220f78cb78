"""Typed settings: PHM_HOME holds all state; env vars beat the TOML file; secrets stay masked."""

from __future__ import annotations

import json
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
        with pytest.raises(SettingsError, match="does not exist|not a regular file") as refused:
            get_settings()
        assert str(named) in str(refused.value)
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


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://mlflow:pw-Secret1@db.example/mlflow",
        "https://user:pw-Secret1@mlflow.example:5000/",
        "postgresql://mlflow:pw@Secret1@db.example/mlflow",
        "https://mlflow.example/?token=pw-Secret1&workspace=ics",
    ],
)
def test_config_show_hides_a_password_in_the_tracking_address(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the configuration red-team: `phm config show` printed PHM_TRACKING_URI's password."""
    monkeypatch.setenv("PHM_TRACKING_URI", uri)
    shown = get_settings().describe()["mlflow_tracking_uri"]
    assert "Secret1" not in shown and "***" in shown and "example" in shown


def test_config_show_keeps_plain_addresses_and_hides_spark_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("PHM_ENGINE", "spark")
    monkeypatch.setenv(
        "PHM_SPARK_CONF", '{"spark.hadoop.fs.s3a.secret.key": "pw-Secret1", "spark.driver.memory": "8g"}'
    )
    shown = get_settings().describe()
    assert shown["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'h' / 'mlflow' / 'mlflow.db'}"
    assert shown["spark_conf"] == {"spark.hadoop.fs.s3a.secret.key": "***", "spark.driver.memory": "8g"}


@pytest.mark.parametrize("entry", ["*", "proxy.internal", "10.0.0.0/33", "10.0.0.1/24", "10.0.0.1:8080"])
def test_a_trusted_proxy_must_be_an_address_or_network(entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server never matches anything else (its proxy handling silently keeps it as a name) and believes every
    client's X-Forwarded-For on "*" (found by the configuration red-team: all were accepted)."""
    monkeypatch.setenv("PHM_SERVICE", json.dumps({"trusted_proxies": ["10.1.2.3", entry]}))
    with pytest.raises(ValueError, match=r"service\.trusted_proxies: .* is not an IP address or network"):
        get_settings()
    monkeypatch.setenv("PHM_SERVICE", json.dumps({"trusted_proxies": ["10.1.2.3", "10.0.0.0/24", "::1", "0.0.0.0/0"]}))
    assert get_settings().service.trusted_proxies[1] == "10.0.0.0/24"


def test_an_unknown_log_level_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the configuration red-team: PHM_LOG_LEVEL=VERBOSE was accepted, then every command (and the service)
    failed with a ValueError traceback from logging."""
    monkeypatch.setenv("PHM_LOG_LEVEL", "VERBOSE")
    with pytest.raises(SettingsError, match="log_level: Input should be 'DEBUG', 'INFO'"):
        get_settings()
    monkeypatch.setenv("PHM_LOG_LEVEL", "warning")
    assert get_settings().log_level == "WARNING"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///file:ops?mode=memory&uri=true", "in-memory"),
        ("sqlite:///operational/phm.db", "absolute path"),
    ],
)
def test_a_sqlite_database_that_would_not_be_shared_or_kept_is_refused(
    address: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the configuration red-team: `phm db upgrade` reported success on an in-memory database (each process
    had its own, so sessions and contact outcomes were lost when it ended), and a relative path meant one database
    per starting folder."""
    monkeypatch.setenv("PHM_DATABASE_URL", address)
    with pytest.raises(SettingsError, match=f"database_url: .*{why}"):
        get_settings()
    monkeypatch.setenv("PHM_DATABASE_URL", "sqlite:////srv/phm/operational.db")
    assert get_settings().database_url is not None
