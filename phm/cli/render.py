"""Every table and summary the commands print, in one place (rich tables on the console).

On a terminal, tables fit its width, folding long values within their cells (never cut with "…"). Anywhere
else (output piped to a file or another program, a CI log, no COLUMNS), a table is printed at its natural width
with its title on a line of its own, so every value stays whole on one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from phm.cli.common import console

# England figures the synthetic ICS is checked against (REFERENCE.md, ~).
ENGLAND = {
    "emergency_admissions_per_1000_person_years": "~115",
    "emergency_los_mean_days": "~4.5-6",
    "deaths_per_1000_person_years": "~9-10",
    "age 0-15": "~19%", "age 16-64": "~63%", "age 65+": "~18.5%", "age 85+": "~2.5%",
    "White": "~81%", "Asian": "~10%", "Black": "~4%", "Mixed": "~3%", "Other": "~2%",
    "imd": "10% per decile",
}


def table(title: str, columns: list[str], rows: list[list[Any]], right: set[str] | None = None,
          caption: str | None = None) -> None:
    """Print a table; `right` names the columns aligned right. Every row has one cell per column."""
    if any(len(r) != len(columns) for r in rows):
        raise ValueError(f"table {title!r}: a row does not have one value per column {columns}")
    terminal = console.is_terminal
    t = Table(title=title if terminal else None, caption=caption if terminal else None)
    for col in columns:
        t.add_column(col, justify="right" if right and col in right else "left", overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    if terminal:
        console.print(t)
        return
    width = console.measure(t, options=console.options.update_width(1_000_000)).maximum
    console.print(title, highlight=False)
    terminal_width, console.width = console.width, max(width, 1)
    try:
        console.print(t)
    finally:
        console.width = terminal_width
    if caption:
        console.print(caption, highlight=False)


def extracts(rows: dict[str, int]) -> None:
    table("Extracts", ["table", "rows"], [[name, f"{n:,}"] for name, n in rows.items()], right={"rows"})


def realism(summary: dict) -> None:
    rows = [[key.replace("_", " "), summary[key], ENGLAND[key]] for key in
            ("emergency_admissions_per_1000_person_years", "emergency_los_mean_days", "deaths_per_1000_person_years")]
    rows.append(["emergency LOS median days", summary["emergency_los_median_days"], "~2-3"])
    rows += [[f"age {band}", f"{share:.1%}", ENGLAND[f"age {band}"]] for band, share in summary["age_bands"].items()]
    rows += [[f"ethnicity {group} (of recorded)", f"{share:.1%}", ENGLAND[group]]
             for group, share in summary["ethnicity_broad_among_known"].items()]
    rows.append(["ethnicity recorded", f"{summary['ethnicity_recorded_known']:.1%}", "~90%"])
    rows.append(["IMD decile shares (1..10)", " ".join(f"{v:.0%}" for v in summary["imd_decile_shares"].values()),
                 ENGLAND["imd"]])
    for key, what, england in (("emergency_12m", "emergency admission", "~5-8%"),
                               ("acsc_12m", "ACSC emergency admission", "~2%")):
        for day, fig in summary.get(key, {}).items():
            rows.append([f"{what} in 12m from {day}", f"{fig['observed_rate']:.1%} (truth "
                         f"{fig['mean_true_probability']:.1%}, oracle AUROC {fig['oracle_auroc']:.3f})", england])
    if "acsc_share_of_emergency_admissions" in summary:
        rows.append(["ACSC share of emergency admissions", f"{summary['acsc_share_of_emergency_admissions']:.1%}",
                     "~1 in 5"])
    for site in summary["sites"]:
        rows.append([f"{site['site_code']} G&A occupancy (beds {site['ga_beds']})",
                     f"mean {site['ga_occupancy_mean']:.0%}, winter {site['ga_occupancy_winter']:.0%}", "~90%, >92% winter"])
    if summary.get("exacerbation_14d"):
        f = summary["exacerbation_14d"]
        rows.append(["COPD exacerbations per patient-year", summary["copd_exacerbations_per_patient_year"], "~1-2"])
        rows.append(["flare-up within 14 days (monitored)",
                     f"{f['observed_rate_14d']:.1%} (oracle AUROC {f['oracle_auroc']:.3f})", ""])
    table("Realism check (synthetic vs England)", ["measure", "synthetic", "England"], rows,
          right={"synthetic", "England"})


def conversion(c) -> None:
    table(f"Mapped {c.format} folder {c.source}", ["file read", "rows"],
          [[name, f"{rows:,}"] for name, rows in c.files_read.items()], right={"rows"})
    if c.missing_optional_files:
        console.print(f"Optional files not supplied: {', '.join(c.missing_optional_files)}")
    written = ", ".join(f"{k} {v:,}" for k, v in c.rows_written.items())
    console.print(f"Staged PHM extracts in {c.staged}: {written}")
    for key, rows in c.rejected.items():
        console.print(f"  quarantined {rows:,} row(s): {key}")
    for note in c.notes:
        console.print(f"[yellow]Note:[/] {note}", soft_wrap=True)


def load_report(report, source: Path, saved: Path) -> None:
    rows = []
    for r in report.tables.values():
        reasons = ", ".join(f"{k} {v:,}" for k, v in r.quarantined_by_rule.items() if k != "unlinked")
        rows.append([r.table if r.file else f"{r.table} (not supplied)", f"{r.rows_read:,}", f"{r.rows_loaded:,}",
                     f"{r.rows_quarantined:,}", f"{r.rows_unlinked:,}",
                     "" if r.linkage_rate is None else f"{r.linkage_rate:.1%}", reasons])
    table(f"Load report: {source}", ["table", "read", "loaded", "quarantined", "unlinked", "linkage", "quarantine reasons"],
          rows, right={"read", "loaded", "quarantined", "unlinked", "linkage"})
    console.print(f"Ethnicity recorded for {report.ethnicity_known_share:.1%} of patients; "
                  f"{report.imd_linked_share:.1%} linked to an IMD decile.")
    if report.demo_key:
        console.print("[yellow]Pseudonymised with the public demo key: acceptable for synthetic data only.[/]")
    if report.opt_outs:
        o = report.opt_outs
        console.print(f"Opt-outs (type 1 objections): {o['people_listed']:,} people listed, {o['people_removed']:,} "
                      f"removed with {sum(r.rows_opted_out for r in report.tables.values()):,} rows"
                      + (f"; {o['malformed_rows']:,} rows with a malformed NHS number" if o["malformed_rows"] else ""))
    for fall in report.shrink_allowed:
        console.print(f"[yellow]Shrank (allowed by --allow-shrink): {fall}[/]")
    console.print(f"Warehouse: [bold]{report.warehouse}[/]; report: {saved}")


def dicts(title: str, rows: list[dict], limit: int = 30) -> None:
    """A list of records as a table (the first `limit`; a caption says how many more were saved)."""
    if not rows:
        console.print(f"{title}: none")
        return
    names = list(dict.fromkeys(k for r in rows for k in r))  # every column any row has, in first-seen order
    def cell(v: Any) -> str:
        return "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    cells = [[cell(r.get(k)) for k in names] for r in rows[:limit]]
    caption = f"{len(rows) - limit} more rows in the saved report" if len(rows) > limit else None
    table(title, [str(k) for k in names], cells, caption=caption)


def quality(report) -> None:
    h = report.headline
    console.print(f"[bold]Data quality[/] (as of {h['as_of']}{', synthetic' if h['synthetic'] else ''}): "
                  f"{h['patients']:,} patients, ethnicity recorded {h['ethnicity_known_pct']}%, "
                  f"IMD linked {h['imd_linked_pct']}%, {h['rows_quarantined']:,} rows in quarantine")
    for title, rows in (("Tables", report.tables), ("Ethnicity recording by practice", report.ethnicity_by_practice),
                        ("Ethnicity recording by IMD quintile (1 = most deprived)", report.ethnicity_by_imd_quintile),
                        ("Quarantine by rule", report.quarantine_by_rule)):
        dicts(title, rows)


def feature_build(manifest: dict, feature_set: str) -> None:
    lab = manifest["label"]
    rows = [[f"eligible on {d}", f"{n:,}"] for d, n in manifest["cohort"]["eligible_by_index_date"].items()]
    rows += [[f"excluded: {reason}", f"{n:,}"] for reason, n in manifest["cohort"]["excluded_by_reason"].items()]
    rows.append(["predictors", len(manifest["predictors"])])
    total = lab["positives"] + lab["negatives"]
    rows.append([f"outcome ({lab['column']})", f"{lab['positives']:,} of {total:,} ({lab['positives'] / max(total, 1):.1%})"])
    rows += [[f"censored: {reason}", f"{n:,}"] for reason, n in lab["censored_by_reason"].items()]
    rows += [[f"segment: {segment}", f"{n:,}"] for segment, n in manifest["segments"].items()]
    rows.append(["definition hash", manifest["definition_hash"]])
    rows.append(["engine", f"{manifest['engine']} ({manifest['warehouse']})"])
    rows.append(["build time", f"{manifest['build_seconds']} s"])
    table(f"Features built: {feature_set}", ["measure", "value"], rows, right={"value"})


def training_run(model_name: str, result) -> None:
    m = result.metrics
    rows = [["AUROC (95% CI)", f"{m['val_auroc']:.3f} ({m['val_auroc_ci_low']:.3f}-{m['val_auroc_ci_high']:.3f})"],
            ["AUPRC", f"{m['val_auprc']:.3f}"], ["Brier score", f"{m['val_brier']:.4f}"],
            ["calibration slope / intercept", f"{m['val_calibration_slope']:.2f} / {m['val_calibration_intercept']:.2f}"]]
    rows += [[f"top {s}%: PPV / sensitivity", f"{m[f'val_ppv_top_{s}pct']:.1%} / {m[f'val_sensitivity_top_{s}pct']:.1%}"]
             for s in ("1", "2", "5")]
    rows += [["logistic baseline AUROC", f"{m['baseline_auroc']:.3f}"], ["simple rule AUROC", f"{m['rule_auroc']:.3f}"]]
    if "oracle_auroc" in m:
        rows += [["oracle AUROC (true risk)", f"{m['oracle_auroc']:.3f}"], ["model / oracle", f"{m['model_oracle_ratio']:.3f}"]]
    if "warn_median_lead_days" in m:
        rows += [["exacerbations warned (top 10% alerts)", f"{m['warn_share']:.0%}"],
                 ["median warning lead time", f"{m['warn_median_lead_days']:.0f} days"]]
    table(f"{model_name} version {result.version} (alias candidate), MLflow run {result.run_id}",
          ["measure", "validation"], rows, right={"validation"})
    if result.dates_note:
        console.print(f"Index dates: {result.dates_note}.", highlight=False)


def model_versions(found: list, where: str) -> None:
    def fmt(v, k: str) -> str:
        return f"{v.metrics[k]:.3f}" if k in v.metrics else ""

    table(f"Registered models ({where})",
          ["model", "version", "aliases", "status", "AUROC", "calibration slope", "model/oracle", "baseline AUROC"],
          [[v.name, v.version, ", ".join(v.aliases), v.status, fmt(v, "val_auroc"), fmt(v, "val_calibration_slope"),
            fmt(v, "model_oracle_ratio"), fmt(v, "baseline_auroc")] for v in found])


def audit(result, html_path: Path, json_path: Path) -> None:
    from evaluation.fairness.narrative import SHORT

    titles = {**{n.name: n.title for n in result.need}, **{g.name: g.title for g in result.groupings},
              "overall": "Everyone"}
    pop = result.population
    rows = "" if pop["rows"] == pop["people"] else f" ({pop['rows']:,} scored rows)"
    console.print(f"[bold]{pop['people']:,}[/] people{rows}, {pop['events']:,} outcomes; policy: {pop['policy']}")
    if result.absolute is not None:
        from evaluation.fairness.narrative import absolute_sentence

        console.print(absolute_sentence(result).replace("**", ""), soft_wrap=True)
    table("Flags" if result.flags else "No flags: the audit passed",
          ["grouping", "group", "metric", "value", "reference", "ratio (95% CI)", "adjusted"],
          [[titles.get(c.grouping, c.grouping), c.group, SHORT.get(c.metric, c.metric), f"{c.value:.3g}",
            f"{c.reference_value:.3g} ({c.reference_group})",
            f"{c.ratio:.2f} ({c.ratio_ci[0]:.2f}-{c.ratio_ci[1]:.2f})",
            "" if c.adjusted_ratio is None else f"{c.adjusted_ratio:.2f}"] for c in result.flags])
    if result.uncertain:
        console.print(f"{len(result.uncertain)} uncertain comparison(s) (outside the band, interval includes parity).")
    if result.mitigation:
        m = result.mitigation
        console.print(f"Mitigation shown (not applied): {m.method}; overall TPR {m.overall_before['tpr']:.1%} -> "
                      f"{m.overall_after['tpr']:.1%}, PPV {m.overall_before['ppv']:.1%} -> {m.overall_after['ppv']:.1%}")
    console.print(f"Bias report: [bold]{html_path}[/] (JSON: {json_path}); SHA-256 {result.report_sha256[:16]}...")


def hazard_log(path: Path, entries: list[dict]) -> None:
    details = {"hazard": lambda e: f"{e.get('hazard_id')}: {e.get('hazard')} (risk {e.get('risk_rating')})",
               "decision": lambda e: f"{e.get('decision')} by {e.get('by')}: {e.get('reason')} (report "
                                     f"{str(e.get('report_sha256'))[:12]}"
                                     + (f", configuration {e['configuration_sha256'][:12]}" if e.get("configuration_sha256")
                                        else "") + (f", via {e['via']}" if e.get("via") else "") + ")",
               "change_review": lambda e: f"configuration change {e.get('decision')} by {e.get('by')}: {e.get('reason')} "
                                          f"({'; '.join(e.get('differences') or [])})",
               "monitoring": lambda e: f"{e.get('metric')} {e.get('subject')}: {e.get('message')}",
               "promotion": lambda e: f"{e.get('alias')} by {e.get('by')} ({e.get('basis')})",
               "audit": lambda e: f"{e.get('outcome')}; report {str(e.get('report_sha256'))[:12]}"}
    table(f"Hazard log: {path}", ["#", "when", "kind", "model", "version", "detail"],
          [[e["seq"], e["at"], e["kind"], e.get("model", ""), e.get("version", ""),
            details.get(e["kind"], lambda e: "")(e)] for e in entries])


def ledger_notes(notes: list[str]) -> None:
    """What a ledger check found that is not tampering (interrupted writes, lines set aside)."""
    for note in notes:
        console.print(f"[yellow]Note:[/] {note}")


def monitoring(result, saved: Path) -> None:
    perf = result.performance
    name = result.model
    console.rule(f"{name} version {result.version} as at {result.as_of}")
    if perf:
        console.print(f"Outcomes of {result.outcome_index_date} ({int(perf['people']):,} people): AUROC "
                      f"{perf['auroc']:.3f} (sign-off {result.signoff['auroc']:.3f}), calibration slope "
                      f"{perf['calibration_slope']:.2f}, observed/expected {perf['observed_to_expected']:.2f}")
    top = sorted(result.drift, key=lambda d: -d["psi"])[:3]
    console.print("Largest shifts since " + result.reference_index_date + ": "
                  + ", ".join(f"{d['feature']} PSI {d['psi']:.2f}" for d in top))
    table(f"{len(result.alerts)} alert(s)", ["kind", "metric", "about", "value", "threshold", "what"],
          [[a.kind, a.metric, a.subject, "" if a.value is None else f"{a.value:.3f}", a.threshold, a.message]
           for a in result.alerts])
    console.print(("[red]Retraining is due[/] (" + ", ".join(result.retrain_reasons) + "): run `phm retrain "
                   f"{name.replace('_', '-')}`; a safety officer must approve before promotion.")
                  if result.retrain_due else "[green]No retraining due.[/]")
    console.print(f"Saved {saved}; logged to MLflow experiment phm-monitoring.")


def backtest(frame, selected: dict) -> None:
    horizons = sorted(frame.horizon.unique())
    rows = []
    for (s, m, model), part in frame.groupby(["site", "metric", "model"], sort=True):
        by_h = part.set_index("horizon")
        rows.append([s, m, model, *[f"{by_h.mase[h]:.2f}" for h in horizons],
                     f"{by_h.coverage_80.get(28, float('nan')):.0%}", "✓" if selected.get(f"{s}/{m}") == model else ""])
    table("Back-test: MASE by horizon (days 1-h ahead; < 1 beats the seasonal naive in-sample) and 80% interval coverage",
          ["site", "metric", "model", *[f"MASE h{h}" for h in horizons], "cover80 h28", "chosen"], rows)


def coverage(meta: dict) -> None:
    """Each forecast's achieved back-test coverage, the origins it rests on, and why its model was chosen."""
    for key, cov in meta.get("coverage", {}).items():
        console.print(f"{key}: {meta['selected'][key]} ({meta['reasons'][key]}); back-test intervals held "
                      f"{cov['coverage_80']:.0%} (80%) and {cov['coverage_95']:.0%} (95%) of days 1-{cov['horizon']} "
                      f"over {cov['origins']} origin(s) of {cov['backtest_origins']} back-tested", soft_wrap=True)
    for note in meta.get("reconciliation", []):
        console.print(note, soft_wrap=True)


def forecast(site: str, metric: str, part, meta: dict) -> None:
    rows = [[str(r.date.date()), f"{r.mean:.1f}", f"{r.q10:.1f}-{r.q90:.1f}", f"{r.q025:.1f}-{r.q975:.1f}",
             "" if r.p_exceed != r.p_exceed else f"{r.p_exceed:.0%}"] for r in part.itertuples()]
    cols = ["date", "mean", "80% interval", "95% interval", "P(over threshold)"]
    table(f"{site} {metric}: {part.model.iloc[0]} forecast from data to {meta['data_end']}", cols, rows, right=set(cols))
    if "backtest_coverage_80" in part:
        r = part.iloc[0]
        console.print(f"In the back-test these intervals held {r.backtest_coverage_80:.0%} (80%) and "
                      f"{r.backtest_coverage_95:.0%} (95%) of days, over {int(r.backtest_origins)} origin(s).")
    if part.capacity.notna().any():
        console.print(f"Capacity {part.capacity.iloc[0]:g} beds; threshold {part.threshold.iloc[0]:g} "
                      f"({meta['config']['threshold_share']:.0%} of beds).")


def nowcast(frame, data_end) -> None:
    rows = [[r.site, str(r.date.date()), f"{r.in_beds_now:,}", f"{r.nowcast:.1f}"] for r in frame.itertuples()]
    table(f"Bed nowcast from the patients in beds on the night of {data_end.date()} (survival by nights elapsed, "
          "age, admission method, diagnosis group) plus expected admissions",
          ["site", "night of", "in beds now", "expected in beds"], rows, right={"in beds now", "expected in beds"})


def scenario(result, site: str, metric: str, horizon: int, top_share: float, prevented: float) -> None:
    console.print(f"Reaching {result.people_reached:,} people ({top_share:.1%}) and preventing {prevented:.0%} of their "
                  f"admissions: {result.prevented_admissions_per_day:.2f} fewer emergency admissions a day at {site}.")
    cols = ["measure", "mean", "80% interval", "95% interval"]
    table(f"{site} {metric}, next {horizon} days", cols,
          [[name.replace("_", " "), f"{v['mean']:.1f}", f"{v['q10']:.1f} to {v['q90']:.1f}",
            f"{v['q025']:.1f} to {v['q975']:.1f}"] for name, v in result.summary.items()], right=set(cols))
    last = result.daily[-1]
    console.print(f"On {last['date']}: baseline {last['baseline_mean']:.1f}, with the intervention "
                  f"{last['scenario_mean']:.1f} (80%: {last['scenario_q10']:.1f}-{last['scenario_q90']:.1f}).")
    for note in result.notes:
        console.print(f"[dim]{note}[/]")


def daily_scores(meta: dict) -> None:
    counts = ", ".join(f"{k} {v:,}" for k, v in meta["band_counts"].items())
    worklist = meta["models"][meta["worklist_model"]]
    console.print(f"Snapshot {meta['date']}: {meta['people']:,} people scored by {meta['worklist_model']} version "
                  f"{worklist['version']} (feature hash {worklist['feature_hash']}); bands: {counts}; {meta['seconds']} s")
    if worklist.get("configuration_sha256"):
        console.print(f"Scored under the configuration approved by {worklist.get('approved_by')} on "
                      f"{worklist.get('approved_at')} ({worklist['configuration_sha256'][:12]}; bands "
                      + ", ".join(f"{n} top {100 * v:.4g}%" for n, v in meta["bands"].items()) + ").")
    for name, why in (meta.get("refused") or {}).items():
        console.print(f"[yellow]{name} was not scored: {why}[/]", soft_wrap=True)
    if meta.get("stages"):
        console.print("Stages: " + ", ".join(f"{k.replace('_', ' ')} {v['seconds']:.1f} s" for k, v in meta["stages"].items())
                      + f"; peak memory {max(v['peak_gib'] for v in meta['stages'].values()):.1f} GiB")
    for name, info in meta["models"].items():
        if info["role"] == "column":
            console.print(f"{name} risk ({info['column']}) for {info['people']:,} people (version {info['version']}).")
    if meta.get("published") is False:
        console.print(f"[yellow]Not published: the service still serves the snapshot of {meta['live_date']} (this day is "
                      "earlier). Pass --publish to serve it.[/]")


def safety_case(summary: dict) -> None:
    """A version's safety case: may it be used, the configuration in force and every difference from the approved."""
    cfg = summary["configuration"]
    head = f"{summary['model']} version {summary['version']}"
    console.print((f"[green]{head}: in use[/] — " if summary["ok"] else f"[red]{head}: may not be used[/] — ")
                  + summary["reason"], soft_wrap=True)
    rows = [["report", str(summary["report_sha256"] or "not audited")[:16] + f" ({summary['flags']} flag(s))"],
            ["operating policy", f"acts on the top {100 * cfg['top_share']:.4g}%"],
            *([["band cut-offs", ", ".join(f"{n} top {100 * v:.4g}%" for n, v in cfg["bands"].items())]]
              if cfg.get("bands") else []),
            ["feature definitions", f"{cfg['feature_hash']} (trained on {cfg['trained_feature_hash']})"],
            ["population", ", ".join(f"{k} {v}" for k, v in cfg["cohort"].items())],
            ["outcome", ", ".join(f"{k} {v}" for k, v in cfg["outcome"].items())],
            ["data source", cfg["data_source"]],
            ["configuration", summary["configuration_sha256"][:16]],
            ["approved configuration", (summary["approved_configuration_sha256"] or "none")[:16]
             + (f" by {summary['approved_by']} on {summary['approved_at']}" if summary["approved_by"] else "")]]
    table(f"Configuration of {head} in force now", ["", "value"], rows)
    for d in summary["differences"]:
        console.print(f"  [yellow]changed:[/] {d}", soft_wrap=True)


def users(found: list) -> None:
    table("Service users", ["name", "role", "practices", "status", "created", "changed"],
          [[u.name, u.role.value, ", ".join(u.practices), "disabled" if u.disabled else "active", u.created,
            u.changed or ""] for u in found])


def access_views(rows: list[dict], entries: int) -> None:
    """Who saw (or asked for) one person: the answer to a subject-access request."""
    table(f"Access log: {len(rows)} request(s) about this person, of {entries:,} logged", ["when (UTC)", "user", "role",
          "request", "outcome", "what"],
          [[r["at"], r["user"], r.get("role") or "", f"{r.get('method', '')} {r.get('route', '')}".strip(),
            r.get("status", ""), r["what"]] for r in rows])


def ledger_check(name: str, path, entries: int, problems: list[str]) -> None:
    if problems:
        console.print(f"[bold red]{name} {path}: {len(problems)} problem(s)[/]")
        for problem in problems:
            console.print(f"  - {problem}", highlight=False)
    else:
        console.print(f"{name} {path}: intact ({entries:,} entries, chain verified)")


def reidentified(result) -> None:
    """A re-identified worklist (to the terminal only)."""
    r = result.summary
    table(f"Named worklist for direct care, {r.snapshot_date} (practices {', '.join(r.practices)})",
          ["rank", "NHS number", "name", "date of birth", *r.extra_columns, "practice", "risk", "band"],
          [[p["rank"], f"{p['nhs_number'][:3]} {p['nhs_number'][3:6]} {p['nhs_number'][6:]}", p["name"],
            p["date_of_birth"], *[p["details"].get(c, "") for c in r.extra_columns], p["practice_code"],
            f"{100 * p['risk']:.1f}%", p["band"]] for p in result.people], right={"rank", "risk"})
    console.print(f"{r.rows_read:,} rows read: {r.matched:,} on your worklist ({r.min_band.value} band or above), "
                  f"{r.not_on_worklist:,} not, {r.malformed:,} with a malformed NHS number"
                  + (f" (rows {', '.join(map(str, r.malformed_rows[:50]))}{' ...' if r.malformed > 50 else ''})"
                     if r.malformed else "") + ".")
