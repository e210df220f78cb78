"""A disk that fills on demand, for the full-disk tests: a small tmpfs mounted over a folder (as root, as CI runs)
and filled to the last byte, else (not root, or PHM_TEST_DISK_FULL=rlimit) a file-size limit (RLIMIT_FSIZE) on
this process, under which writes fail with EFBIG (Python ignores SIGXFSZ)."""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FillingDisk:
    folder: Path
    tmpfs: bool  # a real full file system; False: a file-size limit
    limit: int  # bytes, for the file-size limit

    @contextmanager
    def full(self) -> Iterator[None]:
        """Writes under the folder fail as on a full disk until the block ends (then the space is freed)."""
        if self.tmpfs:
            filler = self.folder / "filler.bin"
            with open(filler, "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass
            try:
                yield
            finally:
                filler.unlink()
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def filling_disk(folder: Path, size: str, limit: int, mode: str = "0700") -> Iterator[FillingDisk]:
    """`folder` (made if missing) on a tmpfs of `size` (e.g. "2m") while the block runs, where possible."""
    folder.mkdir(parents=True, exist_ok=True)
    tmpfs = (
        os.geteuid() == 0
        and os.environ.get("PHM_TEST_DISK_FULL") != "rlimit"
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield FillingDisk(folder, tmpfs, limit)
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", str(folder)], check=False)
