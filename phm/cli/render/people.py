"""Who uses the service and who was seen: the service users, the access log's answer about one person and a
re-identified worklist (to the terminal only)."""

from __future__ import annotations

from phm.cli.common import console
from phm.cli.render.tables import table


def users(found: list) -> None:
    table(
        "Service users",
        ["name", "role", "practices", "status", "created", "changed"],
        [
            [
                u.name,
                u.role.value,
                ", ".join(u.practices),
                "disabled" if u.disabled else "active",
                u.created,
                u.changed or "",
            ]
            for u in found
        ],
    )


def access_views(rows: list[dict], entries: int) -> None:
    """Who saw (or asked for) one person: the answer to a subject-access request."""
    table(
        f"Access log: {len(rows)} request(s) about this person, of {entries:,} logged",
        ["when (UTC)", "user", "role", "request", "outcome", "what"],
        [
            [
                r["at"],
                r["user"],
                r.get("role") or "",
                f"{r.get('method', '')} {r.get('route', '')}".strip(),
                r.get("status", ""),
                r["what"],
            ]
            for r in rows
        ],
    )


def reidentified(result) -> None:
    """A re-identified worklist (to the terminal only)."""
    r = result.summary
    table(
        f"Named worklist for direct care, {r.snapshot_date} (practices {', '.join(r.practices)})",
        ["rank", "NHS number", "name", "date of birth", *r.extra_columns, "practice", "risk", "band"],
        [
            [
                p["rank"],
                f"{p['nhs_number'][:3]} {p['nhs_number'][3:6]} {p['nhs_number'][6:]}",
                p["name"],
                p["date_of_birth"],
                *[p["details"].get(c, "") for c in r.extra_columns],
                p["practice_code"],
                f"{100 * p['risk']:.1f}%",
                p["band"],
            ]
            for p in result.people
        ],
        right={"rank", "risk"},
    )
    console.print(
        f"{r.rows_read:,} rows read: {r.matched:,} on your worklist ({r.min_band.value} band or above), "
        f"{r.not_on_worklist:,} not, {r.malformed:,} with a malformed NHS number"
        + (
            f" (rows {', '.join(map(str, r.malformed_rows[:50]))}{' ...' if r.malformed > 50 else ''})"
            if r.malformed
            else ""
        )
        + "."
    )
