"""Mistaken and hostile input to the care coordinator's loop, on a real `bentoml serve` of a copy of the served home
and the real `phm` command: an NHS number given where a pseudonymised id belongs is neither logged nor echoed; a
caseload file with no valid number, or that is not readable CSV, is refused with a clear 422 and leaves the team's
caseload as it was (refusals from the command line are logged too); a practice list naming a column twice is
refused rather than showing one column's values under both names; the evaluation export fails with a message
naming a path it cannot write, and writes nothing it could not log; `phm worklist hidden` lists everyone."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pandas as pd
import pytest

from features.sources.nhs_number import is_valid, normalise
from features.sources.pseudonymise import Pseudonymiser
from phm.core import ledger_file
from phm.core.settings import DEMO_PSEUDONYM_KEY, Settings
from phm.operational import outcomes as store
from serving.access import log_path
from serving.batch.store import current_folder
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import registry_copy
from support.served import serve

pytestmark = pytest.mark.slow
NUMBER = "9434765919"  # a valid NHS number (the NHS's own example)
COORDINATOR = "Cy Coordinator"


@pytest.fixture(scope="module")
def home(served_home, tmp_path_factory) -> tuple[Settings, str, str]:
    """A copy of the served home with a coordinator of its largest practice: (settings, token, practice)."""
    found = registry_copy(served_home, tmp_path_factory.mktemp("loop_hostile"), snapshots=True)
    scores = pd.read_parquet(current_folder(found) / "scores.parquet")
    practice = scores.practice_code.value_counts().index[0]
    _, token = add_user(found.home, COORDINATOR, Role.coordinator, [practice])
    return found, token, practice


@pytest.fixture(scope="module")
def url(home, tmp_path_factory):
    yield from serve(home[0], tmp_path_factory)


def call(method: str, url: str, path: str, token: str, **kw) -> httpx.Response:
    return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


def access_log(settings: Settings) -> list[dict]:
    return ledger_file.read(log_path(settings.home))


def test_an_nhs_number_given_for_a_person_id_is_neither_logged_nor_echoed(home, url) -> None:
    settings, token, _ = home
    answer = call("POST", url, "/api/worklist/outcomes", token, json={"person_id": NUMBER, "outcome": "contacted"})
    assert answer.status_code == 422 and "NHS number" in answer.text and NUMBER not in answer.text
    fhir = call("GET", url, f"/api/fhir/RiskAssessment?patient={NUMBER}", token)
    assert fhir.status_code == 200 and fhir.json()["total"] == 0
    for spelt in (NUMBER, "943 476 5919"):
        out = phm(
            "worklist",
            "outcome",
            "--user",
            COORDINATOR,
            "--person",
            spelt,
            "--outcome",
            "contacted",
            home=settings.home,
            env={"PHM_TOKEN": token},
        )
        assert out.returncode != 0 and "NHS number" in out.stderr
        assert NUMBER not in normalise(out.stdout + out.stderr)
    asked = [
        e.get("asked")
        for e in access_log(settings)
        if e.get("route") in ("/api/worklist/outcomes", "/api/fhir/RiskAssessment")
    ]
    assert asked == [["[redacted]"], ["[redacted]"]]
    assert NUMBER.encode() not in log_path(settings.home).read_bytes()


def _numbers_of(ics20k, ids: list[str]) -> list[str]:
    patients = pd.read_parquet(Path(ics20k.out_dir) / "patients.parquet", columns=["nhs_number"])
    pseud = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    by_id = {str(pseud.person_id(n)): n for n in map(normalise, patients.nhs_number.astype(str)) if is_valid(n)}
    return [by_id[i] for i in ids]


def test_a_caseload_file_without_a_valid_number_leaves_the_team_as_it_was(home, url, ics20k, tmp_path) -> None:
    settings, token, _ = home
    ids = [r["person_id"] for r in call("GET", url, "/api/worklist?top=3", token).json()["rows"]]
    good = ("nhs_number\n" + "\n".join(_numbers_of(ics20k, ids)) + "\n").encode()
    stored = call("POST", url, "/api/worklist/caseload?team=Matrons", token, content=good)
    assert stored.status_code == 200 and stored.json()["stored"] == 3
    for body, words in (
        (b"nhs_number\n", "no valid NHS number"),  # a header alone
        (b"nhs_number\n9.43477E+09\n943476591\n", "no valid NHS number (2 malformed"),  # mangled by a spreadsheet
        (b"nhs_number\n" + b"9" * 200_000 + b"\n", "row 2 (header = row 1) is not valid CSV"),  # a cell too long
    ):
        refused = call("POST", url, "/api/worklist/caseload?team=Matrons", token, content=body)
        assert refused.status_code == 422 and words in refused.json()["detail"], refused.text
    named = call("POST", url, "/api/worklist/caseload?team=Matrons%20943%20476%205919", token, content=good)
    assert named.status_code == 422 and "NHS number" in named.text and "5919" not in named.text
    rows = call("GET", url, "/api/worklist?top=3", token).json()["rows"]
    assert [r["caseload"] for r in rows] == [["Matrons"]] * 3  # nothing was changed
    bad = tmp_path / "caseload.csv"
    bad.write_bytes(b"nhs_number\n" + b"9" * 200_000 + b"\n")
    out = phm(
        "worklist", "caseload", "--user", COORDINATOR, "--team", "Matrons", "--file", str(bad), home=settings.home,
        env={"PHM_TOKEN": token},
    )  # fmt: skip
    assert out.returncode != 0 and "caseload.csv" in out.stderr and "not valid CSV" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    logged = [(e["status"], e["people"]) for e in access_log(settings) if e.get("route") == "phm worklist caseload"]
    assert logged == [(422, [])]


def test_a_practice_list_naming_a_column_twice_is_refused(home, url) -> None:
    _, token, _ = home
    body = b"NHS number,Name,Date of birth,Phone,Phone\n943 476 5919,A Person,1950-01-01,home,mobile\n"
    for fmt in ("json", "csv"):
        refused = call("POST", url, f"/api/worklist/reidentify?format={fmt}", token, content=body)
        assert refused.status_code == 422, refused.text
        assert "more than once (columns [4, 5])" in refused.json()["detail"] and NUMBER not in refused.text


def test_the_evaluation_export_names_a_path_it_cannot_write_and_writes_nothing_unlogged(home, tmp_path) -> None:
    settings, _, practice = home
    store.record(settings, 1, practice, "enrolled", COORDINATOR)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for out, words in ((a_file, "is a file"), (a_file / "under", "cannot write the export")):
        done = phm("worklist", "export-outcomes", "--out", str(out), home=settings.home)
        assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stdout + done.stderr
    log = log_path(settings.home)
    aside = log.with_name("access_log.aside")
    log.rename(aside)
    try:
        done = phm("worklist", "export-outcomes", "--out", str(tmp_path / "unlogged"), home=settings.home)
    finally:
        aside.rename(log)
    assert done.returncode != 0 and "nothing is exported" in done.stderr and not (tmp_path / "unlogged").exists()
    done = phm("worklist", "export-outcomes", "--out", str(tmp_path / "eval"), home=settings.home)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["enrolments.csv", "outcomes.csv"]


def test_phm_worklist_hidden_lists_everyone_hidden(home) -> None:
    settings, token, practice = home
    for pid in range(1000, 1250):
        store.record(settings, pid, practice, "enrolled", COORDINATOR)
    out = phm(
        "worklist", "hidden", "--user", COORDINATOR, home=settings.home, env={"COLUMNS": "250", "PHM_TOKEN": token}
    )
    assert out.returncode == 0, out.stderr
    assert all(f"│ {pid} " in out.stdout for pid in range(1000, 1250)) and "saved report" not in out.stdout


def test_a_form_sent_after_the_session_ended_says_so_and_returns_to_its_page(home, url) -> None:
    _, token, _ = home
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as browser:
        sent = browser.post("/ui/worklist/outcome", data={"person_id": "1", "outcome": "contacted", "csrf": "x"})
        assert sent.status_code == 200 and sent.url.path == "/ui/signin" and "was not saved" in sent.text
        form = {k: re.search(rf'name="{k}" value="([^"]*)"', sent.text).group(1) for k in ("next", "csrf")}
        signed = browser.post("/ui/signin", data={**form, "token": token})
        assert signed.status_code == 200 and signed.url.path == "/ui/worklist", signed.text[:300]


def test_refused_command_line_reidentifications_are_in_the_access_log(home, tmp_path) -> None:
    settings, token, practice = home
    listed = tmp_path / "list.csv"
    listed.write_bytes(b"NHS number,Name,Date of birth,Phone,Phone\n943 476 5919,A Person,1950-01-01,home,mobile\n")
    other = next(p for p in pd.read_parquet(current_folder(settings) / "scores.parquet").practice_code if p != practice)
    for tok, extra in (("phm_wrong", []), (token, ["--practice", other]), (token, [])):
        done = phm(
            "worklist", "reidentify", "--practice-list", str(listed), *extra, home=settings.home, env={"PHM_TOKEN": tok}
        )
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    logged = [
        (e["user"], e["status"], e["people"])
        for e in access_log(settings)
        if e.get("route") == "phm worklist reidentify"
    ]
    assert logged == [("anonymous", 401, []), (COORDINATOR, 403, []), (COORDINATOR, 422, [])]
