"""The `phm` command. Everything a user does has a subcommand here."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from phm import __version__
from phm.logs import configure as configure_logging
from phm.settings import Settings, get_settings

app = typer.Typer(help="PHM Intelligence: population health management for an Integrated Care System.",
                  no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Generate, load and check linked source data.", no_args_is_help=True)
config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
features_app = typer.Typer(help="Declared predictors: list them, build feature tables with labels.",
                           no_args_is_help=True)
train_app = typer.Typer(help="Train risk models (tracked in MLflow, registered as candidate).", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, aliases and metrics.", no_args_is_help=True)
forecast_app = typer.Typer(help="Bed and critical care demand: fit, back-test, predict, scenarios.", no_args_is_help=True)
score_app = typer.Typer(help="Daily risk scoring of the whole population.", no_args_is_help=True)
users_app = typer.Typer(help="Service users: tokens, roles and practice scopes.", no_args_is_help=True)
audit_app = typer.Typer(help="Fairness audit, bias reports and clinical safety sign-off.", no_args_is_help=True)
monitor_app = typer.Typer(help="Monitor deployed models: drift, decay and fairness over time.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(monitor_app, name="monitor")
app.add_typer(forecast_app, name="forecast")
app.add_typer(score_app, name="score")
app.add_typer(users_app, name="users")
app.add_typer(config_app, name="config")
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings)
    return settings


EngineOption = Annotated[Optional[str], typer.Option(
    "--engine", help="duckdb (embedded) or spark (needs the [spark] extra; spark_* settings). Default: the engine setting.")]


def _engine(value: Optional[str]) -> Optional[str]:
    if value not in (None, "duckdb", "spark"):
        raise _fail(f"--engine {value!r}: choose duckdb or spark")
    return value


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def _stages(title: str, total: int) -> Iterator:
    """A progress bar that advances one step per stage message."""
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(title, total=total, stage="")

        def advance(stage: str) -> None:
            bar.update(task, advance=1, stage=stage)

        yield advance
        bar.update(task, completed=total, stage="done")


def _version(value: bool) -> None:
    if value:
        console.print(f"phm {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                                  help="Show the version and exit.")] = None) -> None:
    """PHM Intelligence."""


# ---- data -----------------------------------------------------------------------------------------
@data_app.command("generate")
def data_generate(
    persons: Annotated[int, typer.Option(help="People ever registered in the synthetic ICS.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: $PHM_HOME/data/synthetic).")] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    malformed_share: Annotated[float, typer.Option(help="Share of rows to corrupt per table (tests).")] = 0.0,
    under_record_group: Annotated[Optional[str], typer.Option(help="Group whose diagnoses go uncoded: "
                                                              "White, Asian, Black, Mixed, Other or core20.")] = None,
    under_record_share: Annotated[float, typer.Option(help="Share of that group's diagnoses left uncoded.")] = 0.0,
) -> None:
    """Generate a synthetic ICS: every source extract, ground-truth risks and a realism summary."""
    from pydantic import ValidationError

    from features.synthetic.config import DefectConfig, GeneratorConfig
    from features.synthetic.generator import generate

    settings = _settings()
    try:
        cfg = GeneratorConfig(persons=persons, seed=seed, file_format=file_format, defects=DefectConfig(
            malformed_share=malformed_share, under_record_group=under_record_group,
            under_record_share=under_record_share))
    except ValidationError as exc:
        raise _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    target = out or settings.synthetic_dir
    with _stages(f"Generating {persons:,} people", 5) as advance:
        result = generate(cfg, target, progress=advance)
    _print_rows(result.rows)
    print_realism(result.summary)
    console.print(f"Written to [bold]{target}[/]")


def _print_rows(rows: dict[str, int]) -> None:
    t = Table(title="Extracts", show_lines=False)
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in rows.items():
        t.add_row(name, f"{n:,}")
    console.print(t)


# England figures the synthetic ICS is checked against (REFERENCE.md, ~).
ENGLAND = {
    "emergency_admissions_per_1000_person_years": "~115",
    "emergency_los_mean_days": "~4.5-6",
    "deaths_per_1000_person_years": "~9-10",
    "age 0-15": "~19%", "age 16-64": "~63%", "age 65+": "~18.5%", "age 85+": "~2.5%",
    "White": "~81%", "Asian": "~10%", "Black": "~4%", "Mixed": "~3%", "Other": "~2%",
    "imd": "10% per decile",
}


def print_realism(summary: dict) -> None:
    t = Table(title="Realism check (synthetic vs England)")
    t.add_column("measure")
    t.add_column("synthetic", justify="right")
    t.add_column("England", justify="right")
    for key in ("emergency_admissions_per_1000_person_years", "emergency_los_mean_days", "deaths_per_1000_person_years"):
        t.add_row(key.replace("_", " "), f"{summary[key]}", ENGLAND[key])
    t.add_row("emergency LOS median days", f"{summary['emergency_los_median_days']}", "~2-3")
    for band, share in summary["age_bands"].items():
        t.add_row(f"age {band}", f"{share:.1%}", ENGLAND[f"age {band}"])
    for group, share in summary["ethnicity_broad_among_known"].items():
        t.add_row(f"ethnicity {group} (of recorded)", f"{share:.1%}", ENGLAND[group])
    t.add_row("ethnicity recorded", f"{summary['ethnicity_recorded_known']:.1%}", "~90%")
    shares = summary["imd_decile_shares"]
    t.add_row("IMD decile shares (1..10)", " ".join(f"{v:.0%}" for v in shares.values()), ENGLAND["imd"])
    for day, fig in summary["emergency_admission_12m"].items():
        t.add_row(f"emergency admission in 12m from {day}",
                  f"{fig['observed_rate']:.1%} (truth {fig['mean_true_probability']:.1%}, oracle AUROC {fig['oracle_auroc']:.3f})",
                  "~5-8%")
    for site in summary["sites"]:
        t.add_row(f"{site['site_code']} G&A occupancy (beds {site['ga_beds']})",
                  f"mean {site['ga_occupancy_mean']:.0%}, winter {site['ga_occupancy_winter']:.0%}", "~90%, >92% winter")
    if summary.get("flare_up_14d"):
        f = summary["flare_up_14d"]
        t.add_row("COPD exacerbations per patient-year", f"{summary['copd_exacerbations_per_patient_year']}", "~1-2")
        t.add_row("flare-up within 14 days (monitored)", f"{f['observed_rate_14d']:.1%} (oracle AUROC {f['oracle_auroc']:.3f})", "")
    console.print(t)


@data_app.command("load")
def data_load(
    src: Annotated[Optional[Path], typer.Argument(help="Folder of extracts (default: $PHM_HOME/data/synthetic).")] = None,
    as_of: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="Dates after this are future dates.")] = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file (default: under PHM_HOME).")] = None,
    source_format: Annotated[str, typer.Option("--format", help="auto, phm, synthea (CSV export) or omop (CDM v5.4, "
                                               "CSV or Parquet).")] = "auto",
) -> None:
    """Validate, pseudonymise and link extracts into the DuckDB warehouse; quarantine bad rows. Synthea exports
    and OMOP CDM extracts are first mapped onto the linked data model (see the README's mapping tables)."""
    from features.sources.formats import FormatError, convert, detect
    from features.sources.loader import ContractError, load
    from features.sources.pseudonymise import MissingKeyError

    settings = _settings()
    source = src or settings.synthetic_dir
    if not source.is_dir():
        raise _fail(f"{source}: no such folder of extracts. Generate one with `phm data generate`.")
    if source_format not in ("auto", "phm", "synthea", "omop"):
        raise _fail(f"unknown --format {source_format!r}: use auto, phm, synthea or omop")
    from features.sources.contracts import CONTRACTS

    try:
        fmt = detect(source) if source_format == "auto" else source_format
        if fmt != "phm":
            staged = settings.data_dir / "staged" / fmt
            with console.status(f"Mapping the {fmt} folder onto the linked data model"):
                conversion = convert(source, fmt, staged)
            _print_conversion(conversion)
            source = staged
        with _stages("Loading", len(CONTRACTS)) as advance:
            report = load(settings, source, warehouse, as_of.date() if as_of else None, progress=advance)
    except (ContractError, MissingKeyError, FormatError) as exc:
        raise _fail(str(exc)) from exc
    t = Table(title=f"Load report: {source}")
    for col in ("table", "read", "loaded", "quarantined", "unlinked", "linkage", "quarantine reasons"):
        t.add_column(col, justify="left" if col in ("table", "quarantine reasons") else "right")
    for r in report.tables.values():
        reasons = ", ".join(f"{k} {v:,}" for k, v in r.quarantined_by_rule.items() if k != "unlinked")
        t.add_row(r.table if r.file else f"{r.table} (not supplied)", f"{r.rows_read:,}", f"{r.rows_loaded:,}",
                  f"{r.rows_quarantined:,}", f"{r.rows_unlinked:,}",
                  "" if r.linkage_rate is None else f"{r.linkage_rate:.1%}", reasons)
    console.print(t)
    console.print(f"Ethnicity recorded for {report.ethnicity_known_share:.1%} of patients; "
                  f"{report.imd_linked_share:.1%} linked to an IMD decile.")
    if report.demo_key:
        console.print("[yellow]Pseudonymised with the public demo key: acceptable for synthetic data only.[/]")
    console.print(f"Warehouse: [bold]{report.warehouse}[/]; report: {settings.reports_dir / 'load_report.json'}")


def _print_conversion(c) -> None:
    t = Table(title=f"Mapped {c.format} folder {c.source}")
    for col in ("file read", "rows"):
        t.add_column(col, justify="left" if col == "file read" else "right")
    for name, rows in c.files_read.items():
        t.add_row(name, f"{rows:,}")
    console.print(t)
    if c.missing_optional_files:
        console.print(f"Optional files not supplied: {', '.join(c.missing_optional_files)}")
    written = ", ".join(f"{k} {v:,}" for k, v in c.rows_written.items())
    console.print(f"Staged PHM extracts in {c.staged}: {written}")
    for key, rows in c.rejected.items():
        console.print(f"  quarantined {rows:,} row(s): {key}")
    for note in c.notes:
        console.print(f"[yellow]Note:[/] {note}", soft_wrap=True)


@data_app.command("export")
def data_export(
    out: Annotated[Optional[Path], typer.Argument(help="Folder for the Parquet tables (default: the copy Spark reads, "
                                                       "beside the warehouse).")] = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None,
) -> None:
    """Write every linked table of the warehouse as Parquet (one file per table): what the Spark engine reads, and
    what to copy to a cluster's storage (then set spark_tables to it, or load it into catalog tables)."""
    from features.engine.export import export_tables

    settings = _settings()
    source = warehouse or settings.warehouse_path
    target = out or source.parent / "tables"
    try:
        with console.status(f"Exporting {source} to {target}"):
            written = export_tables(source, target)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"Written {len(written)} tables to {target}: {', '.join(written)}")


@data_app.command("report")
def data_report(warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None) -> None:
    """Data-quality summary: ethnicity coverage by practice and deprivation, linkage, date ranges."""
    from features.sources import quality

    settings = _settings()
    try:
        report = quality.build(warehouse or settings.warehouse_path)
    except quality.WarehouseMissingError as exc:
        raise _fail(str(exc)) from exc
    h = report.headline
    console.print(f"[bold]Data quality[/] (as of {h['as_of']}{', synthetic' if h['synthetic'] else ''}): "
                  f"{h['patients']:,} patients, ethnicity recorded {h['ethnicity_known_pct']}%, "
                  f"IMD linked {h['imd_linked_pct']}%, {h['rows_quarantined']:,} rows in quarantine")
    for title, rows in (("Tables", report.tables), ("Ethnicity recording by practice", report.ethnicity_by_practice),
                        ("Ethnicity recording by IMD quintile (1 = most deprived)", report.ethnicity_by_imd_quintile),
                        ("Quarantine by rule", report.quarantine_by_rule)):
        _print_dicts(title, rows)
    html_path, json_path = quality.write(report, settings.reports_dir)
    console.print(f"Saved {html_path} and {json_path}")


def _print_dicts(title: str, rows: list[dict], limit: int = 30) -> None:
    t = Table(title=title)
    if not rows:
        console.print(f"{title}: none")
        return
    for k in rows[0]:
        t.add_column(str(k))
    for r in rows[:limit]:
        t.add_row(*("" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()))
    if len(rows) > limit:
        t.caption = f"{len(rows) - limit} more rows in the saved report"
    console.print(t)


# ---- features ---------------------------------------------------------------------------------------
@features_app.command("list")
def features_list(feature_set: Annotated[Optional[str], typer.Option("--set", help="emergency_admission or flare_up.")] = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable definitions.")] = False) -> None:
    """Print every feature definition in plain words (source, filter, window, aggregation, default)."""
    from features.definitions.catalogue import FEATURE_SETS
    from features.definitions.model import DerivedFeature, EventFeature

    sets = [FEATURE_SETS[feature_set]] if feature_set else list(FEATURE_SETS.values())
    if feature_set and feature_set not in FEATURE_SETS:
        raise _fail(f"unknown feature set {feature_set!r}; choose from {', '.join(FEATURE_SETS)}")
    if as_json:
        console.print_json(json.dumps({s.name: [f.model_dump(mode="json") for f in s.features] for s in sets}))
        return
    for fs in sets:
        t = Table(title=f"{fs.name}: {fs.description} (definition hash {fs.definition_hash()})", show_lines=False)
        for col in ("feature", "family", "description", "how it is computed", "default"):
            t.add_column(col, overflow="fold")
        for f in fs.features:
            how = f.describe() if isinstance(f, EventFeature) else (
                f"from {', '.join(f.depends_on)}" if isinstance(f, DerivedFeature) else "patient record")
            default = str(f.default) if isinstance(f, EventFeature) and f.default is not None else ""
            role = " (carried, not a predictor)" if f.name in fs.carried else ""
            t.add_row(f.name, f.family, f.description + role, how, default)
        console.print(t)


@features_app.command("build")
def features_build(
    as_of: Annotated[list[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="Index date (repeatable).")],
    feature_set: Annotated[str, typer.Option("--set", help="emergency_admission or flare_up.")] = "emergency_admission",
    out: Annotated[Optional[Path], typer.Option(help="Parquet output (default: $PHM_HOME/features/SET_DATE.parquet).")] = None,
    min_age: Annotated[Optional[int], typer.Option(help="Youngest eligible age (default 18).")] = None,
    include_death: Annotated[bool, typer.Option(help="Count death as an outcome (emergency admission set).")] = False,
    ethnicity_as_predictor: Annotated[bool, typer.Option(help="Use ethnicity as a predictor (recorded).")] = False,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None,
    engine: EngineOption = None,
) -> None:
    """Build a person-level feature table with labels as at index dates, and its manifest."""
    from features.build import DEFAULT_COHORTS, DEFAULT_LABELS, BuildConfig, EmptyCohortError, FeatureSourceError, build
    from features.engine import EngineError, open_engine

    settings = _settings()
    if feature_set not in DEFAULT_COHORTS:
        raise _fail(f"unknown feature set {feature_set!r}; choose from {', '.join(DEFAULT_COHORTS)}")
    dates = sorted({d.date() for d in as_of})
    cohort = DEFAULT_COHORTS[feature_set].model_copy(update={"min_age": min_age} if min_age is not None else {})
    label = DEFAULT_LABELS[feature_set].model_copy(update={"include_death": include_death})
    cfg = BuildConfig(feature_set=feature_set, index_dates=dates, cohort=cohort, label=label,
                      ethnicity_as_predictor=ethnicity_as_predictor)
    target = out or settings.home / "features" / f"{feature_set}_{dates[0]}.parquet"
    try:
        with console.status(f"Building {feature_set} features as at {', '.join(map(str, dates))}"):
            with open_engine(settings, _engine(engine), warehouse) as source:
                manifest = build(source, cfg, target)
    except (FeatureSourceError, EmptyCohortError, EngineError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    lab = manifest["label"]
    t = Table(title=f"Features built: {feature_set}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for d, n in manifest["cohort"]["eligible_by_index_date"].items():
        t.add_row(f"eligible on {d}", f"{n:,}")
    for reason, n in manifest["cohort"]["excluded_by_reason"].items():
        t.add_row(f"excluded: {reason}", f"{n:,}")
    t.add_row("predictors", str(len(manifest["predictors"])))
    t.add_row(f"outcome ({lab['column']})", f"{lab['positives']:,} of {lab['positives'] + lab['negatives']:,} "
              f"({lab['positives'] / max(lab['positives'] + lab['negatives'], 1):.1%})")
    for reason, n in lab["censored_by_reason"].items():
        t.add_row(f"censored: {reason}", f"{n:,}")
    for segment, n in manifest["segments"].items():
        t.add_row(f"segment: {segment}", f"{n:,}")
    t.add_row("definition hash", manifest["definition_hash"])
    t.add_row("engine", f"{manifest['engine']} ({manifest['warehouse']})")
    t.add_row("build time", f"{manifest['build_seconds']} s")
    console.print(t)
    console.print(f"Written {target} and {target}.manifest.json")


# ---- training and registry ---------------------------------------------------------------------------
def _train(model_name: str, seed: int, config: Optional[Path], max_train_rows: Optional[int],
           engine: Optional[str] = None) -> None:
    from evaluation.train_validate import run
    from features.engine import EngineError
    from training.config import TrainConfig, default_config

    settings = _settings()
    if not settings.warehouse_path.exists():
        raise _fail(f"{settings.warehouse_path}: no warehouse yet. Run `phm data load` (or `phm demo`) first.")
    try:
        cfg = TrainConfig.model_validate_json(config.read_text()) if config else default_config(model_name, seed)
    except (OSError, ValueError) as exc:
        raise _fail(f"{config}: not a valid training configuration ({exc})") from exc
    if cfg.model_name != model_name:
        raise _fail(f"{config} configures {cfg.model_name}, not {model_name}")
    if max_train_rows:
        cfg = cfg.model_copy(update={"max_train_rows": max_train_rows})
    with _stages(f"Training {model_name}", 8) as advance:
        try:
            result = run(cfg, settings, progress=advance, engine=_engine(engine))
        except (ValueError, EngineError) as exc:
            raise _fail(str(exc)) from exc
    m = result.metrics
    t = Table(title=f"{model_name} version {result.version} (alias candidate), MLflow run {result.run_id}")
    t.add_column("measure")
    t.add_column("validation", justify="right")
    t.add_row("AUROC (95% CI)", f"{m['val_auroc']:.3f} ({m['val_auroc_ci_low']:.3f}-{m['val_auroc_ci_high']:.3f})")
    t.add_row("AUPRC", f"{m['val_auprc']:.3f}")
    t.add_row("Brier score", f"{m['val_brier']:.4f}")
    t.add_row("calibration slope / intercept", f"{m['val_calibration_slope']:.2f} / {m['val_calibration_intercept']:.2f}")
    for share in ("1", "2", "5"):
        t.add_row(f"top {share}%: PPV / sensitivity", f"{m[f'val_ppv_top_{share}pct']:.1%} / "
                  f"{m[f'val_sensitivity_top_{share}pct']:.1%}")
    t.add_row("logistic baseline AUROC", f"{m['baseline_auroc']:.3f}")
    t.add_row("simple rule AUROC", f"{m['rule_auroc']:.3f}")
    if "oracle_auroc" in m:
        t.add_row("oracle AUROC (true risk)", f"{m['oracle_auroc']:.3f}")
        t.add_row("model / oracle", f"{m['model_oracle_ratio']:.3f}")
    if "warn_median_lead_days" in m:
        t.add_row("exacerbations warned (top 10% alerts)", f"{m['warn_share']:.0%}")
        t.add_row("median warning lead time", f"{m['warn_median_lead_days']:.0f} days")
    console.print(t)


@train_app.command("emergency-admission")
def train_emergency_admission(
        seed: Annotated[int, typer.Option(help="Random seed (same seed, same metrics).")] = 1,
        config: Annotated[Optional[Path], typer.Option(help="A train_config.json recorded by MLflow.")] = None,
        max_train_rows: Annotated[Optional[int], typer.Option(help="Sample training rows (quick runs).")] = None,
        engine: EngineOption = None) -> None:
    """Emergency admission within 12 months: train on 2022-23, validate on 2024-04-01, register."""
    _train("emergency_admission", seed, config, max_train_rows, engine)


@train_app.command("flare-up")
def train_flare_up(
        seed: Annotated[int, typer.Option(help="Random seed (same seed, same metrics).")] = 1,
        config: Annotated[Optional[Path], typer.Option(help="A train_config.json recorded by MLflow.")] = None,
        max_train_rows: Annotated[Optional[int], typer.Option(help="Sample training rows (quick runs).")] = None,
        engine: EngineOption = None) -> None:
    """COPD/asthma exacerbation within 14 days: weekly training dates, daily validation, register."""
    _train("flare_up", seed, config, max_train_rows, engine)


@models_app.command("list")
def models_list() -> None:
    """Registered versions with aliases, audit status and headline validation metrics."""
    from training import registry, tracking

    settings = _settings()
    tracking.configure(settings)
    found = registry.versions()
    if not found:
        console.print("No registered models yet. Train one with `phm train emergency-admission`.")
        return
    t = Table(title=f"Registered models ({settings.mlflow_tracking_uri})")
    for col in ("model", "version", "aliases", "status", "AUROC", "calibration slope", "model/oracle", "baseline AUROC"):
        t.add_column(col)
    for v in found:
        fmt = lambda k: f"{v.metrics[k]:.3f}" if k in v.metrics else ""  # noqa: E731
        t.add_row(v.name, str(v.version), ", ".join(v.aliases), v.status, fmt("val_auroc"),
                  fmt("val_calibration_slope"), fmt("model_oracle_ratio"), fmt("baseline_auroc"))
    console.print(t)


# ---- fairness audit and sign-off ------------------------------------------------------------------------
MODEL_HELP = "emergency_admission or flare_up."


def _model_name(model: str) -> str:
    from training.registry import MODEL_NAMES

    name = model.replace("-", "_")
    if name not in MODEL_NAMES:
        raise _fail(f"unknown model {model!r}; choose from {', '.join(MODEL_NAMES)}")
    return name


def _typed_config(cls, config: Optional[Path], overrides: dict):
    """A pydantic configuration from an optional JSON file, with command-line overrides (None = not given)."""
    from pydantic import ValidationError

    try:
        base = cls.model_validate_json(config.read_text()) if config else cls()
        return cls.model_validate({**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except OSError as exc:
        raise _fail(f"{config}: cannot read the configuration ({exc})") from exc
    except ValidationError as exc:
        where = f"{config}: " if config else ""
        raise _fail(where + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc


def _audit_config(config: Optional[Path], **overrides):
    from evaluation.fairness.config import AuditConfig

    return _typed_config(AuditConfig, config, overrides)


def _print_audit(result, html_path: Path, json_path: Path) -> None:
    from evaluation.fairness.narrative import SHORT

    titles = {g.name: g.title for g in result.groupings}
    pop = result.population
    rows = "" if pop["rows"] == pop["people"] else f" ({pop['rows']:,} scored rows)"
    console.print(f"[bold]{pop['people']:,}[/] people{rows}, {pop['events']:,} outcomes; policy: {pop['policy']}")
    t = Table(title="Flags" if result.flags else "No flags: the audit passed")
    for col in ("grouping", "group", "metric", "value", "reference", "ratio (95% CI)", "adjusted"):
        t.add_column(col)
    for c in result.flags:
        t.add_row(titles[c.grouping], c.group, SHORT[c.metric], f"{c.value:.3g}", f"{c.reference_value:.3g} ({c.reference_group})",
                  f"{c.ratio:.2f} ({c.ratio_ci[0]:.2f}-{c.ratio_ci[1]:.2f})",
                  "" if c.adjusted_ratio is None else f"{c.adjusted_ratio:.2f}")
    console.print(t)
    if result.uncertain:
        console.print(f"{len(result.uncertain)} uncertain comparison(s) (outside the band, interval includes parity).")
    if result.mitigation:
        m = result.mitigation
        console.print(f"Mitigation shown (not applied): {m.method}; overall TPR {m.overall_before['tpr']:.1%} -> "
                      f"{m.overall_after['tpr']:.1%}, PPV {m.overall_before['ppv']:.1%} -> {m.overall_after['ppv']:.1%}")
    console.print(f"Bias report: [bold]{html_path}[/] (JSON: {json_path}); SHA-256 {result.report_sha256[:16]}...")


@audit_app.command("run")
def audit_run(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "emergency_admission",
    version: Annotated[Optional[int], typer.Option(help="Model version (default: the `candidate` alias).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share (0.05 = 5%).")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    mitigation: Annotated[bool, typer.Option(help="Also show group-specific thresholds side by side.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="Audit configuration (JSON, fields of AuditConfig).")] = None,
    engine: EngineOption = None,
) -> None:
    """Audit a registered model version by ethnicity, deprivation, sex and age; log the bias report to MLflow.
    With --engine spark the validation population is rebuilt, scored and aggregated on Spark."""
    from evaluation.fairness.audit import AuditInputError
    from evaluation.fairness.model_audit import audit_model
    from features.engine import EngineError

    settings = _settings()
    name = _model_name(model)
    cfg = _audit_config(config, top_share=top_share, bootstrap_draws=draws,
                        mitigation="group_thresholds" if mitigation else None)
    try:
        with _stages(f"Auditing {name}", 8) as advance:
            out = audit_model(settings, name, version, cfg, progress=advance, engine=_engine(engine))
    except (AuditInputError, EngineError) as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{name} version {out.result.subject['version']}: "
                  + ("[green]passed[/]" if out.result.passed else f"[red]{len(out.result.flags)} flag(s)[/]")
                  + f"; logged to MLflow as {out.artifact_path}")
    _print_audit(out.result, out.html_path, out.json_path)


@audit_app.command("scores")
def audit_scores(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet table with one row per person (or person-period).")],
    score: Annotated[str, typer.Option(help="Column holding the risk score.")],
    outcome: Annotated[str, typer.Option(help="Column holding the observed outcome (0/1).")],
    group: Annotated[list[str], typer.Option(help="Group column to audit by (repeatable).")],
    reference: Annotated[Optional[list[str]], typer.Option(help="Reference group as COLUMN=VALUE (repeatable).")] = None,
    age: Annotated[Optional[str], typer.Option(help="Age or age-band column (for age-sex adjusted comparisons).")] = None,
    sex: Annotated[Optional[str], typer.Option(help="Sex column (for age-sex adjusted comparisons).")] = None,
    person: Annotated[Optional[str], typer.Option(help="Person id column when people have several rows.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the tool being audited (shown in the report).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="A fixed score threshold instead of a top share.")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the report (default: $PHM_HOME/reports/audits/NAME).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Audit configuration (JSON).")] = None,
) -> None:
    """Audit any table of risk scores and outcomes (for example another tool's output) on the same footing."""
    from evaluation.fairness.audit import AuditInputError
    from evaluation.fairness.external import ScoresTableError, audit_table
    from evaluation.fairness.model_audit import write_report

    settings = _settings()
    refs = {}
    for item in reference or []:
        if "=" not in item:
            raise _fail(f"--reference {item!r}: write COLUMN=VALUE")
        k, v = item.split("=", 1)
        refs[k] = v
    cfg = _audit_config(config, top_share=top_share, threshold=threshold, bootstrap_draws=draws)
    label = name or file.stem
    try:
        with _stages(f"Auditing {label}", len(group) + 1) as advance:
            result, rejected = audit_table(file, score=score, outcome=outcome, groups=group, references=refs, age=age, sex=sex,
                                 person=person, name=label, cfg=cfg, progress=advance)
    except (ScoresTableError, AuditInputError) as exc:
        raise _fail(str(exc)) from exc
    target = out or settings.reports_dir / "audits" / label
    html_path, json_path = write_report(result, target)
    if len(rejected):
        rejected.to_csv(target / "quarantine.csv", index=False)
        console.print(f"[yellow]{len(rejected):,} row(s) could not be audited; see {target / 'quarantine.csv'} "
                      f"(first: row {rejected.source_row.iloc[0]}, {rejected.quarantine_reason.iloc[0]})[/]")
    console.print(f"{label}: " + ("[green]passed[/]" if result.passed else f"[red]{len(result.flags)} flag(s)[/]"))
    _print_audit(result, html_path, json_path)


def _decide(model: str, version: int, decision: str, by: str, reason: str, accept_flags: bool) -> None:
    from evaluation.fairness.signoff import SignoffError, decide

    settings = _settings()
    name = _model_name(model)
    try:
        record = decide(settings, name, version, decision, by, reason, accept_flags)
    except SignoffError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{name} version {version} [bold]{decision}[/] by {record['decision_by']} at {record['decision_at']} "
                  f"(report {record['decision_report_sha256'][:16]}...; hazard log entry {record['hazard_log_seq']})")


@audit_app.command("approve")
def audit_approve(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: Annotated[str, typer.Option(help="Name of the clinical safety officer.")],
    reason: Annotated[str, typer.Option(help="Why the model is acceptable (and the controls relied on).")],
    accept_flags: Annotated[bool, typer.Option(help="Explicitly accept the audit's flags with controls.")] = False,
) -> None:
    """Approve an audited version (recorded on the version and in the hazard log)."""
    _decide(model, version, "approved", by, reason, accept_flags)


@audit_app.command("reject")
def audit_reject(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: Annotated[str, typer.Option(help="Name of the clinical safety officer.")],
    reason: Annotated[str, typer.Option(help="Why the model must not be deployed.")],
) -> None:
    """Reject an audited version: it can never be promoted."""
    _decide(model, version, "rejected", by, reason, False)


@audit_app.command("log")
def audit_log(verify_only: Annotated[bool, typer.Option("--verify", help="Only check the chain.")] = False) -> None:
    """Show the hazard log (hazards, audits, decisions, promotions) and check that it is intact."""
    from evaluation.fairness import hazard_log
    from evaluation.fairness.model_audit import hazard_log_path

    path = hazard_log_path(_settings())
    problems = hazard_log.verify(path)
    if not verify_only:
        t = Table(title=f"Hazard log: {path}")
        for col in ("#", "when", "kind", "model", "version", "detail"):
            t.add_column(col, overflow="fold")
        for e in hazard_log.read(path) if not problems else []:
            detail = {"hazard": lambda e: f"{e.get('hazard_id')}: {e.get('hazard')} (risk {e.get('risk_rating')})",
                      "decision": lambda e: f"{e.get('decision')} by {e.get('by')}: {e.get('reason')}",
                      "promotion": lambda e: f"{e.get('alias')} by {e.get('by')} ({e.get('basis')})",
                      "audit": lambda e: f"{e.get('outcome')}; report {str(e.get('report_sha256'))[:12]}"}.get(
                          e["kind"], lambda e: "")(e)
            t.add_row(str(e["seq"]), e["at"], e["kind"], str(e.get("model", "")), str(e.get("version", "")), detail)
        console.print(t)
    if problems:
        raise _fail(f"{path} has been altered: " + "; ".join(problems))
    console.print(f"Hazard log intact ({len(hazard_log.read(path))} entries).")


@monitor_app.command("run")
def monitor_run(
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"],
                                                      help="Monitor as at this date (default: the end of the data).")] = None,
    model: Annotated[Optional[str], typer.Option(help="One model (default: every champion).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Thresholds (JSON, fields of MonitorConfig).")] = None,
) -> None:
    """Realised performance, calibration and fairness once outcomes matured, input drift; alerts; is retraining due?"""
    from evaluation.monitoring import MonitorConfig, record, run_monitor

    settings = _settings()
    cfg = _typed_config(MonitorConfig, config, {})
    names = [_model_name(model)] if model else ["emergency_admission", "flare_up"]
    any_champion = False
    for name in names:
        try:
            with console.status(f"Monitoring {name}"):
                result = run_monitor(settings, name, as_of.date() if as_of else None, cfg)
        except ValueError as exc:
            if model:
                raise _fail(str(exc)) from exc
            console.print(f"{name}: {exc}")
            continue
        any_champion = True
        path = record(settings, result)
        perf = result.performance
        console.rule(f"{name} version {result.version} as at {result.as_of}")
        if perf:
            console.print(f"Outcomes of {result.outcome_index_date} ({int(perf['people']):,} people): AUROC "
                          f"{perf['auroc']:.3f} (sign-off {result.signoff['auroc']:.3f}), calibration slope "
                          f"{perf['calibration_slope']:.2f}, observed/expected {perf['observed_to_expected']:.2f}")
        top = sorted(result.drift, key=lambda d: -d["psi"])[:3]
        console.print("Largest shifts since " + result.reference_index_date + ": "
                      + ", ".join(f"{d['feature']} PSI {d['psi']:.2f}" for d in top))
        t = Table(title=f"{len(result.alerts)} alert(s)")
        for col in ("kind", "metric", "about", "value", "threshold", "what"):
            t.add_column(col, overflow="fold")
        for a in result.alerts:
            t.add_row(a.kind, a.metric, a.subject, "" if a.value is None else f"{a.value:.3f}", a.threshold, a.message)
        console.print(t)
        console.print(("[red]Retraining is due[/] (" + ", ".join(result.retrain_reasons) + "): run `phm retrain "
                       f"{name.replace('_', '-')}`; a safety officer must approve before promotion.")
                      if result.retrain_due else "[green]No retraining due.[/]")
        console.print(f"Saved {path}; logged to MLflow experiment phm-monitoring.")
    if not any_champion:
        raise _fail("no champion model to monitor: audit, approve and `phm models promote` a version first")


@app.command("retrain")
def retrain(
    model: Annotated[str, typer.Argument(help="emergency-admission or flare-up.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    config: Annotated[Optional[Path], typer.Option(help="A train_config.json recorded by MLflow.")] = None,
    draws: Annotated[int, typer.Option(help="Bootstrap draws of the audit.")] = 1000,
) -> None:
    """Train a new version and audit it; it stays `candidate` until a safety officer approves and it is promoted."""
    from evaluation.fairness.config import AuditConfig
    from evaluation.fairness.model_audit import audit_model

    from mlflow import MlflowClient

    name = _model_name(model)
    _train(name, seed, config, None)
    settings = _settings()
    with _stages(f"Auditing {name}", 8) as advance:
        out = audit_model(settings, name, None, AuditConfig(bootstrap_draws=draws), progress=advance)
    MlflowClient().set_model_version_tag(name, str(out.result.subject["version"]), "retrained", "true")
    _print_audit(out.result, out.html_path, out.json_path)
    console.print(f"{name} version {out.result.subject['version']} is the [bold]candidate[/], awaiting a clinical "
                  "safety officer's decision (`phm audit approve|reject`, or the Equity page); it is not promoted.")


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version to make champion.")],
    by: Annotated[str, typer.Option(help="Who is promoting it.")] = "unknown",
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Move `champion` to a version, only if its audit passed or a safety officer accepted its flags."""
    from evaluation.fairness.signoff import SignoffError, promote

    settings = _settings()
    name = _model_name(model)
    try:
        check = promote(settings, name, version, by, alias)
    except SignoffError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{name} version {version} is now [bold]{alias}[/] ({check.reason}).")


# ---- demand forecasting -------------------------------------------------------------------------------
METRIC_HELP = "emergency_admissions, ga_beds_occupied or critical_care_beds_occupied (or a metric of your CSV)."


@forecast_app.command("fit")
def forecast_fit(
    csv: Annotated[Optional[Path], typer.Option(help="Your own daily series: CSV with date, site, metric, value[, capacity].")] = None,
    site: Annotated[Optional[list[str]], typer.Option(help="Only these sites (repeatable; ICS = the whole system).")] = None,
    metric: Annotated[Optional[list[str]], typer.Option(help="Only these metrics (repeatable).")] = None,
    origins: Annotated[Optional[int], typer.Option(help="Rolling back-test origins (default 6).")] = None,
    max_horizon: Annotated[Optional[int], typer.Option(help="Longest forecast, days (default 90).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: up to 2).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Forecast configuration (JSON, fields of ForecastConfig).")] = None,
) -> None:
    """Back-test Prophet and baselines on every series, choose per series, forecast with intervals, log to MLflow."""
    from features.series import SeriesFileError, SeriesSourceError
    from training.demand import ForecastConfig
    from training.demand_job import run_fit

    settings = _settings()
    over = {"origins": origins, "max_horizon": max_horizon, "workers": workers}
    if max_horizon:  # report horizons beyond a shorter maximum are dropped, and the maximum itself added
        defaults = ForecastConfig()
        over["horizons"] = sorted({h for h in defaults.horizons if h < max_horizon} | {max_horizon})
        over["selection_horizons"] = [h for h in defaults.selection_horizons if h <= max_horizon] or [max_horizon]
    cfg = _typed_config(ForecastConfig, config, over)
    try:
        with _stages("Forecasting", 3) as advance:
            out, warnings, run_id = run_fit(settings, cfg, csv, site, metric, progress=advance)
    except (SeriesFileError, SeriesSourceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    for w in warnings:
        err.print(f"[yellow]Warning:[/] {w}")
    _print_backtest(out.backtest, out.meta["selected"])
    if csv is None:
        from evaluation.scenarios import ScenarioError, prepare_inputs

        try:
            info = prepare_inputs(settings, out.folder)
            console.print(f"Scenario inputs: {info['people']:,} people scored by {info['model']} "
                          f"{info['alias']} (version {info['version']}) as at {info['index_date']}.")
        except ScenarioError as exc:
            err.print(f"[yellow]Scenarios unavailable:[/] {exc}")
    console.print(f"Forecasts to {out.meta['config']['max_horizon']} days saved in {out.folder}; MLflow run {run_id}")


def _print_backtest(backtest, selected: dict) -> None:
    t = Table(title="Back-test: MASE by horizon (days 1-h ahead; < 1 beats the seasonal naive in-sample) and 80% "
                    "interval coverage")
    horizons = sorted(backtest.horizon.unique())
    for col in ("site", "metric", "model", *[f"MASE h{h}" for h in horizons], "cover80 h28", "chosen"):
        t.add_column(col)
    for (s, m, model), part in backtest.groupby(["site", "metric", "model"], sort=True):
        by_h = part.set_index("horizon")
        t.add_row(s, m, model, *[f"{by_h.mase[h]:.2f}" for h in horizons],
                  f"{by_h.coverage_80.get(28, float('nan')):.0%}", "✓" if selected.get(f"{s}/{m}") == model else "")
    console.print(t)


def _load_forecast(site: str, metric: str, horizon: int):
    import pandas as pd

    from training.demand_job import forecasts_dir

    folder = forecasts_dir(_settings())
    if not (folder / "forecasts.parquet").exists():
        raise _fail("no forecasts yet: run `phm forecast fit` first")
    frame = pd.read_parquet(folder / "forecasts.parquet")
    sites = sorted(frame.site.unique())
    if site not in sites:
        raise _fail(f"unknown site {site!r}; forecasts exist for: {', '.join(sites)}")
    part = frame[(frame.site == site) & (frame.metric == metric)].sort_values("date")
    if part.empty:
        raise _fail(f"no {metric!r} forecast for {site}; metrics: {', '.join(sorted(frame[frame.site == site].metric.unique()))}")
    if horizon < 1 or horizon > len(part):
        raise _fail(f"horizon must be between 1 and {len(part)} days (the fitted maximum), not {horizon}")
    return folder, part.head(horizon).reset_index(drop=True)


def _export(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(frame.to_json(orient="records", date_format="iso", indent=1))
    elif out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        raise _fail(f"{out}: export to a .csv or .json file")
    console.print(f"Saved {out}")


@forecast_app.command("predict")
def forecast_predict(
    site: Annotated[str, typer.Option(help="Site code, or ICS for the whole system.")],
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "ga_beds_occupied",
    horizon: Annotated[int, typer.Option(help="Days ahead.")] = 28,
    out: Annotated[Optional[Path], typer.Option(help="Export to .csv or .json.")] = None,
) -> None:
    """The fitted forecast for a site and metric: mean, 80% and 95% intervals, chance of exceeding capacity."""
    folder, part = _load_forecast(site, metric, horizon)
    meta = json.loads((folder / "fit.json").read_text())
    t = Table(title=f"{site} {metric}: {part.model.iloc[0]} forecast from data to {meta['data_end']}")
    for col in ("date", "mean", "80% interval", "95% interval", "P(over threshold)"):
        t.add_column(col, justify="right")
    for r in part.itertuples():
        p = "" if r.p_exceed != r.p_exceed else f"{r.p_exceed:.0%}"
        t.add_row(str(r.date.date()), f"{r.mean:.1f}", f"{r.q10:.1f}-{r.q90:.1f}", f"{r.q025:.1f}-{r.q975:.1f}", p)
    console.print(t)
    if part.capacity.notna().any():
        console.print(f"Capacity {part.capacity.iloc[0]:g} beds; threshold {part.threshold.iloc[0]:g} "
                      f"({meta['config']['threshold_share']:.0%} of beds).")
    if out:
        _export(part.drop(columns=["sigma_a", "sigma_b"]), out)


@forecast_app.command("scenario")
def forecast_scenario(
    site: Annotated[str, typer.Option(help="Site code, or ICS.")],
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "ga_beds_occupied",
    horizon: Annotated[int, typer.Option(help="Days ahead.")] = 28,
    top_share: Annotated[float, typer.Option(help="Coordinators reach this highest-risk share (0.05 = 5%).")] = 0.05,
    prevented: Annotated[float, typer.Option(help="Share of those people's emergency admissions prevented.")] = 0.2,
    out: Annotated[Optional[Path], typer.Option(help="Export the daily comparison to .csv or .json.")] = None,
) -> None:
    """What if coordinators reach the top k% by risk and prevent p% of their admissions?"""
    from pydantic import ValidationError

    from evaluation.scenarios import Scenario, ScenarioError, run_scenario
    from training.demand_job import forecasts_dir

    try:
        scenario = Scenario(site=site, metric=metric, horizon=horizon, top_share=top_share, prevented_share=prevented)
        result = run_scenario(forecasts_dir(_settings()), scenario)
    except ValidationError as exc:
        raise _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    except ScenarioError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"Reaching {result.people_reached:,} people ({top_share:.1%}) and preventing {prevented:.0%} of their "
                  f"admissions: {result.prevented_admissions_per_day:.2f} fewer emergency admissions a day at {site}.")
    t = Table(title=f"{site} {metric}, next {horizon} days")
    for col in ("measure", "mean", "80% interval", "95% interval"):
        t.add_column(col, justify="right")
    for name, v in result.summary.items():
        t.add_row(name.replace("_", " "), f"{v['mean']:.1f}", f"{v['q10']:.1f} to {v['q90']:.1f}",
                  f"{v['q025']:.1f} to {v['q975']:.1f}")
    console.print(t)
    last = result.daily[-1]
    console.print(f"On {last['date']}: baseline {last['baseline_mean']:.1f}, with the intervention "
                  f"{last['scenario_mean']:.1f} (80%: {last['scenario_q10']:.1f}-{last['scenario_q90']:.1f}).")
    for note in result.notes:
        console.print(f"[dim]{note}[/]")
    if out:
        import pandas as pd

        _export(pd.DataFrame(result.daily), out)


# ---- daily scores, users and the service ---------------------------------------------------------------
@score_app.command("daily")
def score_daily_cmd(day: Annotated[Optional[datetime], typer.Option("--date", formats=["%Y-%m-%d"],
                                                                    help="Score as at this date (default: the day after the data ends).")] = None,
                    engine: EngineOption = None) -> None:
    """Score everyone eligible with the champion models; write today's snapshot atomically (on Spark with
    --engine spark: features, scores and reasons computed on the cluster, scores partitioned by practice)."""
    from features.engine import EngineError
    from serving.snapshots import SnapshotError, score_daily

    settings = _settings()
    try:
        with _stages("Daily scoring", 5) as advance:
            meta = score_daily(settings, day.date() if day else None, progress=advance, engine=_engine(engine))
    except (SnapshotError, EngineError) as exc:
        raise _fail(str(exc)) from exc
    counts = ", ".join(f"{k} {v:,}" for k, v in meta["band_counts"].items())
    console.print(f"Snapshot {meta['date']}: {meta['people']:,} people scored by emergency_admission version "
                  f"{meta['emergency_admission']['version']} (feature hash {meta['emergency_admission']['feature_hash']}); "
                  f"bands: {counts}; {meta['seconds']} s")
    if meta.get("stages"):
        console.print("Stages: " + ", ".join(f"{k.replace('_', ' ')} {v['seconds']:.1f} s" for k, v in meta["stages"].items())
                      + f"; peak memory {max(v['peak_gib'] for v in meta['stages'].values()):.1f} GiB")
    if meta["flare_up"]:
        console.print(f"Flare-up risk for {meta['flare_up']['people']:,} monitored patients (version {meta['flare_up']['version']}).")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The person's name (as recorded in the access log).")],
    role: Annotated[str, typer.Option(help="coordinator, planner, safety_officer or data_scientist.")],
    practice: Annotated[Optional[list[str]], typer.Option(help="Practice code a coordinator may see (repeatable).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing user of this name (new token).")] = False,
) -> None:
    """Create a user and print their token once (only its hash is stored)."""
    from serving.users import Role, UserError, add_user

    settings = _settings()
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise _fail(f"unknown role {role!r}; choose from {', '.join(r.value for r in Role)}") from exc
    known = _known_practices(settings)
    try:
        user, token = add_user(settings.home, name, role_value, practice or [], known, replace=replace)
    except UserError as exc:
        raise _fail(str(exc)) from exc
    scope = f" for practices {', '.join(user.practices)}" if user.practices else ""
    console.print(f"Added {user.name} as {user.role.value}{scope}. Token (shown once, keep it secret):")
    console.print(token, soft_wrap=True, highlight=False)


def _known_practices(settings: Settings) -> set[str] | None:
    from features.series import practice_pcns

    return set(practice_pcns(settings.warehouse_path)) if settings.warehouse_path.exists() else None


@users_app.command("list")
def users_list() -> None:
    """Users, roles and scopes (never tokens)."""
    from serving.users import load_users

    t = Table(title="Service users")
    for col in ("name", "role", "practices", "created"):
        t.add_column(col)
    for u in load_users(_settings().home):
        t.add_row(u.name, u.role.value, ", ".join(u.practices), u.created)
    console.print(t)


@app.command("serve")
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 3000) -> None:
    """Start the BentoML service (web pages under /ui, API under /api; BentoML's /readyz, /livez, /metrics)."""
    import os
    import shutil
    import sys

    settings = _settings()
    bentoml_bin = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    env = {**os.environ, "PHM_HOME": str(settings.home), "BENTOML_DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    console.print(f"Serving on http://{host}:{port}: web pages at /ui/, API at /api (OpenAPI: /api/docs); "
                  "Ctrl-C stops it.", soft_wrap=True)
    os.execve(bentoml_bin, [bentoml_bin, "serve", "serving.service:PHM", "--host", host, "--port", str(port)], env)


# ---- demo -------------------------------------------------------------------------------------------
@app.command("demo")
def demo(persons: Annotated[int, typer.Option(help="People in the synthetic ICS.")] = 50_000,
         seed: Annotated[int, typer.Option()] = 1,
         serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service at the end "
                                                   "(Ctrl-C stops it).")] = True,
         port: Annotated[int, typer.Option(help="Port for the service.")] = 3000) -> None:
    """Run the product end to end on the embedded synthetic ICS: generate, load, check quality, build features,
    train and register both risk models, audit them for fairness, sign off as a demo safety officer, promote,
    back-test and forecast bed and critical care demand, run a planning scenario, score today (and a week
    before, for the trend), create a demo user for each role, and start the service with its web pages."""
    settings = _settings()
    console.rule("[bold]PHM Intelligence demo")
    console.print(f"State folder: {settings.home}")
    data_generate(persons=persons, seed=seed, out=None, file_format="parquet", malformed_share=0.001,
                  under_record_group=None, under_record_share=0.0)
    data_load(src=None, as_of=None, warehouse=None)
    data_report(warehouse=None)
    for feature_set in ("emergency_admission", "flare_up"):
        features_build(as_of=[datetime(2024, 4, 1)], feature_set=feature_set, out=None, min_age=None,
                       include_death=False, ethnicity_as_predictor=False, warehouse=None)
    for model_name in ("emergency_admission", "flare_up"):
        _train(model_name, seed, None, None)
    for model_name in ("emergency_admission", "flare_up"):
        _demo_audit_and_signoff(settings, model_name)
    models_list()
    console.rule("Bed and critical care demand")
    forecast_fit(csv=None, site=None, metric=None, origins=None, max_horizon=None, workers=None, config=None)
    forecast_predict(site="ICS", metric="ga_beds_occupied", horizon=7, out=None)
    forecast_scenario(site="ICS", metric="ga_beds_occupied", horizon=28, top_share=0.05, prevented=0.2, out=None)
    console.rule("Daily risk scores and the service")
    from serving.snapshots import default_date

    last_week = datetime.combine(default_date(settings.warehouse_path) - timedelta(days=7), datetime.min.time())
    console.print(f"Scoring as at {last_week:%Y-%m-%d} first, so that today's worklist shows the change over a week.")
    score_daily_cmd(day=last_week)
    score_daily_cmd(day=None)
    tokens = _demo_users(settings)
    console.rule("[bold green]Demo complete")
    console.print("Demo users, one for each role (tokens are shown once; `phm users add NAME --role ROLE --replace` "
                  "issues new ones):")
    for name, role, scope, token in tokens:
        console.print(f"  [bold]{name}[/] ({scope}): {token}", soft_wrap=True, highlight=False)
    url = f"http://127.0.0.1:{port}"
    console.print(f"Web pages: [bold]{url}/ui/[/] (sign in with a token above). API: {url}/api/docs, for example\n"
                  f"  curl -H 'Authorization: Bearer {tokens[0][3]}' {url}/api/worklist", soft_wrap=True, highlight=False)
    if serve_after:
        serve(host="127.0.0.1", port=port)
    else:
        console.print(f"Start the service with [bold]phm serve --port {port}[/].")


DEMO_CSO = "Demo Safety Officer"


def _demo_users(settings: Settings) -> list[tuple[str, str, str, str]]:
    """One demo user per role (the coordinator scoped to the two largest practices), fresh tokens."""
    from serving.snapshots import current
    from serving.users import Role, add_user

    _, scores = current(settings)
    practices = scores.practice_code.value_counts().index[:2].tolist()
    out = []
    for name, role, scope in (("Demo Coordinator", Role.coordinator, practices), ("Demo Planner", Role.planner, []),
                              (DEMO_CSO, Role.safety_officer, []), ("Demo Data Scientist", Role.data_scientist, [])):
        user, token = add_user(settings.home, name, role, scope, replace=True)
        scope_text = {Role.coordinator: "people in " + ", ".join(user.practices), Role.planner: "aggregates, forecasts",
                      Role.safety_officer: "bias reports, decisions",
                      Role.data_scientist: "models, reports, aggregates"}[role]
        out.append((user.name, role.value, scope_text, token))
    return out


def _demo_audit_and_signoff(settings: Settings, name: str) -> None:
    """Audit the candidate, record a demo sign-off and promote it (a real deployment has a named CSO decide)."""
    from evaluation.fairness.config import AuditConfig
    from evaluation.fairness.model_audit import audit_model
    from evaluation.fairness.signoff import decide, promote

    console.rule(f"Fairness audit: {name}")
    with _stages(f"Auditing {name}", 8) as advance:
        out = audit_model(settings, name, None, AuditConfig(mitigation="group_thresholds"), progress=advance)
    _print_audit(out.result, out.html_path, out.json_path)
    version = out.result.subject["version"]
    flags = len(out.result.flags)
    reason = ("Demo sign-off: the audit passed." if not flags else
              f"Demo sign-off on synthetic data: {flags} flag(s) accepted so the demo can continue; "
              "a real safety officer decides after reading the report.")
    decide(settings, name, version, "approved", DEMO_CSO, reason, accept_flags=bool(flags))
    check = promote(settings, name, version, by="phm demo")
    console.print(f"{name} version {version} approved by {DEMO_CSO} and promoted to [bold]champion[/] ({check.reason}).")


# ---- config -----------------------------------------------------------------------------------------
@config_app.command("show")
def config_show() -> None:
    """Print the resolved settings (secrets masked)."""
    console.print_json(json.dumps(_settings().describe()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
