"""The `phm` command as a new user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.cli import PHM, run

from models import specs


def test_generate_load_report(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gen = run("data", "generate", "--persons", "3000", "--seed", "7", "--malformed-share", "0.01", home=home)
    assert gen.returncode == 0, gen.stderr
    assert "Realism check" in gen.stdout and "emergency admissions per 1000 person years" in gen.stdout
    assert (home / "data" / "synthetic" / "patients.parquet").exists()
    load = run("data", "load", home=home)
    assert load.returncode == 0, load.stderr
    assert "Load report" in load.stdout and "invalid_nhs_number" in load.stdout
    assert "public demo key" in load.stdout
    saved = json.loads((home / "reports" / "load_report.json").read_text())
    assert saved["tables"]["patients"]["rows_quarantined"] > 0
    report = run("data", "report", home=home)
    assert report.returncode == 0, report.stderr
    assert "Ethnicity recording by practice" in report.stdout
    page = (home / "reports" / "data_quality.html").read_text()
    assert "<table>" in page and "Ethnicity recording by deprivation" in page


def test_clear_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = run("data", "load", str(tmp_path / "nowhere"), home=home)
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    no_wh = run("data", "report", home=home)
    assert no_wh.returncode == 2 and "phm data load" in no_wh.stderr
    bad = run("data", "generate", "--persons", "5", home=home)
    assert bad.returncode == 2 and "persons" in bad.stderr
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "patients.csv").write_text("nhs_number\n")
    (tmp_path / "real" / "practices.csv").write_text("practice_code,pcn_code\n")
    keyless = run("data", "load", str(tmp_path / "real"), home=home)
    assert keyless.returncode == 2 and "PHM_PSEUDONYM_KEY is not set" in keyless.stderr


def test_a_home_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only file system
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(home)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        home.chmod(0o555)
    try:
        out = run("data", "report", home=home)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(home)], check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{home}: PHM_HOME cannot be written" in " ".join(out.stderr.split()), out.stderr


def test_csv_generate_and_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "csv"
    assert run("data", "generate", "--persons", "1000", "--format", "csv", "--out", str(out), home=home).returncode == 0
    assert (out / "patients.csv").exists()
    load = run("data", "load", str(out), home=home)
    assert load.returncode == 0, load.stderr
    saved = json.loads((home / "reports" / "load_report.json").read_text())
    assert saved["tables"]["patients"]["rows_loaded"] == 1000


@pytest.mark.parametrize("args", [["--version"], ["config", "show"], ["--help"], ["data", "--help"]])
def test_basic_commands(tmp_path: Path, args: list[str]) -> None:
    result = run(*args, home=tmp_path / "h", env={"PHM_PSEUDONYM_KEY": "do-not-print-this-secret"})
    assert result.returncode == 0, result.stderr
    assert "do-not-print-this-secret" not in result.stdout
    if args == ["config", "show"]:
        assert json.loads(result.stdout)["home"] == str(tmp_path / "h")


def test_mlflow_project_entry_point(tmp_path: Path) -> None:
    """`mlflow run` finds the project (MLproject -> mlproject.yaml) and runs `phm` offline."""
    root = Path(__file__).resolve().parents[2]
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PHM_HOME": str(tmp_path / "home"),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    result = subprocess.run(
        [
            str(Path(bin_dir) / "mlflow"),
            "run",
            str(root),
            "-e",
            "generate",
            "--env-manager",
            "local",
            "-P",
            "persons=400",
            "-P",
            "seed=3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "succeeded" in result.stderr
    assert (tmp_path / "home" / "data" / "synthetic" / "patients.parquet").exists()


def test_features_list_and_build(tmp_path: Path) -> None:
    home = tmp_path / "home"
    listed = run("features", "list", "--set", "emergency_admission", home=home)
    assert listed.returncode == 0 and "emergency_admissions_12m" in listed.stdout and "definition hash" in listed.stdout
    as_json = run("features", "list", "--json", home=home)
    assert any(f["name"] == "hm_spo2_slope_7d" for f in json.loads(as_json.stdout)["flare_up"])
    no_wh = run("features", "build", "--as-of", "2024-04-01", home=home)
    assert no_wh.returncode == 2 and "phm data load" in no_wh.stderr
    assert run("data", "generate", "--persons", "2500", home=home).returncode == 0
    assert run("data", "load", home=home).returncode == 0
    built = run("features", "build", "--as-of", "2024-04-01", "--as-of", "2023-04-01", home=home)
    assert built.returncode == 0, built.stderr
    assert "eligible on 2024-04-01" in built.stdout and "censored: moved away" in built.stdout
    out = home / "features" / "emergency_admission_2023-04-01.parquet"
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["index_dates"] == ["2023-04-01", "2024-04-01"]
    empty = run("features", "build", "--as-of", "1900-01-01", home=home)
    assert empty.returncode == 2 and "no one is eligible" in empty.stderr
    bad = run("features", "build", "--as-of", "2024-04-01", "--set", "nonsense", home=home)
    assert bad.returncode == 2 and "unknown feature set" in bad.stderr
    young = run("features", "build", "--as-of", "2024-04-01", "--min-age", "-5", home=home)  # was taken as it was
    assert young.returncode == 2 and "--min-age -5: Input should be greater than or equal to 0" in young.stderr


def test_demo_runs_end_to_end_and_serves_the_pages(tmp_path: Path) -> None:
    """`phm demo` as the README runs it: everything, then the service with the printed URL and tokens."""
    import re
    import signal
    import socket
    import time

    import httpx

    home = tmp_path / "home"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path / "demo.log"
    env = {**os.environ, "PHM_HOME": str(home), "COLUMNS": "100"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [PHM, "demo", "--persons", "3000", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail("phm demo exited:\n" + log_path.read_text()[-3000:])
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the demo's service did not become ready:\n" + log_path.read_text()[-3000:])
        out = log_path.read_text()
        assert "Demo complete" in out and f"{url}/ui/" in out
        tokens = dict(re.findall(r"(Demo [A-Za-z ]+?) \(.*?\): (phm_\S+)", out))
        assert set(tokens) == {"Demo Coordinator", "Demo Planner", "Demo Safety Officer", "Demo Data Scientist"}
        with httpx.Client(
            base_url=url, timeout=60, follow_redirects=True
        ) as browser:  # the printed token signs in to the pages
            form = browser.get("/ui/signin").text  # the form carries its login-CSRF token
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            signed = browser.post("/ui/signin", data={"token": tokens["Demo Coordinator"], "csrf": csrf})
            assert (
                signed.status_code == 200
                and "Worklist" in signed.text
                and "Change is compared with the scores of" in signed.text
            )
        trend = httpx.get(
            url + "/api/worklist",
            headers={"Authorization": f"Bearer {tokens['Demo Coordinator']}"},
            params={"top": 20},
            timeout=60,
        ).json()
        assert (
            trend["rows"] and sum(r["previous_risk"] is not None for r in trend["rows"]) >= 15
        )  # scored a week before
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log_path.read_text()
    for name in ("load_report.json", "data_quality.html"):
        assert (home / "reports" / name).exists()
    for model in specs.NAMES:  # every specified model: built, trained, audited, signed off by the demo CSO, promoted
        assert (home / "features" / f"{model}_2024-04-01.parquet").exists()
        report = json.loads((home / "reports" / "audits" / f"{model}_v1" / "bias_report.json").read_text())
        assert report["subject"]["model"] == model and len(report["groupings"]) == 7
        assert f"{model} version 1 approved by Demo Safety Officer and promoted to champion" in out
    listed = run("models", "list", home=home)
    assert listed.stdout.count("champion") == len(specs.NAMES) and listed.stdout.count("approved") == len(specs.NAMES)
    log = run("audit", "log", "--verify", home=home)
    assert log.returncode == 0 and "Hazard log intact" in log.stdout
    assert (home / "forecasts" / "latest" / "forecasts.parquet").exists() and "bed days saved" in out
    snapshots = [p for p in (home / "warehouse" / "snapshots").iterdir() if p.is_dir()]
    assert len(snapshots) == 2 and (home / "warehouse" / "snapshots" / "CURRENT.json").exists()
    assert run("users", "list", home=home).stdout.count("Demo ") == 4
    assert "Traceback" not in out


def test_train_and_models_list_through_mlflow_run(tmp_path: Path) -> None:
    """`mlflow run . -e train_emergency_admission` trains, registers and `phm models list` shows it."""
    home = tmp_path / "home"
    assert run("data", "generate", "--persons", "8000", "--seed", "4", home=home).returncode == 0
    assert run("data", "load", home=home).returncode == 0
    empty = run("models", "list", home=home)
    assert empty.returncode == 0 and "No registered models" in empty.stdout
    root = Path(__file__).resolve().parents[2]
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PHM_HOME": str(home),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
    }
    result = subprocess.run(
        [str(Path(bin_dir) / "mlflow"), "run", str(root), "-e", "train_emergency_admission", "--env-manager", "local"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "version 1 (alias candidate)" in result.stdout
    listed = run("models", "list", home=home)
    assert listed.returncode == 0 and "emergency_admission" in listed.stdout and "candidate" in listed.stdout


def _piped(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real `phm` with stdout to a pipe and no COLUMNS (as in a script, cron job or CI log)."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TTY_COMPATIBLE", "FORCE_COLOR")}
    return subprocess.run(
        [PHM, *args], capture_output=True, text=True, timeout=600, env={**base, "PHM_HOME": str(home), **(env or {})}
    )


def _headers(out: str) -> list[list[str]]:
    """The header cells of every boxed table printed (one line each when not on a terminal)."""
    return [
        [c.strip() for c in line.strip().strip("┃").split("┃")] for line in out.splitlines() if line.startswith("┃")
    ]


def test_output_without_a_terminal_keeps_whole_values(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _piped("data", "generate", "--persons", "1000", "--seed", "3", home=home).returncode == 0
    load = _piped("data", "load", home=home)
    assert load.returncode == 0, load.stderr
    report = _piped("data", "report", home=home)
    assert report.returncode == 0, report.stderr
    for out in (load.stdout, report.stdout):
        assert "…" not in out
        assert all(all(cells) for cells in _headers(out)), _headers(out)  # no blank column header
    tables = next(h for h in _headers(report.stdout) if h[:2] == ["table", "file"])
    assert tables[-2:] == ["first_date", "last_date"]
    rows = [line for line in report.stdout.splitlines() if line.startswith("│ community_contacts ")]
    assert len(rows) == 1 and "community_contacts.parquet" in rows[0]  # a whole row on one line
    assert re.search(r"│ 20\d\d-\d\d-\d\d +│ 20\d\d-\d\d-\d\d +│$", rows[0])  # whole dates
    warehouse = str(home / "warehouse" / "phm.duckdb")
    assert any(line.startswith("Warehouse: ") and warehouse in line for line in load.stdout.splitlines())

    rng = np.random.default_rng(5)  # another tool's scores, with long group names
    n = 4000
    race = rng.choice(["Caucasian", "African-American", "Asian-Pacific Islander"], n, p=[0.6, 0.3, 0.1])
    risk = rng.beta(2, 8, n)
    outcome = (rng.random(n) < risk + np.where(race == "African-American", 0.1, 0)).astype(int)
    pd.DataFrame({"score": risk, "reoffended": outcome, "race": race}).to_csv(tmp_path / "scores.csv", index=False)
    audit = _piped(
        "audit",
        "scores",
        str(tmp_path / "scores.csv"),
        "--score",
        "score",
        "--outcome",
        "reoffended",
        "--group",
        "race",
        "--reference",
        "race=Caucasian",
        "--draws",
        "100",
        home=home,
    )
    assert audit.returncode == 0, audit.stderr
    flag = [line for line in audit.stdout.splitlines() if line.startswith("│ Race ")]
    assert flag and "African-American" in flag[0] and "(Caucasian)" in flag[0], audit.stdout
    assert "…" not in audit.stdout and all(all(cells) for cells in _headers(audit.stdout))
    # on a narrow terminal, long values fold within their cells: never cut short
    narrow = _piped("data", "report", home=home, env={"TTY_COMPATIBLE": "1", "COLUMNS": "70", "NO_COLOR": "1"})
    assert narrow.returncode == 0 and "…" not in narrow.stdout
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in narrow.stdout.splitlines()) <= 70


@pytest.mark.slow
def test_train_picks_its_dates_from_a_warehouse_ending_in_2023(tmp_path: Path) -> None:
    """Data ending 2023-10-17 (as the public Synthea export did): `phm train` validates on the latest index date
    whose 12-month follow-up lies within the data and trains on the years before; dates configured beyond the data
    are refused naming the dates, not as "too few outcomes"."""
    from datetime import date

    import mlflow

    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings
    from training import tracking

    home = tmp_path / "home"
    cfg = GeneratorConfig(
        persons=4000,
        seed=9,
        start=date(2018, 4, 1),
        end=date(2023, 10, 17),
        index_dates=[date(2021, 4, 1), date(2022, 4, 1)],
        monitoring_start=date(2022, 4, 1),
    )
    ics = generate(cfg, tmp_path / "ics")
    assert run("data", "load", str(ics.out_dir), "--as-of", "2023-10-18", home=home).returncode == 0
    trained = run("train", "emergency-admission", home=home)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "dates follow the data (2018-04-01 to 2023-10-17): validation on 2022-10-01" in trained.stdout
    assert "training on 2019-10-01, 2020-10-01, 2021-10-01" in trained.stdout
    tracking.configure(Settings(home=home))
    client = mlflow.MlflowClient()
    version = client.get_model_version("emergency_admission", "1")
    params = client.get_run(version.run_id).data.params
    assert params["validation_dates"] == "2022-10-01" and params["train_dates"] == "2019-10-01..2021-10-01 (3 dates)"
    recorded = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="train_config.json", dst_path=str(tmp_path)
            )
        ).read_text()
    )
    assert recorded["validation_dates"] == ["2022-10-01"]  # the dates used, so `--config` reproduces the run

    config = tmp_path / "spec_dates.json"  # the specification's own dates, named: beyond this warehouse's data
    recorded.update({"train_dates": ["2021-04-01", "2022-04-01", "2023-04-01"], "validation_dates": ["2024-04-01"]})
    config.write_text(json.dumps(recorded))
    refused = run("train", "emergency-admission", "--config", str(config), home=home)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = " ".join(refused.stderr.split())
    assert "validation date 2024-04-01 lies after the data end (2023-10-17)" in message
    assert "the latest index date whose 12-month follow-up lies within the data is 2022-10-18" in message
    assert "too few outcomes" not in message
