"""`phm models`: registered versions and the gated move of `champion`."""

from __future__ import annotations

from typing import Annotated

import typer

from phm.cli import render
from phm.cli.common import MODEL_HELP, console, fail, model_name, registered, settings
from phm.core.settings import Settings

app = typer.Typer(help="The model registry: versions, aliases and metrics.", no_args_is_help=True)


def list_versions(s: Settings) -> None:
    """Print registered versions with aliases, audit status and headline validation metrics."""
    from training import registry, tracking

    tracking.configure(s)
    found = registry.versions()
    if not found:
        console.print("No registered models yet. Train one with `phm train emergency-admission`.")
        return
    render.model_versions(found, s.mlflow_tracking_uri)


PROMOTERS = ("data_scientist", "safety_officer")


def promote_version(s: Settings, name: str, version: int, by: str, alias: str = "champion") -> None:
    """Move `alias` to a version through the sign-off gate; `by` must be a registered data scientist or safety
    officer."""
    from serving.governance.safety_case import SafetyCaseError
    from serving.governance.signoff import promote

    who = registered(s, by, PROMOTERS, "data scientist or safety officer")
    try:
        check = promote(s, name, version, who, alias)
    except SafetyCaseError as exc:
        raise fail(str(exc)) from exc
    console.print(f"{name} version {version} is now [bold]{alias}[/] ({check.reason}).")


@app.command("list")
def list_cmd() -> None:
    """Registered versions with aliases, audit status and headline validation metrics."""
    list_versions(settings())


@app.command("promote")
def promote_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version to make champion.")],
    by: Annotated[str, typer.Option(help="Who is promoting it: a registered data scientist or safety officer.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Move `champion` to a version, only if a named safety officer approved its current audit report (flagged or
    not) and the configuration it would run under."""
    promote_version(settings(), model_name(model), version, by, alias)
