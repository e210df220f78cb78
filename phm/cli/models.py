"""`phm models`: registered versions and the gated move of `champion`."""

from __future__ import annotations

from typing import Annotated

import typer

from phm.cli.render import model_runs, tables
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
    model_runs.model_versions(found, s.mlflow_tracking_uri)


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


@app.command("persistence")
def persistence_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = "",
    months: Annotated[int, typer.Option(help="How far back the past index dates reach (months).")] = 12,
    step: Annotated[int, typer.Option(help="Months between past index dates.")] = 3,
    top_share: Annotated[float, typer.Option(help="The top share followed (0.05 = the top 5%).")] = 0.05,
) -> None:
    """Of the top 5% by the champion's risk at past index dates, the share still in the top 5% 3, 6 and 12 months
    later (shown on the Models page)."""
    from serving.governance.persistence import result_path, run_persistence

    if not 0 < top_share < 1 or months < 1 or not 1 <= step <= months:
        raise fail("--top-share is between 0 and 1; --step is 1 month or more and at most --months")
    s = settings()
    name = model_name(model) if model else None
    try:
        result = run_persistence(s, name, history_months=months, step_months=step, top_share=top_share)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    tables.dicts(
        f"{result['model']} v{result['version']}: top {top_share:.0%} still in the top {top_share:.0%} after",
        [
            {
                "months": lag["months"],
                "pairs of dates": len(lag["pairs"]),
                "share": "-" if lag["share"] is None else f"{lag['share']:.1%}",
            }
            for lag in result["lags"]
        ],
    )
    console.print(f"Saved {result_path(s, result['model'])}")
