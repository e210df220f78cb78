"""`phm users` with the real command: a name that would read as another user's (case, spacing, look) or that
holds control characters (line breaks, terminal escapes, invisible marks) is refused, since the access log, `phm
access who-viewed` and sign-offs name people by it; a user list that cannot be written (a full disk) is one clear
error with the list unchanged, never a traceback, and a new token is never shown for a change that was not saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

from phm.cli.demo import NEW_TOKEN_HINT
from serving.users import load_users, users_path
from support.cli import run
from support.disk_full import filling_disk


def _names(home: Path) -> list[str]:
    return [u.name for u in load_users(home)]


def test_names_that_read_as_another_user_or_hide_characters_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("users", "add", "Mary Smith", "--role", "planner", home=home).returncode == 0
    for name in (
        "mary smith",
        "Mary  Smith",
        "Ｍａｒｙ Ｓｍｉｔｈ",
        "Mary Sm\u0456th",  # a Cyrillic і
        "\u039cary Smith",  # a Greek capital Mu
        "Mary Smith ",
        " Ann",
        "Eve\nMary Smith",
        "Bob\x1b[2K",
        "Ann\u200b",
        "Ann\u202e",
        "",
        "x" * 81,
    ):
        out = run("users", "add", name, "--role", "planner", home=home)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "phm_" not in out.stdout, (name, out.stderr)
    assert _names(home) == ["Mary Smith"]
    assert run("users", "add", "Mary Smith", "--role", "safety_officer", "--replace", home=home).returncode == 0
    shown = run("users", "add", "[bold]Ann[/] Jones", "--role", "planner", home=home)  # markup is shown as typed
    assert shown.returncode == 0 and "Added [bold]Ann[/] Jones as planner." in shown.stdout, shown.stdout
    assert _names(home) == ["Mary Smith", "[bold]Ann[/] Jones"]
    for name in ("Зоя Иванова", "Ελένη", "José Núñez"):  # a name in one script, accents and all, is a name
        assert run("users", "add", name, "--role", "planner", home=home).returncode == 0, name


def test_the_demos_hint_for_a_new_token_works_for_every_role(tmp_path: Path) -> None:
    # the demo said `phm users add NAME --role ROLE --replace`, which a coordinator cannot follow (no --practice)
    home = tmp_path / "home"
    assert run("users", "add", "Cy", "--role", "coordinator", "--practice", "S10001", home=home).returncode == 0
    hint = re.search(r"`phm ([^`]+)`", NEW_TOKEN_HINT).group(1).replace("NAME", "Cy").split()
    out = run(*hint, home=home)
    assert out.returncode == 0 and "phm_" in out.stdout, out.stderr
    assert [(u.name, u.role.value, u.practices) for u in load_users(home)] == [("Cy", "coordinator", ["S10001"])]


def test_a_user_list_that_cannot_be_written_is_a_clear_error_and_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with filling_disk(home / "security", "1m", limit=64) as disk:
        assert run("users", "add", "ann", "--role", "planner", home=home).returncode == 0
        before = users_path(home).read_text()
        with disk.full():
            outs = [
                run("users", "add", "bob", "--role", "planner", home=home),
                run("users", "rotate", "ann", home=home),
                run("users", "disable", "ann", home=home),
            ]
        for out in outs:
            assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
            assert "cannot be written" in out.stderr and "unchanged" in out.stderr, out.stderr
            assert "phm_" not in out.stdout  # no token for a change that was not saved
        assert users_path(home).read_text() == before and json.loads(before)[0]["disabled"] is False
        assert not list((home / "security").glob(".users.json.*"))  # nothing half written left behind
        assert run("users", "rotate", "ann", home=home).returncode == 0  # space freed: works again
