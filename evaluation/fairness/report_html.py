"""The bias report as one self-contained HTML page (inline CSS and SVG charts, no scripts, no network)
that a clinical safety officer can read without code."""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evaluation.fairness import report_sections  # noqa: E402
from evaluation.fairness.narrative import METRIC_NAMES, SHORT  # noqa: E402
from evaluation.fairness.results import AuditResult, GroupingResult  # noqa: E402

COLOURS = ["#005EB8", "#D5281B", "#007F3B", "#FFB81C", "#330072", "#AE2573", "#00A499", "#425563"]
STATUS_CLASS = {
    "flag": "bad",
    "uncertain": "warn",
    "small group": "muted",
    "explained by age and sex": "info",
    "within tolerance": "ok",
    "reference": "muted",
    "not estimable": "muted",
    "shown only": "muted",
}
CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#212B32;background:#fff;margin:0;line-height:1.5}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
header.banner{background:#005EB8;color:#fff;padding:16px 24px}
header.banner h1{margin:0;font-size:1.6em} header.banner p{margin:4px 0 0}
h2{border-bottom:2px solid #005EB8;padding-bottom:4px;margin-top:2em} h3{margin-top:1.5em}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:.92em}
caption{text-align:left;font-weight:bold;padding:4px 0}
th,td{border:1px solid #AEB7BD;padding:4px 6px;text-align:right;vertical-align:top}
th{background:#E8EDEE} td.l,th.l{text-align:left}
.verdict{padding:12px 16px;border-left:8px solid;margin:16px 0;font-size:1.1em}
.verdict.pass{border-color:#007F3B;background:#E6F2EB} .verdict.fail{border-color:#D5281B;background:#FBE9E7}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-weight:bold;white-space:nowrap}
.bad{background:#D5281B;color:#fff} .warn{background:#FFB81C;color:#212B32} .ok{background:#007F3B;color:#fff}
.info{background:#005EB8;color:#fff} .muted{background:#E8EDEE;color:#212B32}
figure{margin:12px 0} figcaption{font-size:.9em;color:#4C6272} svg{max-width:100%;height:auto}
details{margin:8px 0} summary{cursor:pointer;font-weight:bold}
a:focus,summary:focus{outline:3px solid #FFB81C}
.small{font-size:.85em;color:#4C6272} code{background:#F0F4F5;padding:0 3px}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _bold(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _e(text))


def _f(x, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def _ci(v, fmt: str = ".2f", pct: bool = False) -> str:
    if v.value is None:
        return "–"
    show = (lambda x: f"{x:.1%}") if pct else (lambda x: format(x, fmt))  # noqa: E731
    lo, hi = v.ci
    return show(v.value) + ("" if lo is None else f" <span class='small'>({show(lo)}–{show(hi)})</span>")


def _badge(status: str) -> str:
    return f"<span class='badge {STATUS_CLASS.get(status, 'muted')}'>{_e(status)}</span>"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def _forest(g: GroupingResult, metrics: list[str], tolerance: tuple[float, float]) -> str:
    groups = [r.group for r in g.groups if not r.is_reference]
    if not groups or not metrics:
        return ""
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(2.6 * len(metrics) + 1.5, 0.32 * len(groups) + 1.2), sharey=True, squeeze=False
    )
    ys = np.arange(len(groups))[::-1]
    for ax, m in zip(axes[0], metrics):
        comp = {c.group: c for c in g.comparisons if c.metric == m}
        ax.axvspan(*tolerance, color="#E6F2EB", zorder=0)
        ax.axvline(1, color="#425563", lw=0.8)
        for y, name in zip(ys, groups):
            c = comp.get(name)
            if c is None or c.ratio is None:
                continue
            colour = {"flag": "#D5281B", "uncertain": "#B27A00", "small group": "#768692"}.get(c.status, "#005EB8")
            lo, hi = c.ratio_ci
            if lo is not None:
                ax.plot([max(lo, 0.05), min(hi, 20)], [y, y], color=colour, lw=1.5)
            ax.plot(min(max(c.ratio, 0.05), 20), y, "o", color=colour, ms=5)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(0.25, 4)
        ax.set_xticks([0.25, 0.5, 0.8, 1, 1.25, 2, 4])
        ax.set_xticklabels(["0.25", "0.5", "0.8", "1", "1.25", "2", "4"], fontsize=7)
        ax.set_title(SHORT.get(m, m), fontsize=9)
    axes[0][0].set_yticks(ys)
    axes[0][0].set_yticklabels([n[:34] for n in groups], fontsize=8)
    fig.suptitle(f"Ratio to {g.reference} (green band = tolerance)", fontsize=9, y=1.02)
    return _svg(fig)


def _calibration(g: GroupingResult) -> str:
    rows = [r for r in g.groups if "mean_predicted" in r.metrics]
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    ys = np.arange(len(rows))[::-1]
    obs = [r.metrics["event_rate"].value or 0 for r in rows]
    pred = [r.metrics["mean_predicted"].value or 0 for r in rows]
    ax.barh(ys + 0.2, obs, height=0.38, color="#425563", label="observed")
    ax.barh(ys - 0.2, pred, height=0.38, color="#005EB8", label="mean predicted")
    ax.set_yticks(ys)
    ax.set_yticklabels([r.group[:34] for r in rows], fontsize=8)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Observed outcome rate and mean predicted risk", fontsize=9)
    return _svg(fig)


def _curves(g: GroupingResult) -> str:
    names = [r.group for r in g.groups if not r.small]
    if not g.curves or not 1 < len(names) <= 8:
        return ""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, name in enumerate(names):
        pts = sorted((c for c in g.curves if c.group == name), key=lambda c: c.share)
        share = [c.share for c in pts]
        axes[0].plot(share, [c.tpr or 0 for c in pts], "-o", ms=3, color=COLOURS[i % 8], label=name[:30])
        axes[1].plot(share, [c.ppv or 0 for c in pts], "-o", ms=3, color=COLOURS[i % 8])
    for ax, title in zip(axes, ("True positive rate", "Positive predictive value")):
        ax.set_xscale("log")
        ax.set_xlabel("share of whole population flagged", fontsize=8)
        ax.set_title(title + " by policy", fontsize=9)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].legend(fontsize=7)
    return _svg(fig)


def _group_table(g: GroupingResult, probabilities: bool, flag_metrics: list[str]) -> str:
    cols = ["rows", "outcomes", "outcome rate"]
    if probabilities:
        cols += ["mean predicted", "predicted / observed", "calibration slope"]
    cols += ["AUROC", "share flagged", "TPR", "FPR", "PPV", "status"]
    head = "".join(f"<th scope='col'>{_e(c)}</th>" for c in cols)
    body = []
    worst_order = ["flag", "uncertain", "explained by age and sex", "small group", "within tolerance"]
    for r in g.groups:
        m = r.metrics
        statuses = [c.status for c in g.comparisons if c.group == r.group and c.metric in flag_metrics]
        status = (
            "reference"
            if r.is_reference
            else next((s for s in worst_order if s in statuses), "small group" if r.small else "within tolerance")
        )
        many = r.people is not None and r.people != r.n
        cells = [
            f"{r.n:,}" + (f" <span class='small'>({r.people:,} people)</span>" if many else ""),
            f"{r.events:,}" + (f" <span class='small'>({r.people_with_events:,} people)</span>" if many else ""),
            _pct(m["event_rate"].value),
        ]
        if probabilities:
            cells += [_pct(m["mean_predicted"].value), _ci(m["predicted_to_observed"]), _ci(m["calibration_slope"])]
        cells += [
            _ci(m["auroc"]),
            _pct(m["selection_rate"].value),
            _ci(m["tpr"], pct=True),
            _ci(m["fpr"], pct=True),
            _ci(m["ppv"], pct=True),
            _badge(status),
        ]
        label = _e(r.group) + (" <span class='small'>(reference)</span>" if r.is_reference else "")
        body.append(f"<tr><th scope='row' class='l'>{label}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f"<table><caption>{_e(g.title)}: metrics by group with 95% intervals</caption>"
        f"<thead><tr><th scope='col' class='l'>group</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _coverage(g: GroupingResult, descriptions: dict[str, str]) -> str:
    if not g.coverage:
        return ""
    keys = [k for k in g.coverage[0] if k not in ("group", "n")]
    head = "".join(f"<th scope='col'>{_e(descriptions.get(k, k))}</th>" for k in keys)
    rows = []
    for row in g.coverage:
        cells = []
        for k in keys:
            v = row.get(k)
            share = k in ("ethnicity_recorded", "imd_linked", "gp_coding_completeness")
            cells.append("–" if v is None else (f"{v:.1%}" if share else f"{v:.2f}"))
        rows.append(
            f"<tr><th scope='row' class='l'>{_e(row['group'])}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    return (
        f"<table><caption>Data coverage by group</caption><thead><tr><th scope='col' class='l'>group</th>{head}"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _comparison_rows(items, titles: dict[str, str]) -> str:
    rows = []
    for c in items:
        adj = "–" if c.adjusted_ratio is None else f"{c.adjusted_ratio:.2f}"
        ci = "" if c.ratio_ci[0] is None else f" ({c.ratio_ci[0]:.2f}–{c.ratio_ci[1]:.2f})"
        fmt = (
            (lambda x: _pct(x))
            if c.metric in ("tpr", "fpr", "ppv", "fnr", "selection_rate")
            else (lambda x: _f(x, ".2f"))
        )  # noqa: E731
        rows.append(
            f"<tr><td class='l'>{_e(titles.get(c.grouping, c.grouping))}</td><td class='l'>{_e(c.group)}</td>"
            f"<td class='l'>{_e(METRIC_NAMES.get(c.metric, c.metric))}</td><td>{fmt(c.value)}</td>"
            f"<td>{fmt(c.reference_value)} <span class='small'>{_e(c.reference_group)}</span></td>"
            f"<td>{_f(c.ratio, '.2f')}{ci}</td><td>{adj}</td><td>{_badge(c.status)}</td></tr>"
        )
    head = "".join(
        f"<th scope='col'>{h}</th>"
        for h in (
            "grouping",
            "group",
            "metric",
            "value",
            "reference",
            "ratio (95% CI)",
            "age-sex adjusted ratio",
            "status",
        )
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render(result: AuditResult) -> str:
    s, pop, cfg = result.subject, result.population, result.config
    titles = {g.name: g.title for g in result.groupings}
    title = f"Bias report: {s.get('model', s.get('name', 'risk score'))}" + (
        f" version {s['version']}" if s.get("version") is not None else ""
    )
    verdict = (
        "<div class='verdict pass' role='status'><strong>Passed.</strong> No group was flagged.</div>"
        if result.passed
        else f"<div class='verdict fail' role='alert'><strong>{len(result.flags)} flag(s) need a decision.</strong> "
        + (
            "A clinical safety officer must accept them with controls, or reject this model, before it can "
            "be promoted.</div>"
            if s.get("kind") == "registered model"
            else "The deploying organisation's clinical safety officer should assess them before this tool's "
            "scores are relied on.</div>"
        )
    )
    parts = [
        f"<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width, initial-scale=1'><title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header class='banner'><h1>{_e(title)}</h1><p>Outcome: {_e(s.get('outcome', ''))}. "
        f"Data: {_e(s.get('data', s.get('source', '')))}. Created {_e(result.created_at)}.</p></header><main>",
        verdict,
        "<h2 id='summary'>Summary in plain English</h2>",
        "".join(f"<p>{_bold(p)}</p>" for p in result.summary),
    ]
    parts.append("<h2 id='flags'>Flagged findings</h2>")
    parts.append(_comparison_rows(result.flags, titles) if result.flags else "<p>None.</p>")
    if result.hazards:
        rows = "".join(
            f"<tr><td class='l'>{_e(h.hazard_id)}</td><td class='l'>{_e(h.hazard)}</td><td class='l'>{_e(h.cause)}</td>"
            f"<td class='l'>{_e(h.effect)}</td><td class='l'>{_e(h.existing_controls)}</td><td class='l'>{_e(h.severity)}</td>"
            f"<td class='l'>{_e(h.likelihood)}</td><td>{h.risk_rating}</td><td class='l'>{_e(h.residual_risk)}</td></tr>"
            for h in result.hazards
        )
        head = "".join(
            f"<th scope='col' class='l'>{h}</th>"
            for h in (
                "ID",
                "hazard",
                "cause",
                "effect",
                "existing controls",
                "severity",
                "likelihood",
                "risk (1-5)",
                "residual risk",
            )
        )
        parts.append(
            f"<h2 id='hazards'>Hazards raised (DCB0129)</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
    if result.mitigation:
        mit = result.mitigation
        rows = "".join(
            f"<tr><th scope='row' class='l'>{_e(r.group)}</th><td>{r.n:,}</td><td>{r.threshold_before:.4f}</td><td>{r.threshold_after:.4f}</td>"
            + "".join(
                f"<td>{_pct(r.before[k])}</td><td>{_pct(r.after[k])}</td>"
                for k in ("selection_rate", "tpr", "fpr", "ppv")
            )
            + "</tr>"
            for r in mit.rows
        )
        head = (
            "<tr><th scope='col' class='l'>group</th><th scope='col'>people</th><th scope='col'>threshold before</th>"
            "<th scope='col'>after</th>"
            + "".join(
                f"<th scope='col'>{k} before</th><th scope='col'>after</th>"
                for k in ("share flagged", "TPR", "FPR", "PPV")
            )
            + "</tr>"
        )
        ob, oa = mit.overall_before, mit.overall_after
        parts.append(
            f"<h2 id='mitigation'>Mitigation tried (not applied): {_e(mit.method)}</h2>"
            f"<p>Target: {_e(mit.target)}. Fitted on {_e(mit.fitted_on)}; evaluated on {_e(mit.evaluated_on)}. "
            f"Overall TPR {_pct(ob['tpr'])} → {_pct(oa['tpr'])}, PPV {_pct(ob['ppv'])} → {_pct(oa['ppv'])}, "
            f"share flagged {_pct(ob['selection_rate'])} → {_pct(oa['selection_rate'])}.</p>"
            f"<table><caption>Before and after, by {_e(mit.grouping)}</caption><thead>{head}</thead><tbody>{rows}</tbody></table>"
            + "".join(f"<p class='small'>{_e(n)}</p>" for n in mit.notes)
        )
    parts.append(report_sections.absolute(result.absolute, cfg.level))
    parts.append(report_sections.need(result.need, pop.get("need_note")))
    parts.append("<h2 id='groups'>Results by grouping</h2>")
    flag_metrics = cfg.flag_metrics
    forest_metrics = [m for m in flag_metrics if pop["scores_are_probabilities"] or m != "predicted_to_observed"]
    descriptions = pop.get("coverage_descriptions", {})
    for g in result.groupings:
        parts.append(
            f"<section aria-labelledby='g-{g.name}'><h3 id='g-{g.name}'>{_e(g.title)}</h3>"
            f"<p>Reference group: <strong>{_e(g.reference)}</strong>. {_e(g.reference_note)}"
            + (f" No one in these data (not assessed): {_e(', '.join(g.absent))}." if g.absent else "")
            + (
                " Ratios are also shown against the reference re-weighted to each group's age and sex mix."
                if g.adjusted
                else ""
            )
            + "</p>"
        )
        parts.append(_group_table(g, pop["scores_are_probabilities"], flag_metrics))
        forest = _forest(g, forest_metrics, cfg.tolerance)
        if forest:
            parts.append(
                f"<figure>{forest}<figcaption>Ratios to {_e(g.reference)} with intervals for "
                f"{', '.join(SHORT[m] for m in forest_metrics)} (simultaneous {cfg.level:.0%} across the judged comparisons "
                "of this grouping); red = flagged, amber = uncertain.</figcaption></figure>"
            )
        if pop["scores_are_probabilities"]:
            parts.append(
                f"<figure>{_calibration(g)}<figcaption>Calibration in the large: observed outcome rate against "
                "mean predicted risk in each group.</figcaption></figure>"
            )
        curves = _curves(g)
        if curves:
            parts.append(
                f"<figure>{curves}<figcaption>How true positive rate and positive predictive value change with "
                "the share of the population flagged (all thresholds).</figcaption></figure>"
            )
        parts.append(_coverage(g, descriptions) + "</section>")
    if result.uncertain:
        parts.append(
            f"<details><summary>{len(result.uncertain)} uncertain comparison(s): outside the band, but the "
            f"interval includes parity</summary>{_comparison_rows(result.uncertain, titles)}</details>"
        )
    lo, hi = cfg.tolerance
    parts.append(
        "<h2 id='how'>How to read this report</h2><ul>"
        f"<li><strong>Operating policy</strong>: {_e(pop['policy'])}; {pop['flagged']:,} of {pop['rows']:,} flagged.</li>"
        "<li><strong>TPR</strong> (true positive rate): of people who had the outcome, the share the model flagged. "
        "<strong>FPR</strong>: of people who did not, the share flagged anyway. <strong>PPV</strong>: of people flagged, "
        "the share who had the outcome. <strong>Predicted / observed</strong>: below 1 means the model under-predicts.</li>"
        f"<li><strong>Ratio</strong>: the group's value divided by the reference group's. A ratio outside {lo:g}–{hi:g} "
        "is flagged when its 95% bootstrap interval excludes 1 and it is not explained by the group's age and sex mix; "
        "otherwise it is marked uncertain or explained.</li>"
        f"<li><strong>Small groups</strong> (fewer than {cfg.min_group_size} people or {cfg.min_group_events} outcomes) are "
        "shown but not judged.</li>"
        f"<li>Intervals: {cfg.bootstrap_draws:,} bootstrap draws ({_e(pop['bootstrap'])}).</li></ul>"
        f"<p class='small'>Report SHA-256: <code>{_e(result.report_sha256)}</code>. Subject: "
        f"{_e(', '.join(f'{k}={v}' for k, v in s.items()))}.</p></main></body></html>"
    )
    return "".join(parts)
