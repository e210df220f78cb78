"""LightGBM's threads: idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE, in the environment before LightGBM
loads, unless the user chose a policy), and the thread count follows the setting, else the cores available."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from phm.core.threads import _cgroup_cpus, available_cores, lightgbm_threads

PROBE = """
import os, sys
seen = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "lightgbm" and "policy" not in seen:
            seen["policy"] = os.environ.get("OMP_WAIT_POLICY")
        return None

sys.meta_path.insert(0, Watch())
import %s
print(seen.get("policy"), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize("entry", ["models.risk", "models.batch", "serving.state", "phm.cli"])
def test_passive_waiting_is_set_before_lightgbm_loads(entry: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", PROBE % entry], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    at_import, after = done.stdout.split()
    assert after == "PASSIVE" and at_import in ("PASSIVE", "None")  # None: this entry never loads LightGBM
    if entry in ("models.risk", "models.batch"):
        assert at_import == "PASSIVE"


def test_a_policy_the_user_chose_is_kept() -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % "models.risk"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.stdout.split() == ["ACTIVE", "ACTIVE"], done.stderr[-2000:]


def test_thread_count_follows_the_setting_else_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.risk import BoostingParams

    monkeypatch.delenv("PHM_THREADS", raising=False)
    assert available_cores() == min(len(os.sched_getaffinity(0)), _cgroup_cpus() or 10**6)
    assert lightgbm_threads() == available_cores() == BoostingParams().lgbm().n_jobs
    monkeypatch.setenv("PHM_THREADS", "3")
    assert lightgbm_threads() == 3 and BoostingParams().lgbm().n_jobs == 3
    assert lightgbm_threads(1) == 1 and BoostingParams(threads=5).lgbm().n_jobs == 5  # a model's own setting wins


def test_container_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    assert _cgroup_cpus(tmp_path) == 4
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_cpus(tmp_path) == 2
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert _cgroup_cpus(tmp_path) is None


def test_predictions_do_not_depend_on_the_thread_count() -> None:
    import numpy as np
    import pandas as pd

    from models.risk import BoostingParams, GradientBoostedRisk

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(4000, 12)), columns=[f"x{i}" for i in range(12)])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(X.x0 + 0.5 * X.x1 - 2)))).astype(int)
    fits = [
        GradientBoostedRisk(BoostingParams(threads=t, n_estimators=60)).fit(X[:3000], y[:3000], X[3000:], y[3000:])
        for t in (1, 2)
    ]
    one, two = (f.predict_proba(X)[:, 1] for f in fits)
    assert np.array_equal(one, two)
    assert np.array_equal(fits[1].use_threads(1).predict_proba(X)[:, 1], two)
