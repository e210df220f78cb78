"""The settings file is read strictly: a named file that is missing, a folder, a broken link, a device, too large,
not UTF-8 or not TOML is one error naming it (never silently ignored, never a stack trace); a table setting in a
PHM_* variable that is not JSON is one error too. Found by the configuration red-team: all of these either ran on
defaults (another database, other disclosure rules) or printed a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phm.core.settings import SettingsError, get_settings
from phm.core.config import MAX_BYTES


def _broken(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    link = tmp_path / "link.toml"
    link.symlink_to(tmp_path / "gone.toml")
    huge = tmp_path / "huge.toml"
    huge.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe demo = true\n")
    (tmp_path / "bad.toml").write_text('database_url = "postgresql+psycopg://u:pw-in-file@h/db\n')
    (tmp_path / "twice.toml").write_text("demo = true\ndemo = false\n")
    return {
        "missing": tmp_path / "missing.toml",
        "folder": folder,
        "broken link": link,
        "device": Path(os.devnull),
        "huge": huge,
        "not UTF-8": tmp_path / "binary.toml",
        "not TOML": tmp_path / "bad.toml",
        "a key twice": tmp_path / "twice.toml",
    }


def test_a_named_settings_file_that_cannot_be_used_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "home"))
    for what, path in _broken(tmp_path).items():
        monkeypatch.setenv("PHM_CONFIG", str(path))
        with pytest.raises(SettingsError) as caught:
            get_settings()
        assert str(path) in str(caught.value), what
        assert "pw-in-file" not in str(caught.value)


def test_the_default_file_may_be_absent_but_not_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PHM_HOME", str(home))
    monkeypatch.delenv("PHM_CONFIG", raising=False)
    assert get_settings().demo is False
    (home / "phm.toml").mkdir()
    with pytest.raises(SettingsError, match="phm.toml: the settings file is not a regular file"):
        get_settings()
