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
    z = np.array([-0.05, 0.05]) / (0.4 / 3.92)  # each error over the sd its interval implies
    assert got["effect runs: mean z-score of the DiD error (error / implied sd)"] == pytest.approx(0.0)
    assert got["effect runs: sd of the z-scores (1 if the intervals are as wide as the scatter)"] == pytest.approx(
        np.std(z, ddof=1)
    )


def test_calibration_shows_the_dilution_the_crossover_correction_removes() -> None:
    eff = [
        {**_run(-0.30, -0.28, -0.4, -0.2), "did_not_now": -0.25, "comparison_weight_enrolled_within_follow_up": 0.3},
        {**_run(-0.26, -0.28, -0.4, -0.1), "did_not_now": -0.23, "comparison_weight_enrolled_within_follow_up": 0.2},
    ]
    null = [{**_run(0.0, 0.0, -0.1, 0.1), "did_not_now": 0.0, "comparison_weight_enrolled_within_follow_up": 0.1}]
    got = {f.what: f.value for f in calibration(eff, null)}
    key = "effect runs: mean error of the DiD without the crossover correction (enrol now against not now)"
    assert got[key] == pytest.approx(0.04)
    assert got["mean share of the comparison weight enrolled within its own follow-up (all runs)"] == pytest.approx(0.2)


def test_calibration_needs_two_runs_an_arm() -> None:
    assert calibration([_run(-0.3, -0.25, -0.5, -0.1)], []) == []


def test_a_cut_short_run_resumes_from_its_checkpoint_with_the_same_arguments(tmp_path) -> None:
    from benchmarks.evaluation import Checkpoint

    path = tmp_path / "runs.jsonl"
    args = {"runs": 20, "persons": 50_000}
    first = Checkpoint(path, args)
    assert first.get(101, 0.75) is None
    first.add({"seed": 101, "factor": 0.75, "did": -0.3})
    with open(path, "a") as fh:
        fh.write('{"args": {"runs": 20, "per')  # killed mid-write
    again = Checkpoint(path, args)
    assert again.get(101, 0.75) == {"seed": 101, "factor": 0.75, "did": -0.3} and again.get(101, 1.0) is None
    assert Checkpoint(path, {**args, "persons": 20_000}).get(101, 0.75) is None  # other arguments: not reused
    again.add({"seed": 101, "factor": 1.0, "did": 0.01})  # after the torn line, on a line of its own
    assert Checkpoint(path, args).get(101, 1.0) == {"seed": 101, "factor": 1.0, "did": 0.01}
    again.clear()
    assert not path.exists()
