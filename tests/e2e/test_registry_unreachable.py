"""A model registry that cannot be reached (a tracking server down, a mistyped address) is said as such by every
command that needs it, with the password in its address hidden: it had read as "No registered models yet" or "No
champion yet" (a failing store taken for an empty one), or retried for two minutes and ended in a traceback that
quoted the password."""

from __future__ import annotations

import socket
import time

import pytest

from support.cli import run as phm


@pytest.fixture(scope="module")
def closed_address() -> str:
    """An HTTP tracking address with a password, on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://ops:S3cretPass@127.0.0.1:{port}/"


@pytest.mark.parametrize(
    ("args", "said_before"),
    [
        (("models", "list"), "No registered models yet"),
        (("audit", "status"), "No champion yet"),
    ],
)
def test_an_unreachable_registry_is_said_not_taken_for_an_empty_one(tmp_path, closed_address, args, said_before):
    started = time.monotonic()
    out = phm(*args, home=tmp_path / "home", env={"PHM_TRACKING_URI": closed_address}, timeout=120)
    seconds = time.monotonic() - started
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 2, said[-2000:]
    assert "the model registry could not be used" in said and "http://ops:***@127.0.0.1" in said, said[-2000:]
    assert said_before not in said and "S3cretPass" not in said and "Traceback" not in said
    assert seconds < 60, f"{seconds:.0f} s to give up on a closed port"
