"""Re-identification for direct care on the real served service (`bentoml serve`, its own TMPDIR): a 5,000-row
practice list with 3% malformed numbers and 10% people of other practices gives exactly the coordinator's
in-scope matches; people of other practices change nothing in the answer; bad lists get a 4xx naming the row or
column; the upload leaves no file (not even a spooled temporary file); the access log holds the event; and
afterwards no NHS number or name of the lists is anywhere in PHM_HOME, the logs or the service's temporary folder.
The lists are made from the synthetic ICS's extracts, which live outside the served home."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pandas as pd
import pytest

from features.sources.practice_list import MAX_BYTES
from features.synthetic.practice_list import make
from phm.core import ledger_check, ledger_file
from phm.operational.database import engine
from phm.operational.outcomes import in_force
from phm.core.settings import DEMO_PSEUDONYM_KEY
from serving.access import log_path
from serving.batch.ranking import BAND_ORDER
from serving.batch.store import snapshots_root
from serving.reidentify import Reidentified
from features.sources.pseudonymise import Pseudonymiser
from support.cli import run
from support.practice_lists import as_csv, coordinator, identifiers, scan, with_unknown_people
from support.served import Server

ROUTE = "/api/worklist/reidentify"
PSEUDO = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())


@pytest.fixture(scope="module")
def world(served_home, served_tokens, ics20k, tmp_path_factory):
    """The served home with a coordinator for enough practices, a 5,000-row list, and a server of its own whose
    temporary folder is watched."""
    reid = coordinator(served_home.home, ics20k.out_dir, "reid", at_least=4_700)
    made = make(ics20k.out_dir, reid.practices, 5_000, seed=3, malformed_share=0.03, other_share=0.10)
    tmp = tmp_path_factory.mktemp("service_tmp")
    server = Server(
        served_home, tmp_path_factory.mktemp("reid_log"), env={"TMPDIR": str(tmp), "PHM_SERVICE_WORKERS": "1"}
    )
    url = server.start()
    current = max(p for p in snapshots_root(served_home).iterdir() if p.is_dir())
    scores = pd.read_parquet(current / "scores.parquet", columns=["person_id", "practice_code", "band"])
    yield {
        "url": url,
        "reid": reid,
        "list": made,
        "tmp": tmp,
        "server": server,
        "scores": scores,
        "lists": [made],
        "home": served_home,
    }
    server.stop()
    assert "Traceback" not in server.log()
    engine(served_home).dispose()  # this process's pooled connection to the shared home's database, closed


def post(world, body: bytes, token: str | None = None, **params) -> httpx.Response:
    return httpx.post(
        world["url"] + ROUTE,
        content=body,
        params=params,
        timeout=60,
        headers={"Authorization": f"Bearer {token or world['reid'].token}", "Content-Type": "text/csv"},
    )


def expected(world, made, min_band: str) -> dict[str, int]:
    """pseudonymised id -> list row of the list's people on the coordinator's worklist at `min_band` or above,
    computed from the snapshot file directly."""
    s = world["scores"]
    on = s[s.practice_code.isin(world["reid"].practices) & (s.band.map(BAND_ORDER) >= BAND_ORDER[min_band])]
    hidden = {r.person_id for r in in_force(world["home"], practices=world["reid"].practices) if r.hidden}
    on = set(on.person_id.astype(np.int64)) - hidden
    out = {}
    for row, (number, kind) in enumerate(zip(made.table["NHS number"], made.kind), start=1):
        pid = PSEUDO.person_id(number.replace(" ", ""))
        if kind != "malformed" and pid in on:
            out[str(pid)] = row
    return out


@pytest.mark.parametrize("min_band", ["routine", "raised"])
def test_exactly_the_in_scope_matches(world, min_band: str) -> None:
    made = world["list"]
    r = post(world, as_csv(made), min_band=min_band)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    got = r.json()
    Reidentified.model_validate(got)  # the answer has the documented shape
    want = expected(world, made, min_band)
    assert {p["person_id"]: p["row"] for p in got["people"]} == want
    assert got["matched"] == len(want) > (2_000 if min_band == "routine" else 100)
    table = made.table
    for p in got["people"]:  # the number, name and other columns are the list's own row
        row = table.iloc[p["row"] - 1]
        assert (p["nhs_number"], p["name"], p["date_of_birth"], p["details"]) == (
            row["NHS number"].replace(" ", ""),
            row["Name"],
            row["Date of birth"],
            {"Phone": row["Phone"]},
        )
        assert p["practice_code"] in world["reid"].practices
    malformed = [i + 1 for i in np.flatnonzero(made.kind == "malformed")]
    assert got["malformed"] == 150 and got["malformed_rows"] == malformed
    assert got["rows_read"] == 5_000 and got["not_on_worklist"] == 5_000 - 150 - len(want)
    assert [p["rank"] for p in got["people"]] == sorted(p["rank"] for p in got["people"])


def test_people_of_other_practices_change_nothing(world, ics20k) -> None:
    """The answer is byte-for-byte the one for a list whose other-practice people are unknown to the ICS."""
    made = world["list"]
    unknown = with_unknown_people(made, ics20k.out_dir)
    world["lists"].append(unknown)
    a, b = post(world, as_csv(made)), post(world, as_csv(unknown))
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    others = {str(PSEUDO.person_id(n.replace(" ", ""))) for n in made.table["NHS number"][made.kind == "other"]}
    numbers = {n.replace(" ", "") for n in made.table["NHS number"][made.kind == "other"]}
    assert not any(o in a.text for o in others) and not any(n in a.text for n in numbers)
    assert len(others) == 500 and world["scores"].person_id.astype(str).isin(others).sum() > 300  # they are scored


def test_a_multipart_upload_over_a_mebibyte_leaves_no_file(world) -> None:
    """The page's form (multipart) with a list over 1 MiB — where Starlette's form parser would spool to a file —
    gives the same people and leaves no new file in the service's temporary folder (that nothing is even opened
    for writing is shown in-process by tests/integration/test_upload_memory.py)."""
    made = world["list"]
    padded = made.table.assign(Notes=["x" * 190] * len(made.table))
    body = padded.to_csv(index=False).encode()
    assert 1_048_576 < len(body) < MAX_BYTES
    before = set(world["tmp"].rglob("*"))  # BentoML's own sockets and metrics folders
    r = httpx.post(
        world["url"] + ROUTE,
        files={"file": ("list.csv", body, "text/csv")},
        timeout=60,
        headers={"Authorization": f"Bearer {world['reid'].token}"},
    )
    assert r.status_code == 200, r.text
    assert {p["person_id"] for p in r.json()["people"]} == set(expected(world, made, "raised"))
    assert r.json()["extra_columns"] == ["Phone", "Notes"]
    assert set(world["tmp"].rglob("*")) - before == set()


def test_csv_download_is_formula_safe(world) -> None:
    made = world["list"]
    want = expected(world, made, "raised")
    first = min(want.values())
    table = made.table.copy()
    table.loc[first - 1, "Name"] = '=HYPERLINK("http://x","y")'
    table.loc[first - 1, "Phone"] = "+44 1"
    r = post(world, table.to_csv(index=False).encode(), format="csv")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"].startswith("attachment; filename=reidentified_")
    got = pd.read_csv(io.StringIO(r.text), dtype=str, keep_default_na=False)
    assert len(got) == len(want) and set(got.person_id) == set(want)
    row = got[got.list_row == str(first)].iloc[0]
    assert row["name"] == '\'=HYPERLINK("http://x","y")' and row["list: Phone"] == "'+44 1"
    assert not any(str(v).startswith(("=", "+", "-", "@")) for v in got.to_numpy().ravel())


@pytest.mark.parametrize("case", ["wrong columns", "empty", "not utf-8", "over the limit", "duplicates", "ragged"])
def test_bad_lists_get_a_clear_4xx(world, case: str) -> None:
    made = world["list"]
    good = as_csv(made)
    first = made.table["NHS number"].iloc[0]
    body, status, words = {
        "wrong columns": (good.replace(b"NHS number", b"Patient", 1), 422, "missing: ['nhs_number']"),
        "empty": (b"", 422, "empty"),
        "not utf-8": (good.replace(b"\n", "\nJos\u00e9,".encode("latin-1") + b"1,2,3\n", 1), 422, "line 2"),
        "over the limit": (good * (MAX_BYTES // len(good) + 1), 413, "bytes"),
        "duplicates": (good + f"{first},Copy,2000-01-01,\n".encode(), 422, "row 5001 repeats row 1"),
        "ragged": (good + b"4010232137,too few\n", 422, "row 5001 has 2 fields"),
    }[case]
    r = post(world, body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert first.replace(" ", "") not in r.text and first not in r.text


def test_people_hidden_by_an_outcome_are_left_out(world, served_tokens) -> None:
    """As on the worklist: a person hidden by a recorded outcome is not named (and counts as not on it)."""
    made = world["list"]
    before = post(world, as_csv(made)).json()
    mine = [
        p
        for p in before["people"]
        if p["practice_code"] not in (served_tokens["practice"], served_tokens["other_practice"])
    ]
    person = (mine or before["people"])[-1]
    done = httpx.post(
        world["url"] + "/api/worklist/outcomes",
        timeout=60,
        json={"person_id": person["person_id"], "outcome": "contacted"},
        headers={"Authorization": f"Bearer {world['reid'].token}"},
    )
    assert done.status_code == 201, done.text
    after = post(world, as_csv(made)).json()
    assert [p["person_id"] for p in after["people"]] == [
        p["person_id"] for p in before["people"] if p["person_id"] != person["person_id"]
    ]
    assert after["not_on_worklist"] == before["not_on_worklist"] + 1
    assert {p["person_id"] for p in after["people"]} == set(expected(world, made, "raised"))


def test_only_coordinators_within_their_practices(world, served_tokens) -> None:
    body = as_csv(world["list"])
    for role in ("planner", "ds", "cso"):
        assert post(world, body, token=served_tokens[role]).status_code == 403
    assert post(world, body, token="nope").status_code == 401
    outside = post(world, body, token=served_tokens["other"], practice=world["reid"].practices[0])
    if world["reid"].practices[0] != served_tokens["other_practice"]:
        assert outside.status_code == 403 and "outside your scope" in outside.json()["detail"]
    # another coordinator's list holds the same people: only those of their own practice come back
    other = post(world, body, token=served_tokens["other"], min_band="routine").json()
    s = world["scores"]
    theirs = set(s[s.practice_code == served_tokens["other_practice"]].person_id.astype(str))
    assert {p["person_id"] for p in other["people"]} <= theirs
    assert other["practices"] == [served_tokens["other_practice"]]


def test_the_access_log_holds_the_event(world) -> None:
    made = world["list"]
    r = post(world, as_csv(made))
    assert r.status_code == 200
    entries = [e for e in ledger_file.read(log_path(world["home"].home)) if e.get("route") == ROUTE]
    last = entries[-1]
    assert (last["user"], last["role"], last["status"], last["purpose"]) == ("reid", "coordinator", 200, "direct care")
    assert last["count"] == r.json()["matched"] == len(last["people"])
    assert last["people"] == [p["person_id"] for p in r.json()["people"]]
    assert last["practices"] == sorted(world["reid"].practices) and last["rows_uploaded"] == 5_000
    refused = [e for e in entries if e["status"] >= 400]
    assert refused and all(e["people"] == [] and "purpose" not in e for e in refused)
    assert ledger_check.verify(log_path(world["home"].home)) == []


def test_the_command_line_prints_the_same_people(world, tmp_path) -> None:
    made = world["list"]
    path = tmp_path / "list.csv"
    path.write_bytes(as_csv(made))
    done = run(
        "worklist",
        "reidentify",
        "--practice-list",
        str(path),
        "--csv",
        home=world["home"].home,
        env={"PHM_TOKEN": world["reid"].token},
    )
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(io.StringIO(done.stdout), dtype=str)
    assert set(got.person_id) == set(expected(world, made, "raised"))
    last = [e for e in ledger_file.read(log_path(world["home"].home)) if e.get("route") == "phm worklist reidentify"][
        -1
    ]
    assert last["purpose"] == "direct care" and sorted(last["people"]) == sorted(got.person_id)
    bad = run(
        "worklist",
        "reidentify",
        "--practice-list",
        str(path),
        home=world["home"].home,
        env={"PHM_TOKEN": "not-a-token"},
    )
    assert bad.returncode != 0 and "not a coordinator" in bad.stderr
    path.unlink()


def test_phm_data_practice_list_writes_outside_the_home_only(ics20k, served_tokens, tmp_path) -> None:
    from features.sources.nhs_number import is_valid

    out, home = tmp_path / "lists" / "list.csv", tmp_path / "home"
    args = [
        "data",
        "practice-list",
        "--practice",
        served_tokens["practice"],
        "--source",
        str(ics20k.out_dir),
        "--rows",
        "300",
        "--malformed-share",
        "0.1",
        "--other-share",
        "0.2",
    ]
    done = run(*args, "--out", str(out), home=home)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, dtype=str)
    assert list(table.columns) == ["NHS number", "Name", "Date of birth", "Phone"] and len(table) == 300
    assert sum(not is_valid(n.replace(" ", "")) for n in table["NHS number"]) == 30
    out.unlink()
    inside = run(*args, "--out", str(home / "list.csv"), home=home)
    assert inside.returncode != 0 and "outside PHM_HOME" in inside.stderr and not (home / "list.csv").exists()


def test_zz_no_identifier_is_left_anywhere(world) -> None:
    """Run last in this module: the home (warehouse, snapshots, MLflow, logs, access log, sessions), the service
    log and its temporary folder hold no NHS number or name of any list sent."""
    numbers, names = set(), set()
    for made in world["lists"]:
        n, m = identifiers(made)
        numbers |= n
        names |= m
    names.add('=HYPERLINK("http://x","y")')
    found = scan([world["home"].home, world["server"].log_path, world["tmp"]], numbers, names)
    assert found == []
    log = json.dumps([e for e in ledger_file.read(log_path(world["home"].home))])
    assert not any(n in log for n in numbers)
