"""How the `phm` process ends (`phm/cli/process_exit.py`): Python's shutdown steps run - non-daemon threads
joined, `atexit` handlers (logging among them) run, streams flushed - and the status is the command's own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phm.cli.process_exit import exit_code


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), ("no such warehouse", 1)])
def test_exit_code_is_the_interpreters(code: object, status: int, capsys: pytest.CaptureFixture) -> None:
    assert exit_code(code) == status
    assert capsys.readouterr().err == ("no such warehouse\n" if isinstance(code, str) else "")


def test_leave_runs_the_shutdown_steps_and_keeps_the_status(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import atexit, logging, sys, threading, time
        from pathlib import Path
        from phm.cli.process_exit import leave

        out = Path({str(tmp_path)!r})
        logging.basicConfig(filename=out / "run.log", level=logging.INFO)
        logging.info("logged before leaving")
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("finished")
        threading.Thread(target=late).start()
        sys.stdout.write("unflushed")
        leave(3)
        (out / "after").write_text("leave returned")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "unflushed"
    assert (tmp_path / "thread").read_text() == "finished"  # joined, as the interpreter would
    assert (tmp_path / "atexit").read_text() == "ran"
    assert "logged before leaving" in (tmp_path / "run.log").read_text()
    assert not (tmp_path / "after").exists()


def test_the_phm_command_keeps_its_statuses() -> None:
    phm = Path(sys.executable).parent / "phm"
    ok = subprocess.run([str(phm), "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("phm ")
    usage = subprocess.run([str(phm), "models", "promote"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Missing option '--model'" in usage.stderr
