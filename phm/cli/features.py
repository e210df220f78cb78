"""`phm features`: the declared predictors in plain words, and feature tables with labels."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import data_reports, tables
from models import specs
from phm.cli.common import MODEL_HELP, EngineOption, console, engine_choice, fail, settings
from phm.core.settings import Settings

app = typer.Typer(help="Declared predictors: list them, build feature tables with labels.", no_args_is_help=True)


def feature_spec(name: Optional[str]):
    """The model whose feature set `--set` names (default: the worklist model)."""
    if name is None:
        return specs.worklist()
    try:
        return specs.get(name)
    except specs.UnknownModelError:
        raise fail(f"unknown feature set {name!r}; choose from {', '.join(specs.NAMES)}") from None


def build_features(
    s: Settings,
    dates: list[date],
    feature_set: Optional[str] = None,
    out: Optional[Path] = None,
    min_age: Optional[int] = None,
    include_death: bool = False,
    ethnicity_as_predictor: bool = False,
    warehouse: Optional[Path] = None,
    engine: Optional[str] = None,
) -> dict:
    """Build a feature table with labels as at `dates`; print and return its manifest."""
    from pydantic import ValidationError

    from features.build import EmptyCohortError, FeatureSourceError, build
    from features.engine import EngineError, open_engine

    spec = feature_spec(feature_set)
    dates = sorted(set(dates))
    try:  # validated (model_copy would take -5 as it is)
        cohort = type(spec.cohort).model_validate(
            {**spec.cohort.model_dump(), **({"min_age": min_age} if min_age is not None else {})}
        )
    except ValidationError as exc:
        raise fail(f"--min-age {min_age}: {exc.errors()[0]['msg']}") from None
    label = spec.label.model_copy(update={"include_death": include_death})
    cfg = spec.build_config(dates, cohort=cohort, label=label, ethnicity_as_predictor=ethnicity_as_predictor)
    feature_set = spec.name
    target = out or s.home / "features" / f"{feature_set}_{dates[0]}.parquet"
    try:
        with console.status(f"Building {feature_set} features as at {', '.join(map(str, dates))}"):
            with open_engine(s, engine_choice(engine), warehouse) as source:
                manifest = build(source, cfg, target)
    except (FeatureSourceError, EmptyCohortError, EngineError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    data_reports.feature_build(manifest, feature_set)
    console.print(f"Written {target} and {target}.manifest.json")
    return manifest


@app.command("list")
def list_cmd(
    feature_set: Annotated[Optional[str], typer.Option("--set", help=MODEL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable definitions.")] = False,
) -> None:
    """Print every feature definition in plain words (source, filter, window, aggregation, default)."""
    from features.definitions.model import DerivedFeature, EventFeature

    sets = [feature_spec(feature_set).features] if feature_set else [s.features for s in specs.SPECS.values()]
    if as_json:
        console.print_json(json.dumps({s.name: [f.model_dump(mode="json") for f in s.features] for s in sets}))
        return
    for fs in sets:
        rows = []
        for f in fs.features:
            how = (
                f.describe()
                if isinstance(f, EventFeature)
                else (f"from {', '.join(f.depends_on)}" if isinstance(f, DerivedFeature) else "patient record")
            )
            default = str(f.default) if isinstance(f, EventFeature) and f.default is not None else ""
            role = " (carried, not a predictor)" if f.name in fs.carried else ""
            rows.append([f.name, f.family, f.description + role, how, default])
        tables.table(
            f"{fs.name}: {fs.description} (definition hash {fs.definition_hash()})",
            ["feature", "family", "description", "how it is computed", "default"],
            rows,
        )


@app.command("build")
def build_cmd(
    as_of: Annotated[list[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="Index date (repeatable).")],
    feature_set: Annotated[
        Optional[str], typer.Option("--set", help=MODEL_HELP + " Default: the worklist model.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Parquet output (default: $PHM_HOME/features/SET_DATE.parquet).")
    ] = None,
    min_age: Annotated[Optional[int], typer.Option(help="Youngest eligible age (default 18).")] = None,
    include_death: Annotated[bool, typer.Option(help="Count death as an outcome (emergency admission set).")] = False,
    ethnicity_as_predictor: Annotated[bool, typer.Option(help="Use ethnicity as a predictor (recorded).")] = False,
    warehouse: Annotated[Optional[Path], typer.Option(help="Warehouse file.")] = None,
    engine: EngineOption = None,
) -> None:
    """Build a person-level feature table with labels as at index dates, and its manifest."""
    build_features(
        settings(),
        [d.date() for d in as_of],
        feature_set,
        out,
        min_age,
        include_death,
        ethnicity_as_predictor,
        warehouse,
        engine,
    )
