"""`phm models`: registered versions and the gated move of `champion`."""

from __future__ import annotations

from typing import Annotated

import typer

from phm.cli import render
from phm.cli.common import MODEL_HELP, console, fail, model_name, settings
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


def promote_version(s: Settings, name: str, version: int, by: str, alias: str = "champion") -> None:
    """Move `alias` to a version through the sign-off gate."""
    from serving.governance.signoff import SignoffError, promote

    try:
        check = promote(s, name, version, by, alias)
    except SignoffError as exc:
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
    by: Annotated[str, typer.Option(help="Who is promoting it.")] = "unknown",
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Move `champion` to a version, only if its audit passed or a safety officer accepted its flags."""
    promote_version(settings(), model_name(model), version, by, alias)
