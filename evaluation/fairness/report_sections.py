"""Sections of the bias report beyond the score ratios: performance for everyone (absolute) and need at
equal score."""

from __future__ import annotations

from html import escape

from evaluation.fairness.results import AbsoluteResult, NeedGroupingResult

STATUS_CLASS = {
    "flag": "bad",
    "uncertain": "warn",
    "small group": "muted",
    "explained by age and sex": "info",
    "less need at equal score": "info",
}


def _f(x, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _badge(status: str) -> str:
    return f"<span class='badge {STATUS_CLASS.get(status, 'ok')}'>{escape(status)}</span>"


def _ci(lo, hi, fmt: str = ".2f") -> str:
    return "" if lo is None or hi is None else f" <span class='small'>({format(lo, fmt)}–{format(hi, fmt)})</span>"


ABSOLUTE_NAMES = {
    "auroc": ("AUROC (discrimination)", ".3f"),
    "observed_to_expected": ("observed / expected outcomes", ".2f"),
    "calibration_in_the_large": ("calibration in the large (log-odds; 0 = right on average)", ".2f"),
    "calibration_slope": ("calibration slope (1 = ideal)", ".2f"),
    "mean_predicted": ("mean predicted risk", ".2%"),
    "event_rate": ("observed outcome rate", ".2%"),
}


def absolute(result: AbsoluteResult | None, level: float) -> str:
    if result is None:
        return ""
    rows = []
    for key, (name, fmt) in ABSOLUTE_NAMES.items():
        m = result.metrics.get(key)
        if m is None:
            continue
        band = result.bands.get(key)
        rows.append(
            f"<tr><th scope='row' class='l'>{escape(name)}</th><td>{_f(m.value, fmt)}{_ci(*m.ci, fmt)}</td>"
            f"<td>{'' if band is None else f'{band[0]:g}–{band[1]:g}'}</td></tr>"
        )
    verdict = (
        "<p><strong>Miscalibrated for everyone:</strong> "
        + "; ".join(f"{escape(f.metric.replace('_', ' '))} {f.ratio:.2f}" for f in result.flags)
        + ".</p>"
        if result.flags
        else "<p>Calibrated for everyone within the tolerance.</p>"
    )
    return (
        f"<h2 id='absolute'>Performance for everyone</h2>{verdict}<table><thead><tr><th scope='col' class='l'>measure"
        f"</th><th scope='col'>value ({level:.0%} CI)</th><th scope='col'>tolerance</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table><p class='small'>Ratios between groups cannot show a score that is "
        "wrong for everyone: these absolute figures sit beside them.</p>"
    )


def need(blocks: list[NeedGroupingResult], note: str | None) -> str:
    if not blocks:
        return f"<h2 id='need'>Need at equal score</h2><p>{escape(note)}</p>" if note else ""
    parts = [
        "<h2 id='need'>Need at equal score</h2><p>Within each tenth of the risk score, groups are compared on "
        "need that does not depend on service use. A ratio above 1 means the group is sicker than the reference "
        "group at the same score: the score under-ranks its need.</p>"
    ]
    for b in blocks:
        head = "".join(
            f"<th scope='col'>{h}</th>"
            for h in (
                "group",
                "observed mean",
                "expected at same score",
                "ratio (simultaneous CI)",
                "age-sex adjusted",
                "status",
            )
        )
        rows = "".join(
            f"<tr><td class='l'>{escape(c.group)}</td><td>{_f(c.value, '.3f')}</td><td>{_f(c.reference_value, '.3f')}</td>"
            f"<td>{_f(c.ratio)}{_ci(*c.ratio_ci)}</td><td>{_f(c.adjusted_ratio)}</td><td>{_badge(c.status)}</td></tr>"
            for c in b.comparisons
        )
        groups = sorted({c.group for c in b.deciles})
        dhead = "".join(f"<th scope='col'>{d}</th>" for d in range(1, 11))
        drows = "".join(
            f"<tr><th scope='row' class='l'>{escape(g)}</th>"
            + "".join(
                f"<td>{_f(c.mean.value)}</td>"
                for c in sorted((x for x in b.deciles if x.group == g), key=lambda x: x.decile)
            )
            + "</tr>"
            for g in groups
        )
        parts.append(
            f"<section><h3>{escape(b.title)}: {escape(b.measure_title)}</h3><p>Reference group: "
            f"<strong>{escape(b.reference)}</strong>.</p><table><thead><tr>{head}</tr></thead><tbody>{rows}"
            f"</tbody></table><details><summary>Mean by score decile (1 = lowest risk)</summary><table><thead>"
            f"<tr><th scope='col' class='l'>group</th>{dhead}</tr></thead><tbody>{drows}</tbody></table>"
            "</details></section>"
        )
    return "".join(parts)
