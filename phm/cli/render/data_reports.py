"""What `phm data` and `phm features` print: extracts made, the realism check against England, a mapped
folder, the load report, the data-quality report and a feature build."""

from __future__ import annotations

from pathlib import Path

from phm.cli.common import console
from phm.cli.render.tables import dicts, table


# England figures the synthetic ICS is checked against (REFERENCE.md, ~).
ENGLAND = {
    "emergency_admissions_per_1000_person_years": "~115",
    "emergency_los_mean_days": "~4.5-6",
    "deaths_per_1000_person_years": "~9-10",
    "age 0-15": "~19%",
    "age 16-64": "~63%",
    "age 65+": "~18.5%",
    "age 85+": "~2.5%",
    "White": "~81%",
    "Asian": "~10%",
    "Black": "~4%",
    "Mixed": "~3%",
    "Other": "~2%",
    "imd": "10% per decile",
}


def extracts(rows: dict[str, int]) -> None:
    table("Extracts", ["table", "rows"], [[name, f"{n:,}"] for name, n in rows.items()], right={"rows"})


def realism(summary: dict) -> None:
    rows = [
        [key.replace("_", " "), summary[key], ENGLAND[key]]
        for key in (
            "emergency_admissions_per_1000_person_years",
            "emergency_los_mean_days",
            "deaths_per_1000_person_years",
        )
    ]
    rows.append(["emergency LOS median days", summary["emergency_los_median_days"], "~2-3"])
    rows += [[f"age {band}", f"{share:.1%}", ENGLAND[f"age {band}"]] for band, share in summary["age_bands"].items()]
    rows += [
        [f"ethnicity {group} (of recorded)", f"{share:.1%}", ENGLAND[group]]
        for group, share in summary["ethnicity_broad_among_known"].items()
    ]
    rows.append(["ethnicity recorded", f"{summary['ethnicity_recorded_known']:.1%}", "~90%"])
    rows.append(
        [
            "IMD decile shares (1..10)",
            " ".join(f"{v:.0%}" for v in summary["imd_decile_shares"].values()),
            ENGLAND["imd"],
        ]
    )
    for key, what, england in (
        ("emergency_12m", "emergency admission", "~5-8%"),
        ("acsc_12m", "ACSC emergency admission", "~2%"),
    ):
        for day, fig in summary.get(key, {}).items():
            rows.append(
                [
                    f"{what} in 12m from {day}",
                    f"{fig['observed_rate']:.1%} (truth "
                    f"{fig['mean_true_probability']:.1%}, oracle AUROC {fig['oracle_auroc']:.3f})",
                    england,
                ]
            )
    if "acsc_share_of_emergency_admissions" in summary:
        rows.append(
            ["ACSC share of emergency admissions", f"{summary['acsc_share_of_emergency_admissions']:.1%}", "~1 in 5"]
        )
    for site in summary["sites"]:
        rows.append(
            [
                f"{site['site_code']} G&A occupancy (beds {site['ga_beds']})",
                f"mean {site['ga_occupancy_mean']:.0%}, winter {site['ga_occupancy_winter']:.0%}",
                "~90%, >92% winter",
            ]
        )
    if summary.get("exacerbation_14d"):
        f = summary["exacerbation_14d"]
        rows.append(["COPD exacerbations per patient-year", summary["copd_exacerbations_per_patient_year"], "~1-2"])
        rows.append(
            [
                "flare-up within 14 days (monitored)",
                f"{f['observed_rate_14d']:.1%} (oracle AUROC {f['oracle_auroc']:.3f})",
                "",
            ]
        )
    table(
        "Realism check (synthetic vs England)",
        ["measure", "synthetic", "England"],
        rows,
        right={"synthetic", "England"},
    )


def conversion(c) -> None:
    table(
        f"Mapped {c.format} folder {c.source}",
        ["file read", "rows"],
        [[name, f"{rows:,}"] for name, rows in c.files_read.items()],
        right={"rows"},
    )
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
        rows.append(
            [
                r.table if r.file else f"{r.table} (not supplied)",
                f"{r.rows_read:,}",
                f"{r.rows_loaded:,}",
                f"{r.rows_quarantined:,}",
                f"{r.rows_unlinked:,}",
                "" if r.linkage_rate is None else f"{r.linkage_rate:.1%}",
                reasons,
            ]
        )
    table(
        f"Load report: {source}",
        ["table", "read", "loaded", "quarantined", "unlinked", "linkage", "quarantine reasons"],
        rows,
        right={"read", "loaded", "quarantined", "unlinked", "linkage"},
    )
    console.print(
        f"Ethnicity recorded for {report.ethnicity_known_share:.1%} of patients; "
        f"{report.imd_linked_share:.1%} linked to an IMD decile."
    )
    if report.demo_key:
        console.print("[yellow]Pseudonymised with the public demo key: acceptable for synthetic data only.[/]")
    if report.opt_outs:
        o = report.opt_outs
        console.print(
            f"Opt-outs (type 1 objections): {o['people_listed']:,} people listed, {o['people_removed']:,} "
            f"removed with {sum(r.rows_opted_out for r in report.tables.values()):,} rows"
            + (f"; {o['malformed_rows']:,} rows with a malformed NHS number" if o["malformed_rows"] else "")
        )
    for fall in report.shrink_allowed:
        console.print(f"[yellow]Shrank (allowed by --allow-shrink): {fall}[/]")
    console.print(f"Warehouse: [bold]{report.warehouse}[/]; report: {saved}")


def quality(report) -> None:
    h = report.headline
    console.print(
        f"[bold]Data quality[/] (as of {h['as_of']}{', synthetic' if h['synthetic'] else ''}): "
        f"{h['patients']:,} patients, ethnicity recorded {h['ethnicity_known_pct']}%, "
        f"IMD linked {h['imd_linked_pct']}%, {h['rows_quarantined']:,} rows in quarantine"
    )
    for title, rows in (
        ("Tables", report.tables),
        ("Ethnicity recording by practice", report.ethnicity_by_practice),
        ("Ethnicity recording by IMD quintile (1 = most deprived)", report.ethnicity_by_imd_quintile),
        ("Quarantine by rule", report.quarantine_by_rule),
    ):
        dicts(title, rows)


def feature_build(manifest: dict, feature_set: str) -> None:
    lab = manifest["label"]
    rows = [[f"eligible on {d}", f"{n:,}"] for d, n in manifest["cohort"]["eligible_by_index_date"].items()]
    rows += [[f"excluded: {reason}", f"{n:,}"] for reason, n in manifest["cohort"]["excluded_by_reason"].items()]
    rows.append(["predictors", len(manifest["predictors"])])
    total = lab["positives"] + lab["negatives"]
    rows.append(
        [f"outcome ({lab['column']})", f"{lab['positives']:,} of {total:,} ({lab['positives'] / max(total, 1):.1%})"]
    )
    rows += [[f"censored: {reason}", f"{n:,}"] for reason, n in lab["censored_by_reason"].items()]
    rows += [[f"segment: {segment}", f"{n:,}"] for segment, n in manifest["segments"].items()]
    rows.append(["definition hash", manifest["definition_hash"]])
    rows.append(["engine", f"{manifest['engine']} ({manifest['warehouse']})"])
    rows.append(["build time", f"{manifest['build_seconds']} s"])
    table(f"Features built: {feature_set}", ["measure", "value"], rows, right={"value"})
