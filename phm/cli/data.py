"""`phm data`: generate a synthetic ICS, load extracts into the warehouse, report on data quality, export."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import data_reports
from phm.cli.common import console, fail, settings, stages, validation_message
from phm.core.settings import Settings

app = typer.Typer(help="Generate, load and check linked source data.", no_args_is_help=True)
FORMATS = ("auto", "phm", "synthea", "omop")


def _group_factors(given: list[str]) -> dict[str, float]:
    """`GROUP=F` options as a mapping (a malformed one is a clear error)."""
    out = {}
    for item in given:
        group, _, factor = item.partition("=")
        try:
            out[group.strip()] = float(factor)
        except ValueError:
            raise fail(f"--programme-group-factor {item!r}: write GROUP=F, e.g. core20=1.0") from None
    return out


def generate_ics(
    s: Settings,
    persons: int,
    seed: int,
    out: Optional[Path] = None,
    file_format: str = "parquet",
    malformed_share: float = 0.0,
    under_record_group: Optional[str] = None,
    under_record_share: float = 0.0,
    access_barrier_group: Optional[str] = None,
    access_barrier_factor: Optional[float] = None,
    programme: Optional[dict] = None,
) -> Path:
    """Write a synthetic ICS and print its extracts and realism check; returns the folder. `programme`: the
    fields of a ProgrammeConfig (an intervention with a known effect), or None."""
    from pydantic import ValidationError

    from features.synthetic.config import AccessBarrierConfig, DefectConfig, GeneratorConfig
    from features.synthetic.generator import generate

    if access_barrier_factor is not None and access_barrier_group is None:
        raise fail("--access-barrier-factor needs --access-barrier-group (the group that uses hospitals less)")
    try:
        barrier = (
            None
            if access_barrier_group is None
            else AccessBarrierConfig(
                group=access_barrier_group,
                **({} if access_barrier_factor is None else {"factor": access_barrier_factor}),
            )
        )
        cfg = GeneratorConfig(
            persons=persons,
            seed=seed,
            file_format=file_format,
            defects=DefectConfig(
                malformed_share=malformed_share,
                under_record_group=under_record_group,
                under_record_share=under_record_share,
            ),
            access_barrier=barrier,
            programme=programme,
        )
    except ValidationError as exc:
        raise fail(validation_message(exc)) from exc
    target = out or s.synthetic_dir
    with stages(f"Generating {persons:,} people", 5) as advance:
        result = generate(cfg, target, progress=advance)
    data_reports.extracts(result.rows)
    data_reports.realism(result.summary)
    console.print(f"Written to [bold]{target}[/]")
    return target


def load_extracts(
    s: Settings,
    src: Optional[Path] = None,
    as_of: Optional[date] = None,
    warehouse: Optional[Path] = None,
    source_format: str = "auto",
    allow_shrink: bool = False,
    new_key: bool = False,
):
    """Map (Synthea, OMOP) and load a folder of extracts into the warehouse; print the load report. A load that
    would shrink the current warehouse sharply is refused unless `allow_shrink`, one under another pseudonymisation
    key unless `new_key`."""
    from features.sources.contracts import CONTRACTS
    from features.sources.formats import FormatError, convert, detect
    from features.sources.loader import ContractError, load
    from features.sources.pseudonymise import MissingKeyError

    source = src or s.synthetic_dir
    if not source.is_dir():
        raise fail(f"{source}: no such folder of extracts. Generate one with `phm data generate`.")
    if source_format not in FORMATS:
        raise fail(f"unknown --format {source_format!r}: use {', '.join(FORMATS)}")
    try:
        fmt = detect(source) if source_format == "auto" else source_format
        if fmt != "phm":
            staged = s.data_dir / "staged" / fmt
            with console.status(f"Mapping the {fmt} folder onto the linked data model"):
                mapped = convert(source, fmt, staged)
            data_reports.conversion(mapped)
            source = staged
        with stages("Loading", len(CONTRACTS)) as advance:
            report = load(s, source, warehouse, as_of, progress=advance, allow_shrink=allow_shrink, new_key=new_key)
    except (ContractError, MissingKeyError, FormatError) as exc:
        raise fail(str(exc)) from exc
    data_reports.load_report(report, source, s.reports_dir / "load_report.json")
    return report


def quality_report(s: Settings, warehouse: Optional[Path] = None) -> None:
    """Print and save the data-quality report of the warehouse."""
    from features.sources import quality

    try:
        report = quality.build(warehouse or s.warehouse_path)
    except quality.WarehouseMissingError as exc:
        raise fail(str(exc)) from exc
    data_reports.quality(report)
    html_path, json_path = quality.write(report, s.reports_dir)
    console.print(f"Saved {html_path} and {json_path}")


@app.command("generate")
def generate_cmd(
    persons: Annotated[int, typer.Option(help="People ever registered in the synthetic ICS.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: $PHM_HOME/data/synthetic).")] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    malformed_share: Annotated[float, typer.Option(help="Share of rows to corrupt per table (tests).")] = 0.0,
    under_record_group: Annotated[
        Optional[str],
        typer.Option(help="Group whose diagnoses go uncoded: White, Asian, Black, Mixed, Other or core20."),
    ] = None,
    under_record_share: Annotated[float, typer.Option(help="Share of that group's diagnoses left uncoded.")] = 0.0,
    access_barrier_group: Annotated[
        Optional[str],
        typer.Option(
            help="Group that uses hospitals less for the same need (an access barrier): White, Asian, Black, Mixed, "
            "Other or core20."
        ),
    ] = None,
    access_barrier_factor: Annotated[
        Optional[float],
        typer.Option(help="That group's hospital use for the same need, between 0 and 1 (default 0.5)."),
    ] = None,
    programme_start: Annotated[
        Optional[datetime],
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Start a care-coordination programme with a known effect on this date (truth/programme_*).",
        ),
    ] = None,
    programme_practice: Annotated[
        Optional[list[str]], typer.Option(help="Practice code taking part (repeat; default every practice).")
    ] = None,
    programme_top_share: Annotated[float, typer.Option(help="Share eligible by risk score.")] = 0.05,
    programme_capacity: Annotated[int, typer.Option(help="Most new enrolments a month.")] = 100,
    programme_uptake: Annotated[float, typer.Option(help="Probability an offer is accepted.")] = 0.7,
    programme_factor: Annotated[
        float, typer.Option(help="True multiplier of the enrolled's emergency-admission hazard (1.0: no effect).")
    ] = 0.75,
    programme_holdout: Annotated[
        float,
        typer.Option(
            help="Share of the people the rule picks held out at random, never offered (truth/programme_holdout)."
        ),
    ] = 0.0,
    programme_group_factor: Annotated[
        Optional[list[str]],
        typer.Option(help="GROUP=F: a true factor of its own for a group (a broad ethnic group, or core20); repeat."),
    ] = None,
) -> None:
    """Generate a synthetic ICS: every source extract, ground-truth risks and a realism summary."""
    programme = (
        None
        if programme_start is None
        else {
            "start": programme_start.date(),
            "practices": programme_practice or None,
            "top_share": programme_top_share,
            "capacity": programme_capacity,
            "uptake": programme_uptake,
            "factor": programme_factor,
            "holdout": programme_holdout,
            "group_factors": _group_factors(programme_group_factor or []),
        }
    )
    generate_ics(
        settings(),
        persons,
        seed,
        out,
        file_format,
        malformed_share,
        under_record_group,
        under_record_share,
        access_barrier_group,
        access_barrier_factor,
        programme,
    )


@app.command("load")
def load_cmd(
    src: Annotated[
        Optional[Path], typer.Argument(help="Folder of extracts (default: $PHM_HOME/data/synthetic).")
    ] = None,
    as_of: Annotated[
        Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="Dates after this are future dates.")
    ] = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file (default: under PHM_HOME).")] = None,
    source_format: Annotated[
        str, typer.Option("--format", help="auto, phm, synthea (CSV export) or omop (CDM v5.4, CSV or Parquet).")
    ] = "auto",
    allow_shrink: Annotated[
        bool,
        typer.Option(
            "--allow-shrink",
            help="Replace the warehouse even if the population or a source shrinks sharply (setting load_shrink).",
        ),
    ] = False,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="Replace a warehouse loaded under another pseudonymisation key (everyone gets a new id: recorded "
            "outcomes, caseloads and the access log no longer find them).",
        ),
    ] = False,
) -> None:
    """Validate, pseudonymise and link extracts into the DuckDB warehouse; quarantine bad rows. Synthea exports
    and OMOP CDM extracts are first mapped onto the linked data model (see the mapping tables in docs/data-scientist.md). A load
    with no patient, or one that would shrink the current warehouse sharply (an empty or truncated extract), is
    refused and the warehouse left as it was, unless --allow-shrink; so is one under another pseudonymisation key than
    the current warehouse's (a PHM_PSEUDONYM_KEY overriding phm.toml, a mistyped key), unless --new-key."""
    load_extracts(settings(), src, as_of.date() if as_of else None, warehouse, source_format, allow_shrink, new_key)


@app.command("export")
def export_cmd(
    out: Annotated[
        Optional[Path],
        typer.Argument(help="Folder for the Parquet tables (default: the copy Spark reads, beside the warehouse)."),
    ] = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None,
) -> None:
    """Write every linked table of the warehouse as Parquet (one file per table): what the Spark engine reads, and
    what to copy to a cluster's storage (then set spark_tables to it, or load it into catalog tables)."""
    from features.engine.export import export_tables

    source = warehouse or settings().warehouse_path
    target = out or source.parent / "tables"
    try:
        with console.status(f"Exporting {source} to {target}"):
            written = export_tables(source, target)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    console.print(f"Written {len(written)} tables to {target}: {', '.join(written)}")


@app.command("report")
def report_cmd(warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None) -> None:
    """Data-quality summary: ethnicity coverage by practice and deprivation, linkage, date ranges."""
    quality_report(settings(), warehouse)


@app.command("practice-list")
def practice_list_cmd(
    practice: Annotated[list[str], typer.Option(help="Practice code (repeat for several).")],
    out: Annotated[Path, typer.Option(help="CSV file to write: outside PHM_HOME (it holds NHS numbers and names).")],
    src: Annotated[
        Optional[Path], typer.Option("--source", help="Synthetic ICS folder (default: $PHM_HOME/data/synthetic).")
    ] = None,
    rows: Annotated[int, typer.Option(help="Rows in the list.")] = 2_000,
    malformed_share: Annotated[float, typer.Option(help="Share of rows with a wrong check digit.")] = 0.0,
    other_share: Annotated[float, typer.Option(help="Share of rows of people registered at other practices.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
) -> None:
    """Write a synthetic practice's registered list (NHS number, name, date of birth, phone) as the clinical system
    would export it, for trying `phm worklist reidentify` and the Worklist page's upload. Synthetic extracts only;
    the file must be outside PHM_HOME."""
    from features.synthetic.practice_list import PracticeListRequestError, make

    s = settings()
    target = out.resolve()
    if target.is_relative_to(s.home.resolve()):
        raise fail(f"{out}: write practice lists outside PHM_HOME ({s.home}); nothing identifying is kept there")
    try:
        made = make(src or s.synthetic_dir, practice, rows, seed, malformed_share, other_share)
    except PracticeListRequestError as exc:
        raise fail(str(exc)) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    made.table.to_csv(target, index=False)
    console.print(
        f"Written {len(made.table):,} rows to [bold]{target}[/] ({int((made.kind == 'malformed').sum()):,} "
        f"with a malformed number, {int((made.kind == 'other').sum()):,} of other practices)"
    )
