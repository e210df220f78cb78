"""One writer of the warehouse at a time: while a load (or an absorb) writes it, another load or absorb is refused
at once naming the writer at work, the warehouse untouched; a writer killed with SIGKILL never leaves the lock
held. The holder is a real second process taking the product's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from features.sources.loader import ContractError, load
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings
from phm.core.writer_lock import WriterBusy, lock_path, sole_writer
from serving.batch.absorb import absorb_events
from serving.batch.common import SnapshotError

HOLD = """
import sys, time
from pathlib import Path
from phm.core.writer_lock import sole_writer
with sole_writer(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(target: Path, job: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(target), job], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_one_frees_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "wh" / "phm.duckdb"
    holder = _holder(target, "a `phm data load`")
    try:
        with pytest.raises(WriterBusy) as busy:
            with sole_writer(target, "a `phm events absorb`"):
                pytest.fail("entered while another process held the lock")
        assert str(busy.value) == (
            f"{target}: a `phm data load` (process {holder.pid}) is writing it now; wait for it to finish and try again"
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with sole_writer(target, "a `phm data load`"):
        assert lock_path(target).read_text() == f"a `phm data load` (process {os.getpid()})"
    assert lock_path(target).read_text() == ""  # released: nothing names a writer
    assert oct(lock_path(target).stat().st_mode & 0o777) == "0o600"


def test_a_load_and_an_absorb_are_refused_while_another_writes_the_warehouse(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    src = tmp_path / "ics"
    generate(GeneratorConfig(persons=300, seed=3), src)
    load(settings, src)
    before = settings.warehouse_path.stat().st_mtime_ns, settings.warehouse_path.read_bytes()
    holder = _holder(settings.warehouse_path, "a `phm events absorb`")
    try:
        started = time.perf_counter()
        with pytest.raises(ContractError) as refused:
            load(settings, src)
        assert time.perf_counter() - started < 5  # refused at once, not after the work
        assert f"a `phm events absorb` (process {holder.pid}) is writing it now" in str(refused.value)
        with pytest.raises(SnapshotError) as absorb_refused:
            absorb_events(settings)
        assert f"(process {holder.pid}) is writing it now" in str(absorb_refused.value)
    finally:
        holder.kill()
        holder.wait()
    assert (settings.warehouse_path.stat().st_mtime_ns, settings.warehouse_path.read_bytes()) == before
    assert load(settings, src).tables["patients"].rows_loaded > 0  # free again
