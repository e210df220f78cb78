"""What `phm train`, `phm models` and `phm score` print: a training run's validation figures, the registered
versions and a daily scoring snapshot."""

from __future__ import annotations

from phm.cli.common import console
from phm.cli.render.tables import table


def training_run(model_name: str, result) -> None:
    m = result.metrics
    rows = [
        ["AUROC (95% CI)", f"{m['val_auroc']:.3f} ({m['val_auroc_ci_low']:.3f}-{m['val_auroc_ci_high']:.3f})"],
        ["AUPRC", f"{m['val_auprc']:.3f}"],
        ["Brier score", f"{m['val_brier']:.4f}"],
        ["calibration slope / intercept", f"{m['val_calibration_slope']:.2f} / {m['val_calibration_intercept']:.2f}"],
    ]
    rows += [
        [f"top {s}%: PPV / sensitivity", f"{m[f'val_ppv_top_{s}pct']:.1%} / {m[f'val_sensitivity_top_{s}pct']:.1%}"]
        for s in ("1", "2", "5")
    ]
    rows += [["logistic baseline AUROC", f"{m['baseline_auroc']:.3f}"], ["simple rule AUROC", f"{m['rule_auroc']:.3f}"]]
    if "oracle_auroc" in m:
        rows += [
            ["oracle AUROC (true risk)", f"{m['oracle_auroc']:.3f}"],
            ["model / oracle", f"{m['model_oracle_ratio']:.3f}"],
        ]
    if "warn_median_lead_days" in m:
        rows += [
            ["exacerbations warned (top 10% alerts)", f"{m['warn_share']:.0%}"],
            ["median warning lead time", f"{m['warn_median_lead_days']:.0f} days"],
        ]
    table(
        f"{model_name} version {result.version} (alias candidate), MLflow run {result.run_id}",
        ["measure", "validation"],
        rows,
        right={"validation"},
    )
    if result.dates_note:
        console.print(f"Index dates: {result.dates_note}.", highlight=False)


def model_versions(found: list, where: str) -> None:
    def fmt(v, k: str) -> str:
        return f"{v.metrics[k]:.3f}" if k in v.metrics else ""

    table(
        f"Registered models ({where})",
        ["model", "version", "aliases", "status", "AUROC", "calibration slope", "model/oracle", "baseline AUROC"],
        [
            [
                v.name,
                v.version,
                ", ".join(v.aliases),
                v.status,
                fmt(v, "val_auroc"),
                fmt(v, "val_calibration_slope"),
                fmt(v, "model_oracle_ratio"),
                fmt(v, "baseline_auroc"),
            ]
            for v in found
        ],
    )


def daily_scores(meta: dict) -> None:
    counts = ", ".join(f"{k} {v:,}" for k, v in meta["band_counts"].items())
    worklist = meta["models"][meta["worklist_model"]]
    console.print(
        f"Snapshot {meta['date']}: {meta['people']:,} people scored by {meta['worklist_model']} version "
        f"{worklist['version']} (feature hash {worklist['feature_hash']}); bands: {counts}; {meta['seconds']} s"
    )
    if worklist.get("configuration_sha256"):
        console.print(
            f"Scored under the configuration approved by {worklist.get('approved_by')} on "
            f"{worklist.get('approved_at')} ({worklist['configuration_sha256'][:12]}; bands "
            + ", ".join(f"{n} top {100 * v:.4g}%" for n, v in meta["bands"].items())
            + ")."
        )
    for name, why in (meta.get("refused") or {}).items():
        console.print(f"[yellow]{name} was not scored: {why}[/]", soft_wrap=True)
    if meta.get("stages"):
        console.print(
            "Stages: "
            + ", ".join(f"{k.replace('_', ' ')} {v['seconds']:.1f} s" for k, v in meta["stages"].items())
            + f"; peak memory {max(v['peak_gib'] for v in meta['stages'].values()):.1f} GiB"
        )
    for name, info in meta["models"].items():
        if info["role"] == "column":
            console.print(f"{name} risk ({info['column']}) for {info['people']:,} people (version {info['version']}).")
    if meta.get("published") is False:
        console.print(
            f"[yellow]Not published: the service still serves the snapshot of {meta['live_date']} (this day is "
            "earlier). Pass --publish to serve it.[/]"
        )
