"""`phm monitor`: deployed models' realised performance, calibration, fairness and drift."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import governance
from phm.cli.common import console, fail, model_name, settings, typed_config

app = typer.Typer(help="Monitor deployed models: drift, decay and fairness over time.", no_args_is_help=True)


@app.command("run")
def run_cmd(
    as_of: Annotated[
        Optional[datetime],
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="Monitor as at this date (default: the end of the data)."),
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="One model (default: every champion).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Thresholds (JSON, fields of MonitorConfig).")] = None,
) -> None:
    """Realised performance, calibration and fairness once outcomes matured, input drift; alerts; is retraining due?"""
    from serving.governance.monitoring import MonitorConfig, monitoring_date, record, run_monitor
    from training.registry import MODEL_NAMES

    s = settings()
    cfg = typed_config(MonitorConfig, config, {})
    if not s.warehouse_path.exists():
        raise fail(f"{s.warehouse_path}: no warehouse yet. Run `phm data load` (or `phm demo`) first.")
    try:
        day = monitoring_date(s, as_of.date() if as_of else None)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    names = [model_name(model)] if model else list(MODEL_NAMES)
    any_champion = False
    for name in names:
        try:
            with console.status(f"Monitoring {name}"):
                result = run_monitor(s, name, day, cfg)
        except ValueError as exc:
            if model:
                raise fail(str(exc)) from exc
            console.print(f"{name}: {exc}")
            continue
        any_champion = True
        governance.monitoring(result, record(s, result))
    if not any_champion:
        raise fail("no champion model to monitor: audit, approve and `phm models promote` a version first")
