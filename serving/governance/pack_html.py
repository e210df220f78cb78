"""Self-contained HTML pages of the CSO pack: deployment record, TRIPOD+AI checklist, publishable bias report."""

from __future__ import annotations

from html import escape

CSS = (
    "body{font-family:Arial,sans-serif;margin:2rem;max-width:72rem;color:#212b32}table{border-collapse:collapse;"
    "margin:.5rem 0 1.5rem}th,td{border:1px solid #d8dde0;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#005eb8;color:#fff}h1,h2{color:#005eb8}.human{background:#fff9c4}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en-GB'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _table(head: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    h = "".join(f"<th scope='col'>{escape(x)}</th>" for x in head)
    body = "".join(
        f"<tr{f' class={chr(39)}{classes[i]}{chr(39)}' if classes and classes[i] else ''}>"
        + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in r)
        + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def deployment_record(rec: dict, name: str, version: int) -> str:
    s = rec["sign_off"]
    body = (
        f"<p>{escape(rec['standard'])}.</p><h2>Intended purpose</h2><p>{escape(rec['intended_purpose'])}</p>"
        f"<p>Not for: {escape(rec['not_for'])}</p><h2>Users</h2><p>{escape(rec['users'])}</p>"
        f"<h2>Configuration signed off</h2><p>Fingerprint <code>{escape(str(rec['configuration_sha256']))}</code></p>"
        "<h2>Hazards and controls</h2>"
        + _table(
            [
                "ID",
                "hazard",
                "cause",
                "effect",
                "controls",
                "evidence",
                "severity",
                "risk before",
                "risk after",
                "source",
            ],
            [
                [
                    h["id"],
                    h["hazard"],
                    h["cause"],
                    h["effect"],
                    h["controls"],
                    h["evidence"],
                    h["severity"],
                    h["risk_before"],
                    h["risk_after"],
                    h["source"],
                ]
                for h in rec["hazards"]
            ],
        )
        + f"<h2>Residual risk</h2><p>{rec['residual_risk']['rating']} ({escape(rec['residual_risk']['words'])}): "
        f"{escape(rec['residual_risk']['statement'])}</p><h2>Sign-off</h2><p>"
        + (
            f"Approved by <strong>{escape(str(s['by']))}</strong> at {escape(str(s['at']))} (hazard log entry "
            f"{s['hazard_log_entry']})."
            if s["signed"]
            else f"Not signed off: {escape(str(s['state']))}."
        )
        + "</p><h2>For a person to complete</h2><ul class='human'>"
        + "".join(f"<li>{escape(x)}</li>" for x in rec["human"])
        + "</ul>"
    )
    return _page(f"Deployment record (DCB0160): {name} version {version}", body)


def checklist(items: list[dict], name: str, version: int) -> str:
    rows = [[i["item"], i["topic"], i["answer"], i["evidence"], i["source"]] for i in items]
    body = "<p>Filled from the run; rows marked <em>human</em> need an answer from a person.</p>" + _table(
        ["item", "topic", "answer", "evidence", "source"],
        rows,
        ["human" if i["source"] == "human" else "" for i in items],
    )
    return _page(f"TRIPOD+AI checklist: {name} version {version}", body)


def public_report(pub: dict, name: str, version: int) -> str:
    parts = [
        f"<p>{escape(pub['disclosure']['words'])} Figures that could reveal fewer than "
        f"{pub['disclosure']['policy']['hidden_counts'].split('-')[-1]} people are not shown (*).</p>",
        f"<p>People: {pub['population']['people'] if pub['population']['people'] is not None else '*'}; with the "
        f"outcome: {pub['population']['with_outcome'] if pub['population']['with_outcome'] is not None else '*'}; "
        f"flags: {pub['flags']}.</p>",
    ]
    if pub["overall"]:
        parts.append(
            "<h2>Performance for everyone</h2>"
            + _table(["measure", "value"], [[k, v] for k, v in pub["overall"].items()])
        )

    def star(v):
        return "*" if v is None else v

    for g in pub["groupings"]:
        metrics = sorted({m for r in g["groups"] for m in r["metrics"]})
        parts.append(
            f"<h2>{escape(g['title'])}</h2><p>Reference: {escape(g['reference'])}</p>"
            + _table(
                ["group", "people", "with outcome", *metrics],
                [
                    [
                        r["group"],
                        star(r["people"]),
                        star(r["with_outcome"]),
                        *[star(r["metrics"].get(m)) for m in metrics],
                    ]
                    for r in g["groups"]
                ],
            )
        )
    for n in pub["need_at_equal_score"]:
        parts.append(
            f"<h2>Need at equal score: {escape(n['title'])}, {escape(n['measure'])}</h2>"
            + _table(
                ["group", "people", "ratio", "interval", "status"],
                [
                    [r["group"], star(r["people"]), star(r["ratio"]), star(r["ratio_ci"]), r["status"]]
                    for r in n["rows"]
                ],
            )
        )
    return _page(f"Bias report for publication: {name} version {version}", "".join(parts))
