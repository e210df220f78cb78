"""The settings file (`PHM_CONFIG`, else `$PHM_HOME/phm.toml`), read strictly.

A settings file that is named but missing, a folder, a broken link or a device, that cannot be read, is larger than
`phm.core.config.MAX_BYTES`, is not UTF-8 or is not valid TOML is an error naming the file: never ignored (the installation would
silently run on defaults: another database, other disclosure rules) and never a stack trace. Only the default
file may be absent. Messages never quote the file's text (it may hold a password or a key).

This module is part of the foundation layer: it reads the file as every configuration file is read
(`phm.core.config.read_text`) and imports nothing else from the project.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, InitSettingsSource

from phm.core.config import ConfigFileError, read_text


class SettingsFileError(ValueError):
    """The settings file cannot be used; the message names it."""


def default_home() -> Path:
    return Path(os.environ.get("PHM_HOME") or Path.home() / ".phm").expanduser()


def config_file() -> tuple[Path, bool]:
    """The settings file's path, and whether it was named explicitly (`PHM_CONFIG`)."""
    explicit = os.environ.get("PHM_CONFIG")
    return (Path(explicit).expanduser(), True) if explicit else (default_home() / "phm.toml", False)


def read_settings_file(path: Path, explicit: bool) -> dict[str, Any]:
    """The settings in `path` ({} when the default file is absent); a `SettingsFileError` naming it otherwise."""
    if not os.path.lexists(path):
        if explicit:
            raise SettingsFileError(f"{path}: PHM_CONFIG names a settings file that does not exist")
        return {}
    try:
        text = read_text(path, "settings file")
    except ConfigFileError as exc:  # a broken link, a folder, a device, too large, not UTF-8
        raise SettingsFileError(str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column, not the text
        raise SettingsFileError(f"{path}: not valid TOML ({exc})") from None


class SettingsFileSource(InitSettingsSource):
    """pydantic-settings source of the settings file, read by `read_settings_file`."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, read_settings_file(*config_file()))
