"""`phm` with a settings file it cannot use, or a table setting in a PHM_* variable that is not JSON: one line
naming the file or the setting, exit 2, never a traceback and never the file's text (found by the configuration
red-team: these were tracebacks; a missing PHM_CONFIG ran on defaults)."""

from __future__ import annotations

from pathlib import Path

from support.cli import run


def test_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('database_url = "postgresql+psycopg://u:pw-in-file@h/db\n')
    broken = {"missing": tmp_path / "missing.toml", "not TOML": tmp_path / "bad.toml"}
    for what in ("missing", "not TOML"):
        out = run("config", "show", home=tmp_path / "home", env={"PHM_CONFIG": str(broken[what])})
        assert out.returncode == 2 and "Traceback" not in out.stderr, (what, out.stderr)
        assert str(broken[what]) in out.stderr and "pw-in-file" not in out.stderr + out.stdout, out.stderr
    out = run("config", "show", home=tmp_path / "home", env={"PHM_SPARK_CONF": "spark.driver.memory=8g"})
    assert out.returncode == 2 and "Traceback" not in out.stderr and "spark_conf" in out.stderr, out.stderr
