"""The settings file (`PHM_CONFIG`, else `$PHM_HOME/phm.toml`), read strictly.

A settings file that is named but missing, a folder, a broken link or a device, that cannot be read, is larger than
`MAX_BYTES`, is not UTF-8 or is not valid TOML is an error naming the file: never ignored (the installation would
silently run on defaults: another database, other disclosure rules) and never a stack trace. Only the default
file may be absent. Messages never quote the file's text (it may hold a password or a key).

This module is part of the foundation layer: it imports nothing else from the project.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, InitSettingsSource

#: A settings file is a few kilobytes; anything this large is not one (and is not read whole into memory).
MAX_BYTES = 1_000_000


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
        st = os.stat(path)
    except OSError as exc:  # a broken link, a loop of links, a folder we may not enter
        raise SettingsFileError(f"{path}: the settings file cannot be opened ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SettingsFileError(f"{path}: the settings file is not a regular file (a folder or a device?)")
    if st.st_size > MAX_BYTES:
        raise SettingsFileError(f"{path}: the settings file is {st.st_size:,} bytes, more than {MAX_BYTES:,}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SettingsFileError(f"{path}: the settings file cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise SettingsFileError(f"{path}: the settings file is more than {MAX_BYTES:,} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsFileError(f"{path}: the settings file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column, not the text
        raise SettingsFileError(f"{path}: not valid TOML ({exc})") from None


class SettingsFileSource(InitSettingsSource):
    """pydantic-settings source of the settings file, read by `read_settings_file`."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, read_settings_file(*config_file()))
