"""The guides' `phm` commands against the real CLI: every subcommand is listed in docs/commands.md, and every
`phm ...` the README and docs/ quote names a real subcommand and only options it has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import typer.main

from phm.cli import app

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = {"GROUP", "...", "<name>"}


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def _quoted(text: str) -> Iterator[str]:
    """Each `phm ...` in inline code, and each line of a fenced block that starts with `phm `."""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            if line.startswith("phm "):
                yield line.split("  #")[0]
            continue
        for code in re.findall(r"`([^`]+)`", line):
            at = re.search(r"(?:^|[\s(])phm [a-z]", code)
            if at:
                yield code[at.start() :].strip(" (").replace("\\|", "|")


def _problems(quote: str, root: Any) -> list[str]:
    words = quote.split()[1:]
    commands = [root]
    while words and all(hasattr(c, "commands") for c in commands):
        names = words[0].split("|")
        if words[0] in PLACEHOLDERS:
            return []
        missing = [n for n in names if n not in commands[0].commands]
        if missing:
            return [f"no subcommand {missing} in {quote!r}"]
        commands = [commands[0].commands[n] for n in names]
        words.pop(0)
    if any(hasattr(c, "commands") for c in commands):
        return []  # a group named on its own, e.g. `phm forecast`
    problems = []
    for command in commands:
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for option in re.findall(r"(?<![\w-])--[a-z][\w-]*", " ".join(words)):
            if option not in options:
                problems.append(f"{command.name}: no option {option} in {quote!r}")
    return problems


def test_every_subcommand_is_in_the_command_list() -> None:
    listed = (ROOT / "docs" / "commands.md").read_text().replace("\\|", "|")
    missing = []
    for path, _ in _leaves(typer.main.get_command(app)):
        group, name = " ".join(path[:-1]), path[-1]
        pattern = rf"phm {re.escape(group)}{' ' if group else ''}(?:[\w-]+\|)*{re.escape(name)}(?:\||\b)"
        if not re.search(pattern, listed):
            missing.append(" ".join(path))
    assert not missing, f"docs/commands.md does not list: {missing}"


def test_every_quoted_command_parses_with_the_real_cli() -> None:
    root = typer.main.get_command(app)
    problems = [
        f"{guide.relative_to(ROOT)}: {problem}"
        for guide in GUIDES
        for quote in _quoted(guide.read_text())
        for problem in _problems(quote, root)
    ]
    assert not problems, "\n".join(problems)
