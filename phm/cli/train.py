"""`phm train` and `phm retrain`: fit, validate and register risk models (and audit a retrained one)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import model_runs
from phm.cli.common import EngineOption, console, engine_choice, fail, model_name, settings, stages, validation_message
from models import specs
from models.specs.base import ModelSpec
from phm.core.settings import Settings


class SafeLearning(str, Enum):
    off = "off"
    holdout = "holdout"
    enrolment = "enrolment"


app = typer.Typer(help="Train risk models (tracked in MLflow, registered as candidate).", no_args_is_help=True)


def train_model(
    s: Settings,
    name: str,
    seed: int = 1,
    config: Optional[Path] = None,
    max_train_rows: Optional[int] = None,
    engine: Optional[str] = None,
    safe_learning: Optional[str] = None,
):
    """Train, validate and register `name` (alias candidate); print the validation table; return the run."""
    from features.engine import EngineError
    from training.config import TrainConfig, default_config
    from training.train_validate import run

    if not s.warehouse_path.exists():
        raise fail(f"{s.warehouse_path}: no warehouse yet. Run `phm data load` (or `phm demo`) first.")
    from pydantic import ValidationError

    from phm.core.config import ConfigFileError, read_text

    try:
        cfg = TrainConfig.model_validate_json(read_text(config)) if config else default_config(name, seed)
    except ValidationError as exc:
        raise fail(f"{config}: not a valid training configuration: {validation_message(exc, TrainConfig)}") from exc
    except ConfigFileError as exc:
        raise fail(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise fail(f"{config}: not a valid training configuration ({exc})") from exc
    if cfg.model_name != name:
        raise fail(f"{config} configures {cfg.model_name}, not {name}")
    if max_train_rows is not None:
        try:
            cfg = TrainConfig.model_validate({**cfg.model_dump(), "max_train_rows": max_train_rows})
        except ValidationError as exc:
            raise fail(f"--max-train-rows: {validation_message(exc, TrainConfig)}") from exc
    if safe_learning:
        cfg = cfg.model_copy(update={"safe_learning": safe_learning})
    with stages(f"Training {name}", 8) as advance:
        try:
            result = run(cfg, s, progress=advance, engine=engine_choice(engine))
        except (ValueError, EngineError) as exc:
            raise fail(str(exc)) from exc
    model_runs.training_run(name, result)
    return result


SeedOption = Annotated[int, typer.Option(help="Random seed (same seed, same metrics).")]
ConfigOption = Annotated[Optional[Path], typer.Option(help="A train_config.json recorded by MLflow.")]
RowsOption = Annotated[Optional[int], typer.Option(help="Sample training rows (quick runs).")]


def _train_command(spec: ModelSpec):
    def command(
        seed: SeedOption = 1,
        config: ConfigOption = None,
        max_train_rows: RowsOption = None,
        engine: EngineOption = None,
    ) -> None:
        train_model(settings(), spec.name, seed, config, max_train_rows, engine)

    d = spec.training
    horizon = f"{spec.label.horizon_months}-month" if spec.label.horizon_months else f"{spec.label.horizon_days}-day"
    last = "index date" if len(d.validation_dates) == 1 else f"{len(d.validation_dates)} index dates"
    pattern = f"{d.train_dates[0]}..{d.train_dates[-1]} then {d.validation_dates[0]}" + (
        f"..{d.validation_dates[-1]}" if len(d.validation_dates) > 1 else ""
    )
    command.__doc__ = (
        f"{spec.title}. By default the index dates follow the data: validate on the latest {last} "
        f"whose {horizon} follow-up lies within the data and train on {len(d.train_dates)} earlier ones, "
        f"in the pattern of {pattern} (the dates on data ending 2025-03-31); --config names other dates. "
        "Registers a candidate."
    )
    return command


for _spec in specs.SPECS.values():  # `phm train <model>` for every specified model
    app.command(_spec.cli_name)(_train_command(_spec))


def retrain_cmd(
    model: Annotated[str, typer.Argument(help=" or ".join(s.cli_name for s in specs.SPECS.values()) + ".")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    config: Annotated[Optional[Path], typer.Option(help="A train_config.json recorded by MLflow.")] = None,
    draws: Annotated[int, typer.Option(help="Bootstrap draws of the audit.")] = 1000,
    safe_learning: Annotated[
        SafeLearning,
        typer.Option(
            help="holdout: leave out the listed people the programme may have treated and up-weight the random holdout "
            "(needs an approved holdout); enrolment: leave out the enrolled, up-weight the other listed; off: train on "
            "everyone (learns the programme's success as lower risk)."
        ),
    ] = SafeLearning.off,
) -> None:
    """Train a new version and audit it; it stays `candidate` until a safety officer approves and it is promoted."""
    from mlflow import MlflowClient

    from evaluation.fairness.config import AuditConfig
    from phm.cli.audit import audit_version

    from models.specs.policy import resolve

    name = model_name(model)
    s = settings()
    trained = train_model(
        s, name, seed, config, safe_learning=None if safe_learning is SafeLearning.off else safe_learning.value
    )
    # the version this retrain registered, not whatever holds the candidate alias by now (a concurrent train)
    out = audit_version(
        s, name, trained.version, AuditConfig(bootstrap_draws=draws, top_share=resolve(s, name).top_share)
    )
    MlflowClient().set_model_version_tag(name, str(out.result.subject["version"]), "retrained", "true")
    console.print(
        f"{name} version {out.result.subject['version']} is the [bold]candidate[/], awaiting a clinical "
        "safety officer's decision (`phm audit approve|reject`, or the Equity page); it is not promoted."
    )
