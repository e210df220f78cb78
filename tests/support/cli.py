"""Run the real `phm` command in a subprocess with its own PHM_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PHM = shutil.which("phm", path=str(Path(sys.executable).parent)) or "phm"


def run(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PHM_HOME": str(home), "COLUMNS": "160", **(env or {})}
    return subprocess.run([PHM, *args], capture_output=True, text=True, env=full_env, timeout=timeout)
