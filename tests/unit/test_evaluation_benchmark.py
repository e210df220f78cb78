"""The evaluation benchmark's calibration figures, by hand on made-up runs."""

import numpy as np
import pytest

from benchmarks.evaluation import calibration


def _run(did: float, truth: float, lo: float, hi: float) -> dict:
    return {"did": did, "truth": truth, "did_ci": [lo, hi]}


def test_calibration_compares_the_scatter_of_the_errors_with_the_interval_widths() -> None:
    eff = [_run(-0.30, -0.25, -0.50, -0.10), _run(-0.20, -0.25, -0.40, 0.00)]
    null = [_run(0.10, 0.0, -0.096, 0.296), _run(-0.02, 0.0, -0.216, 0.176), _run(0.04, 0.0, -0.156, 0.236)]
    got = {f.what: f.value for f in calibration(eff, null)}
    assert got["effect runs: sd of the DiD error over the runs"] == pytest.approx(np.std([-0.05, 0.05], ddof=1))
    assert got["effect runs: mean sd implied by the DiD 95% intervals"] == pytest.approx(0.4 / 3.92)
    assert got["no-effect runs: sd of the DiD error over the runs"] == pytest.approx(0.06)
    assert got["no-effect runs: mean sd implied by the DiD 95% intervals"] == pytest.approx(0.392 / 3.92)
    assert got["no-effect runs: mean DiD estimate (truth 0)"] == pytest.approx(0.04)
    assert got["no-effect runs: standard error of that mean over the runs"] == pytest.approx(0.06 / np.sqrt(3))


def test_calibration_needs_two_runs_an_arm() -> None:
    assert calibration([_run(-0.3, -0.25, -0.5, -0.1)], []) == []
