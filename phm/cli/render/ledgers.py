"""The hash-chained logs on the console: the hazard log's entries and what a check of a log found."""

from __future__ import annotations

from pathlib import Path

from phm.cli.common import console
from phm.cli.render.tables import table


def hazard_log(path: Path, entries: list[dict]) -> None:
    details = {
        "hazard": lambda e: f"{e.get('hazard_id')}: {e.get('hazard')} (risk {e.get('risk_rating')})",
        "decision": lambda e: (
            f"{e.get('decision')} by {e.get('by')}: {e.get('reason')} (report "
            f"{str(e.get('report_sha256'))[:12]}"
            + (f", configuration {e['configuration_sha256'][:12]}" if e.get("configuration_sha256") else "")
            + (f", via {e['via']}" if e.get("via") else "")
            + ")"
        ),
        "change_review": lambda e: (
            f"configuration change {e.get('decision')} by {e.get('by')}: {e.get('reason')} "
            f"({'; '.join(e.get('differences') or [])})"
        ),
        "monitoring": lambda e: f"{e.get('metric')} {e.get('subject')}: {e.get('message')}",
        "promotion": lambda e: f"{e.get('alias')} by {e.get('by')} ({e.get('basis')})",
        "audit": lambda e: f"{e.get('outcome')}; report {str(e.get('report_sha256'))[:12]}",
    }
    table(
        f"Hazard log: {path}",
        ["#", "when", "kind", "model", "version", "detail"],
        [
            [
                e["seq"],
                e["at"],
                e["kind"],
                e.get("model", ""),
                e.get("version", ""),
                details.get(e["kind"], lambda e: "")(e),
            ]
            for e in entries
        ],
    )


def ledger_check(name: str, path, entries: int, problems: list[str]) -> None:
    if problems:
        console.print(f"[bold red]{name} {path}: {len(problems)} problem(s)[/]")
        for problem in problems:
            console.print(f"  - {problem}", highlight=False)
    else:
        console.print(f"{name} {path}: intact ({entries:,} entries, chain verified)")


def ledger_notes(notes: list[str]) -> None:
    """What a ledger check found that is not tampering (interrupted writes, lines set aside)."""
    for note in notes:
        console.print(f"[yellow]Note:[/] {note}")
