"""`phm monitor run` on careless dates, against a real MLflow store, hazard log and warehouse: an --as-of after the
data end is refused naming the data end (it had judged drift on predictors frozen at the data end, and realised
performance on the outcomes known by then: only the people already admitted), and nothing is recorded; a date
before any outcome has matured says that decay was not judged."""

from __future__ import annotations

import json
from datetime import date, timedelta

import mlflow
import pytest

from features.series import data_end
from phm.core.settings import Settings
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import approved_champion, trained_copy
from training import tracking

MODEL = "emergency_admission"


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    """The 20k warehouse with version 1 audited, approved and promoted."""
    home = trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("monitor_hostile"))
    add_user(home.home, "Dr Ada Jones", Role.safety_officer, [])
    add_user(home.home, "Dee Scientist", Role.data_scientist, [])
    approved_champion(home)
    return home


@pytest.mark.parametrize("days", [1, 45, 3650])
@pytest.mark.parametrize("one_model", [True, False])
def test_a_date_after_the_data_end_is_refused(home: Settings, days: int, one_model: bool) -> None:
    end = data_end(home.warehouse_path)
    day = end + timedelta(days=days)
    args = ("monitor", "run", "--as-of", str(day), *(("--model", "emergency-admission") if one_model else ()))
    out = phm(*args, home=home.home)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"--as-of {day} lies after the end of the data ({end})" in said, out.stderr
    assert "Traceback" not in out.stderr and not list((home.home / "monitoring").glob(f"*_{day}.json"))
    tracking.configure(home)
    assert mlflow.MlflowClient().get_model_version(MODEL, "1").tags.get("monitoring_as_of") != str(day)


def test_says_when_outcomes_have_not_matured(home: Settings) -> None:
    """Dates that follow the data validate on the latest date whose outcomes are known: at the data end no later
    outcome has matured, so decay cannot be judged. Monitoring says so, and when it can be (it had printed 'No
    retraining due', tagged the version 'ok' and shown 'No alerts' in green, as if performance had held)."""
    out = phm("monitor", "run", "--model", "emergency-admission", home=home.home)
    assert out.returncode == 0, out.stderr[-2000:]
    said = " ".join(out.stdout.split())
    tracking.configure(home)
    version = mlflow.MlflowClient().get_model_version(MODEL, "1")
    validated = mlflow.MlflowClient().get_run(version.run_id).data.params["validation_dates"]
    first = date.fromisoformat(validated[:10]) + timedelta(days=365)
    assert "Realised performance, calibration and fairness not judged" in said, said
    assert f"the first can be judged as at {first}" in said and "No retraining due" not in said
    result = json.loads((home.home / "monitoring" / "latest.json").read_text())[MODEL]
    assert result["performance"] == {} and result["not_judged"].startswith("Realised performance")
    assert version.tags["monitoring_status"] != "ok"


def test_a_damaged_summary_is_rebuilt_from_each_runs_file(home: Settings) -> None:
    """`monitoring/latest.json` cut short (a crash, a full disk) had crashed `/api/monitoring`, the Models and Equity
    pages and every later run; each run's own file is kept, so the latest result of each model is read from those
    and the next run writes the summary whole again."""
    from serving.governance.monitoring import latest

    assert phm("monitor", "run", "--model", "emergency-admission", home=home.home).returncode == 0
    summary = home.home / "monitoring" / "latest.json"
    good = json.loads(summary.read_text())[MODEL]
    summary.write_text(summary.read_text()[:40])
    assert latest(home)[MODEL] == good
    out = phm("monitor", "run", "--model", "emergency-admission", home=home.home)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert json.loads(summary.read_text())[MODEL]["as_of"] == good["as_of"]
