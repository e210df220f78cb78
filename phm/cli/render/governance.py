"""What the governance commands print: a fairness audit's flags, a version's safety case and a monitoring run."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from phm.cli.common import console
from phm.cli.render.tables import table


def audit(result, html_path: Path, json_path: Path) -> None:
    from evaluation.fairness.narrative import SHORT

    titles = {
        **{n.name: n.title for n in result.need},
        **{g.name: g.title for g in result.groupings},
        "overall": "Everyone",
    }
    pop = result.population
    rows = "" if pop["rows"] == pop["people"] else f" ({pop['rows']:,} scored rows)"
    console.print(f"[bold]{pop['people']:,}[/] people{rows}, {pop['events']:,} outcomes; policy: {pop['policy']}")
    if result.absolute is not None:
        from evaluation.fairness.narrative import absolute_sentence

        console.print(absolute_sentence(result).replace("**", ""), soft_wrap=True)
    from evaluation.fairness.narrative import unjudged

    blind = unjudged(result)
    for line in blind:
        console.print(line, soft_wrap=True)
    passed = (
        "No flags: nothing could be judged" if len(blind) == len(result.groupings) else "No flags: the audit passed"
    )
    table(
        "Flags" if result.flags else passed,
        ["grouping", "group", "metric", "value", "reference", "ratio (95% CI)", "adjusted"],
        [
            [
                titles.get(c.grouping, c.grouping),
                c.group,
                SHORT.get(c.metric, c.metric),
                f"{c.value:.3g}",
                f"{c.reference_value:.3g} ({c.reference_group})",
                f"{c.ratio:.2f} ({c.ratio_ci[0]:.2f}-{c.ratio_ci[1]:.2f})",
                "" if c.adjusted_ratio is None else f"{c.adjusted_ratio:.2f}",
            ]
            for c in result.flags
        ],
    )
    if result.uncertain:
        console.print(f"{len(result.uncertain)} uncertain comparison(s) (outside the band, interval includes parity).")
    if result.mitigation:
        m = result.mitigation
        console.print(
            f"Mitigation shown (not applied): {m.method}; overall TPR {m.overall_before['tpr']:.1%} -> "
            f"{m.overall_after['tpr']:.1%}, PPV {m.overall_before['ppv']:.1%} -> {m.overall_after['ppv']:.1%}"
        )
    console.print(f"Bias report: [bold]{html_path}[/] (JSON: {json_path}); SHA-256 {result.report_sha256[:16]}...")


def safety_case(summary: dict) -> None:
    """A version's safety case: may it be used, the configuration in force and every difference from the approved."""
    cfg = summary["configuration"]
    head = f"{summary['model']} version {summary['version']}"
    console.print(
        (f"[green]{head}: in use[/] — " if summary["ok"] else f"[red]{head}: may not be used[/] — ")
        + summary["reason"],
        soft_wrap=True,
    )
    rows = [
        ["report", str(summary["report_sha256"] or "not audited")[:16] + f" ({summary['flags']} flag(s))"],
        ["operating policy", f"acts on the top {100 * cfg['top_share']:.4g}%"],
        *(
            [["band cut-offs", ", ".join(f"{n} top {100 * v:.4g}%" for n, v in cfg["bands"].items())]]
            if cfg.get("bands")
            else []
        ),
        ["feature definitions", f"{cfg['feature_hash']} (trained on {cfg['trained_feature_hash']})"],
        ["population", ", ".join(f"{k} {v}" for k, v in cfg["cohort"].items())],
        ["outcome", ", ".join(f"{k} {v}" for k, v in cfg["outcome"].items())],
        ["data source", cfg["data_source"]],
        ["configuration", summary["configuration_sha256"][:16]],
        [
            "approved configuration",
            (summary["approved_configuration_sha256"] or "none")[:16]
            + (f" by {summary['approved_by']} on {summary['approved_at']}" if summary["approved_by"] else ""),
        ],
    ]
    table(f"Configuration of {head} in force now", ["", "value"], rows)
    for d in summary["differences"]:
        console.print(f"  [yellow]changed:[/] {d}", soft_wrap=True)


def monitoring(result, saved: Path) -> None:
    perf = result.performance
    name = result.model
    console.rule(f"{name} version {result.version} as at {result.as_of}")
    if perf:
        console.print(
            f"Outcomes of {result.outcome_index_date} ({int(perf['people']):,} people): AUROC "
            f"{perf['auroc']:.3f} (sign-off {result.signoff['auroc']:.3f}), calibration slope "
            f"{perf['calibration_slope']:.2f}, observed/expected {perf['observed_to_expected']:.2f}"
        )
    if result.not_judged:
        console.print(f"[yellow]{escape(result.not_judged)}.[/]")
    top = sorted(result.drift, key=lambda d: -d["psi"])[:3]
    console.print(
        "Largest shifts since "
        + result.reference_index_date
        + ": "
        + ", ".join(f"{d['feature']} PSI {d['psi']:.2f}" for d in top)
    )
    table(
        f"{len(result.alerts)} alert(s)",
        ["kind", "metric", "about", "value", "threshold", "what"],
        [
            [a.kind, a.metric, a.subject, "" if a.value is None else f"{a.value:.3f}", a.threshold, a.message]
            for a in result.alerts
        ],
    )
    console.print(
        (
            "[red]Retraining is due[/] (" + ", ".join(result.retrain_reasons) + "): run `phm retrain "
            f"{name.replace('_', '-')}`; a safety officer must approve before promotion."
        )
        if result.retrain_due
        else "[green]No alerts: no retraining due.[/]"
        if not result.not_judged
        else "[yellow]No drift alerts; decay not judged yet (above).[/]"
    )
    console.print(f"Saved {saved}; logged to MLflow experiment phm-monitoring.")
