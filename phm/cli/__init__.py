"""The `phm` command: one module per command group (`phm.cli.data`, `phm.cli.train`, ...), each a thin layer
of options over functions of the lower layers; tables and summaries are printed by `phm.cli.render`; the demo
calls the same functions as the commands."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from phm import __version__
from phm.cli import (
    access,
    audit,
    config,
    data,
    db,
    demo,
    evaluate,
    events,
    features,
    forecast,
    models,
    monitor,
    reidentify,
    safety,
    score,
    service,
    train,
    users,
    worklist_outcomes,
)
from phm.cli.common import console, fail
from phm.cli.process_exit import exit_code, leave
from phm.core.ledger_head import LedgerError

app = typer.Typer(
    help="PHM Intelligence: population health management for an Integrated Care System.",
    no_args_is_help=True,
    add_completion=False,
)
for group, name in (
    (data.app, "data"),
    (features.app, "features"),
    (train.app, "train"),
    (models.app, "models"),
    (audit.app, "audit"),
    (monitor.app, "monitor"),
    (forecast.app, "forecast"),
    (score.app, "score"),
    (users.app, "users"),
    (access.app, "access"),
    (db.app, "db"),
    (config.app, "config"),
    (worklist_outcomes.app, "worklist"),
    (events.app, "events"),
    (evaluate.app, "evaluate"),
):
    app.add_typer(group, name=name)
worklist_outcomes.app.command("reidentify")(reidentify.reidentify_cmd)
for name, command in (
    ("approve", safety.approve_cmd),
    ("reject", safety.reject_cmd),
    ("approve-change", safety.approve_change_cmd),
    ("reject-change", safety.reject_change_cmd),
    ("status", safety.status_cmd),
    ("log", safety.log_cmd),
):
    audit.app.command(name)(command)
app.command("retrain")(train.retrain_cmd)
app.command("serve")(service.serve_cmd)
app.command("demo")(demo.demo_cmd)


def _version(value: bool) -> None:
    if value:
        console.print(f"phm {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """PHM Intelligence."""


def main() -> None:
    """The `phm` command. A ledger that cannot be opened (a short or missing key, a broken chain) is an operator's
    error: it is printed plainly and exits 2, never as a traceback. The process ends through `process_exit.leave`
    (its exit status is the command's, never a native library's abort at teardown)."""
    try:
        app()
        code = 0
    except LedgerError as error:
        code = fail(str(error)).exit_code
    except SystemExit as done:
        code = exit_code(done.code)
    except Exception as error:
        code = _registry_failure(error)
    leave(code)


def _registry_failure(error: Exception) -> int:
    """A model registry that cannot be used (an unreachable tracking server, a broken store) ends the command
    with one plain message, any password in the store's address hidden; any other error is raised as it was."""
    loaded = sys.modules.get("mlflow.exceptions")
    if loaded is None:  # MLflow never loaded: the error cannot be the registry's
        raise error
    from phm.core import redact
    from training.registry import RegistryUnavailable

    if isinstance(error, RegistryUnavailable):
        return fail(str(error)).exit_code
    if isinstance(error, loaded.MlflowException):
        return fail(f"the model registry could not be used: {redact.message(str(error))[:600]}").exit_code
    raise error
