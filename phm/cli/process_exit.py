"""How the `phm` process ends: as Python's own shutdown does, up to the native teardown.

Arrow's C++ thread pool (every parquet read starts it) is destroyed by static destructors after Python has
finalised; when the process ends just after a read, a pool worker can still be joinable and libstdc++ aborts
the process ("terminate called without an active exception", exit -6) although the command has finished and
said so (apache/arrow#34314, #39862; seen once in a test run of `phm score daily` on a loaded machine). A
scheduler would then report a finished daily job as failed and run it again. So the command ends the way
`Py_FinalizeEx` begins - join the non-daemon threads, run the `atexit` handlers (logging, MLflow, temporary
folders), flush the streams - and then leaves with `os._exit` and the command's own code, skipping only the
native destructors. Every file the commands write is closed before they return (DuckDB connections, parquet
writers and ledgers are context-managed), so nothing is lost by not running them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_code(code: object) -> int:
    """The process exit status `SystemExit(code)` stands for: None is 0, an int itself, anything else is
    printed to stderr and is 1 (as the interpreter does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: int) -> NoReturn:
    """End the process with `code` after Python's shutdown steps but without the native teardown. Under a
    profiler or tracer (`python -m cProfile`, coverage) it exits normally instead: the tool writes its results
    when the interpreter's exit unwinds to it."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)
    threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx does first: join non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say on it
            pass
    os._exit(code & 0xFF)
