"""What every command shares: the consoles, settings (with logging), errors, progress bars and typed options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from models import specs
from phm.core.logs import configure as configure_logging
from phm.core.settings import Settings, SettingsError, get_settings

console = Console()
err = Console(stderr=True)
# Not a terminal (a pipe, a file, a CI log): never wrap lines; a reader or a script sees whole values. Tables
# are printed at their natural width (`phm.cli.render.tables.table`).
console.soft_wrap = err.soft_wrap = not console.is_terminal

MODEL_HELP = " or ".join(specs.NAMES) + "."
METRIC_HELP = "emergency_admissions, ga_beds_occupied or critical_care_beds_occupied (or a metric of your CSV)."
EngineOption = Annotated[
    Optional[str],
    typer.Option(
        "--engine",
        help="duckdb (embedded) or spark (needs the [spark] extra; spark_* settings). Default: the engine setting.",
    ),
]


def settings() -> Settings:
    """The resolved settings (a bad key or value is an error naming it), with logging to `$PHM_HOME/logs`."""
    from models.specs.policy import PolicyError, check

    try:
        found = get_settings()
        check(found)
    except (SettingsError, PolicyError) as exc:
        raise fail(str(exc)) from exc
    try:
        configure_logging(found)
    except OSError as exc:  # a read-only or full disk, a home owned by someone else
        raise fail(
            f"{found.home}: PHM_HOME cannot be written ({exc.strerror or exc}); every command keeps its log there "
            "(logs/phm.log), so nothing is done until it can be: give this user a writable PHM_HOME"
        ) from exc
    return found


def registered(s: Settings, name: str, roles: tuple[str, ...], what: str) -> str:
    """`name` as given, when it names a registered service user with one of `roles` (`phm users add`)."""
    from serving.users import load_users

    name = name.strip()
    found = next((u for u in load_users(s.home) if u.name == name), None)
    if found is None or found.role.value not in roles:
        is_what = f"is a {found.role.value.replace('_', ' ')}, not a {what}" if found else f"is not a registered {what}"
        raise fail(
            f"--by {name!r} {is_what}: decisions are recorded against named users (`phm users list`; add one "
            f"with `phm users add NAME --role {roles[0]}`)"
        )
    return name


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error and return the exit to raise (`raise fail(...)`)."""
    # never broken mid-value, whatever the width; the message is shown as written (it may quote a file's names)
    err.print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def engine_choice(value: Optional[str]) -> Optional[str]:
    if value not in (None, "duckdb", "spark"):
        raise fail(f"--engine {value!r}: choose duckdb or spark")
    return value


def model_name(model: str) -> str:
    """A specified model's name from what the user typed (with hyphens or underscores)."""
    try:
        return specs.get(model).name
    except specs.UnknownModelError as exc:
        raise fail(str(exc)) from exc


@contextmanager
def stages(title: str, total: int) -> Iterator:
    """A progress bar that advances one step per stage message."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stage]}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=total, stage="")

        def advance(stage: str) -> None:
            bar.update(task, advance=1, stage=stage)

        yield advance
        bar.update(task, completed=total, stage="done")


def validation_message(exc: Any, model: Any = None) -> str:
    """A pydantic ValidationError as one line: `field: message; ...` (unknown keys named, with the nearest known
    key of `model` for a misspelling)."""
    from phm.core.config import explain

    return explain(exc, model)


def typed_config(cls, config: Optional[Path], overrides: dict):
    """A pydantic configuration from an optional JSON file, with command-line overrides (None = not given). An
    unknown (misspelled) key, a bad value or another schema version is an error naming the file and the key."""
    from pydantic import ValidationError

    from phm.core.config import ConfigFileError, read_text

    try:
        base = cls.model_validate_json(read_text(config)) if config else cls()
        return cls.model_validate({**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ConfigFileError as exc:
        raise fail(str(exc)) from exc
    except ValidationError as exc:
        raise fail((f"{config}: " if config else "") + validation_message(exc, cls)) from exc


def check_export(out: Path) -> str:
    """The export's format (".csv" or ".json"), or the error naming `out` (checked before any work is done)."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise fail(f"{out}: export to a .csv or .json file")
    if out.is_dir():
        raise fail(f"{out}: is a folder; name a .csv or .json file to export to")
    return suffix


def export_frame(frame, out: Path) -> None:
    """Save a table as .csv or .json, whole or not at all: written beside the target and renamed over it (an
    existing file is replaced only by a complete one); a path that cannot be written is an error naming it."""
    suffix = check_export(out)
    part = out.with_name(f".{out.name}.part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".json":
            part.write_text(frame.to_json(orient="records", date_format="iso", indent=1))
        else:
            frame.to_csv(part, index=False)
        part.replace(out)
    except OSError as exc:
        with suppress(OSError):
            part.unlink(missing_ok=True)
        raise fail(f"{out}: cannot write the export ({exc.strerror or type(exc).__name__})") from exc
    console.print(Text(f"Saved {out}"))
