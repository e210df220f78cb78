"""Configuration files given to `phm` (`phm config check`, `--config` of train, forecast, audit, monitor) that are
not configuration files: a device, a named pipe, a file nested thousands deep. Each is one error naming the file,
exit 2, at once (found by the configuration red-team: /dev/zero exhausted memory, a pipe hung for ever waiting for
a writer, deep nesting was a RecursionError traceback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.cli import run


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    return {"device": Path("/dev/zero"), "pipe": pipe, "deep": deep}


@pytest.mark.parametrize("what", ["device", "pipe", "deep"])
def test_phm_config_check_refuses_what_is_not_a_configuration_file(hostile, tmp_path: Path, what: str) -> None:
    out = run("config", "check", str(hostile[what]), "--kind", "train_config", home=tmp_path / "home", timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert str(hostile[what]) in out.stderr, out.stderr


@pytest.mark.parametrize("what", ["device", "pipe"])
def test_a_command_s_config_option_refuses_a_device_or_a_pipe(hostile, tmp_path: Path, what: str) -> None:
    out = run("forecast", "fit", "--config", str(hostile[what]), home=tmp_path / "home", timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"{hostile[what]}: the configuration file is not a regular file" in out.stderr, out.stderr
