"""`phm config`: the resolved settings, the JSON Schemas of every configuration file, and a check of a file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from phm.cli.common import console, fail, settings, validation_message

app = typer.Typer(
    help="Settings and configuration files: show, export their JSON Schemas, check a file.", no_args_is_help=True
)


def documents() -> dict[str, type]:
    """Every configuration document (a file a user writes or the product records), by schema name. Each is strict
    (unknown keys are errors) and carries `schema_version`; its JSON Schema is exported under `schemas/`."""
    from evaluation.fairness.config import AuditConfig
    from features.build import BuildConfig
    from features.synthetic.config import GeneratorConfig
    from phm.core.settings import Settings
    from serving.governance.configuration import Configuration
    from serving.governance.monitoring import MonitorConfig
    from training.config import TrainConfig
    from training.demand import ForecastConfig
    from training.scenarios import Scenario

    return {
        "settings": Settings,
        "audit_config": AuditConfig,
        "train_config": TrainConfig,
        "generator_config": GeneratorConfig,
        "forecast_config": ForecastConfig,
        "monitor_config": MonitorConfig,
        "scenario": Scenario,
        "build_config": BuildConfig,
        "safety_configuration": Configuration,
    }


def schema_texts() -> dict[str, str]:
    """File name -> JSON Schema text of every configuration document."""
    from phm.core.config import json_schema

    return {f"{name}.schema.json": json_schema(cls) for name, cls in documents().items()}


def stale_schemas(folder: Path) -> list[str]:
    """The schema files in `folder` that are missing or differ from the code's (empty when all are current)."""
    return [
        name
        for name, text in schema_texts().items()
        if not (folder / name).exists() or (folder / name).read_text() != text
    ]


def check_file(path: Path, kind: str) -> object:
    """Validate a configuration file (JSON, or TOML for settings) against its document; the error names each key."""
    from pydantic import ValidationError

    docs = documents()
    if kind not in docs:
        raise fail(f"--kind {kind!r}: choose from {', '.join(docs)}")
    cls = docs[kind]
    from phm.core.config import ConfigFileError, read_text

    try:
        text = read_text(path)
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except ConfigFileError as exc:
        raise fail(str(exc)) from exc
    except RecursionError as exc:
        raise fail(f"{path}: nested too deeply to be a configuration") from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise fail(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} ({exc})") from exc
    try:
        return cls.model_validate(data)  # the file alone: no environment, defaults for what it leaves out
    except ValidationError as exc:
        raise fail(f"{path}: {validation_message(exc, cls)}") from exc


@app.command("show")
def show_cmd() -> None:
    """Print the resolved settings (secrets masked), with each model's operating policy."""
    from models import specs
    from models.specs.policy import resolve

    s = settings()
    shown = s.describe()
    shown["policy"] = {name: resolve(s, name).as_dict() for name in specs.NAMES}
    console.print_json(json.dumps(shown))


@app.command("schemas")
def schemas_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schema files.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Only check that the files in --out are current.")] = False,
) -> None:
    """Write the JSON Schema of every configuration file (settings, audit, training, generator, forecast, monitoring,
    scenario, build, safety configuration) to --out; with --check, fail if any is missing or out of date."""
    if check:
        stale = stale_schemas(out)
        if stale:
            raise fail(
                f"{out}: out of date: {', '.join(stale)} (regenerate with `phm config schemas --out {out}`)", code=1
            )
        console.print(f"{out}: all {len(schema_texts())} schemas are current.")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in schema_texts().items():
        (out / name).write_text(text)
    console.print(f"Wrote {len(schema_texts())} JSON Schemas to {out}.")


@app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="A configuration file (JSON; TOML for settings).")],
    kind: Annotated[
        str,
        typer.Option(
            help="Which configuration: settings, audit_config, train_config, "
            "generator_config, forecast_config, monitor_config, scenario, "
            "build_config or safety_configuration."
        ),
    ],
) -> None:
    """Check a configuration file: an unknown (misspelled) key, a bad value or another schema version is an error
    naming the key."""
    check_file(file, kind)
    console.print(f"{file}: a valid {kind} (schema version 1).")
