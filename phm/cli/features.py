"""`phm features`: the declared predictors in plain words, and feature tables with labels."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli import render
from phm.cli.common import EngineOption, console, engine_choice, fail, settings
from phm.core.settings import Settings

app = typer.Typer(help="Declared predictors: list them, build feature tables with labels.", no_args_is_help=True)


def build_features(s: Settings, dates: list[date], feature_set: str = "emergency_admission", out: Optional[Path] = None,
                   min_age: Optional[int] = None, include_death: bool = False, ethnicity_as_predictor: bool = False,
                   warehouse: Optional[Path] = None, engine: Optional[str] = None) -> dict:
    """Build a feature table with labels as at `dates`; print and return its manifest."""
    from features.build import DEFAULT_COHORTS, DEFAULT_LABELS, BuildConfig, EmptyCohortError, FeatureSourceError, build
    from features.engine import EngineError, open_engine

    if feature_set not in DEFAULT_COHORTS:
        raise fail(f"unknown feature set {feature_set!r}; choose from {', '.join(DEFAULT_COHORTS)}")
    dates = sorted(set(dates))
    cohort = DEFAULT_COHORTS[feature_set].model_copy(update={"min_age": min_age} if min_age is not None else {})
    label = DEFAULT_LABELS[feature_set].model_copy(update={"include_death": include_death})
    cfg = BuildConfig(feature_set=feature_set, index_dates=dates, cohort=cohort, label=label,
                      ethnicity_as_predictor=ethnicity_as_predictor)
    target = out or s.home / "features" / f"{feature_set}_{dates[0]}.parquet"
    try:
        with console.status(f"Building {feature_set} features as at {', '.join(map(str, dates))}"):
            with open_engine(s, engine_choice(engine), warehouse) as source:
                manifest = build(source, cfg, target)
    except (FeatureSourceError, EmptyCohortError, EngineError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    render.feature_build(manifest, feature_set)
    console.print(f"Written {target} and {target}.manifest.json")
    return manifest


@app.command("list")
def list_cmd(feature_set: Annotated[Optional[str], typer.Option("--set", help="emergency_admission or flare_up.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Machine-readable definitions.")] = False) -> None:
    """Print every feature definition in plain words (source, filter, window, aggregation, default)."""
    from features.definitions.catalogue import FEATURE_SETS
    from features.definitions.model import DerivedFeature, EventFeature

    if feature_set and feature_set not in FEATURE_SETS:
        raise fail(f"unknown feature set {feature_set!r}; choose from {', '.join(FEATURE_SETS)}")
    sets = [FEATURE_SETS[feature_set]] if feature_set else list(FEATURE_SETS.values())
    if as_json:
        console.print_json(json.dumps({s.name: [f.model_dump(mode="json") for f in s.features] for s in sets}))
        return
    for fs in sets:
        rows = []
        for f in fs.features:
            how = f.describe() if isinstance(f, EventFeature) else (
                f"from {', '.join(f.depends_on)}" if isinstance(f, DerivedFeature) else "patient record")
            default = str(f.default) if isinstance(f, EventFeature) and f.default is not None else ""
            role = " (carried, not a predictor)" if f.name in fs.carried else ""
            rows.append([f.name, f.family, f.description + role, how, default])
        render.table(f"{fs.name}: {fs.description} (definition hash {fs.definition_hash()})",
                     ["feature", "family", "description", "how it is computed", "default"], rows)


@app.command("build")
def build_cmd(
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
    build_features(settings(), [d.date() for d in as_of], feature_set, out, min_age, include_death,
                   ethnicity_as_predictor, warehouse, engine)
