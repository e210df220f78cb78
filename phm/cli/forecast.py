"""`phm forecast`: bed and critical care demand — fit and back-test, predict, planning scenarios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.text import Text

from phm.cli.render import forecasts
from phm.cli.common import (
    METRIC_HELP,
    console,
    err,
    check_export,
    export_frame,
    fail,
    settings,
    stages,
    typed_config,
    validation_message,
)
from phm.core.settings import Settings

app = typer.Typer(help="Bed and critical care demand: fit, back-test, predict, scenarios.", no_args_is_help=True)


def fit_forecasts(
    s: Settings,
    cfg,
    csv: Optional[Path] = None,
    sites: Optional[list[str]] = None,
    metrics: Optional[list[str]] = None,
    dayfirst: bool = False,
    columns: Optional[str] = None,
) -> None:
    """Back-test, select and forecast every series; prepare scenario inputs when the series are the warehouse's."""
    from features.planner_csv import SeriesFileError, parse_columns
    from features.series import SeriesSourceError
    from training.demand_job import run_fit

    try:
        mapping = parse_columns(columns)
        with stages("Forecasting", 3) as advance:
            out, warnings, run_id = run_fit(
                s, cfg, csv, sites, metrics, progress=advance, dayfirst=dayfirst, columns=mapping
            )
    except (SeriesFileError, SeriesSourceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    for w in warnings:
        err.print(f"[yellow]Warning:[/] {escape(w)}")
    forecasts.backtest(out.backtest, out.meta["selected"])
    forecasts.coverage(out.meta)
    if csv is None:
        from training.scenarios import ScenarioError

        try:
            info = scenario_inputs(s, out.folder)
            console.print(
                f"Scenario inputs: {info['people']:,} people scored by {info['model']} "
                f"{info['alias']} (version {info['version']}) as at {info['index_date']}."
            )
        except ScenarioError as exc:
            err.print(f"[yellow]Scenarios unavailable:[/] {escape(str(exc))}")
    console.print(f"Forecasts to {out.meta['config']['max_horizon']} days saved in {out.folder}; MLflow run {run_id}")


def scenario_inputs(s: Settings, folder: Path) -> dict:
    """Score the population for planning scenarios with the worklist model's champion, only when its safety case
    allows it to be used (approved report and configuration, the audited files): never a candidate or a refused
    champion. Otherwise the inputs kept from an earlier fit are removed and `ScenarioError` says why."""
    from models import specs
    from serving.batch.common import approved_champion
    from serving.governance.safety_case import SafetyCaseError
    from training import tracking
    from training.scenarios import ScenarioError, clear_inputs, prepare_inputs

    spec = specs.worklist()
    tracking.configure(s)
    try:
        champion, _, refused = approved_champion(s, spec, None)
    except SafetyCaseError as exc:
        champion, refused = None, f"the {spec.name} champion may not score: {exc}"
    if champion is None:
        clear_inputs(folder)
        raise ScenarioError(
            refused or f"no {spec.name} champion: audit, approve and `phm models promote` a version, then fit again"
        )
    return prepare_inputs(s, folder, champion.pyfunc, champion.version, spec.name)


def forecast_table(s: Settings, site: str, metric: str, horizon: int):
    """The saved forecast of a site and metric for `horizon` days, and the fit's description."""
    import pandas as pd

    from training.demand_job import forecasts_dir

    folder = forecasts_dir(s)
    if not (folder / "forecasts.parquet").exists():
        raise fail("no forecasts yet: run `phm forecast fit` first")
    try:
        frame = pd.read_parquet(folder / "forecasts.parquet")
        meta = json.loads((folder / "fit.json").read_text())
    except (OSError, ValueError) as exc:  # a damaged folder: say so rather than serve half of it
        raise fail(
            f"{folder}: the saved forecasts are incomplete or damaged ({exc}); run `phm forecast fit` again"
        ) from exc
    sites = sorted(frame.site.unique())
    if site not in sites:
        raise fail(f"unknown site {site!r}; forecasts exist for: {', '.join(sites)}")
    part = frame[(frame.site == site) & (frame.metric == metric)].sort_values("date")
    if part.empty:
        raise fail(
            f"no {metric!r} forecast for {site}; metrics: {', '.join(sorted(frame[frame.site == site].metric.unique()))}"
        )
    if horizon < 1 or horizon > len(part):
        raise fail(f"horizon must be between 1 and {len(part)} days (the fitted maximum), not {horizon}")
    return part.head(horizon).reset_index(drop=True), meta


def show_forecast(s: Settings, site: str, metric: str, horizon: int, out: Optional[Path] = None) -> None:
    part, meta = forecast_table(s, site, metric, horizon)
    forecasts.forecast(site, metric, part, meta)
    if out:
        export_frame(part.drop(columns=["sigma_a", "sigma_b"]), out)
    key = f"{site}/{metric}"
    for w in meta.get("warnings", []):
        if w.startswith(key + ":"):
            err.print(f"[yellow]Warning:[/] {escape(w)}")


def run_planning_scenario(
    s: Settings, site: str, metric: str, horizon: int, top_share: float, prevented: float, out: Optional[Path] = None
) -> None:
    from pydantic import ValidationError

    from training.demand_job import forecasts_dir
    from evaluation.disclosure import Policy
    from training.scenarios import Scenario, ScenarioError, run_scenario

    try:
        scenario = Scenario(site=site, metric=metric, horizon=horizon, top_share=top_share, prevented_share=prevented)
        result = run_scenario(forecasts_dir(s), scenario, Policy.from_settings(s))
    except ValidationError as exc:
        raise fail(validation_message(exc)) from exc
    except ScenarioError as exc:
        raise fail(str(exc)) from exc
    forecasts.scenario(result, site, metric, horizon, top_share, prevented)
    if out:
        import pandas as pd

        export_frame(pd.DataFrame(result.daily), out)


def forecast_config(
    config: Optional[Path],
    origins: Optional[int] = None,
    max_horizon: Optional[int] = None,
    workers: Optional[int] = None,
    holidays: Optional[str] = None,
):
    from training.demand import ForecastConfig

    over = {"origins": origins, "max_horizon": max_horizon, "workers": workers, "holidays": holidays}
    if max_horizon:  # report horizons beyond a shorter maximum are dropped, and the maximum itself added
        defaults = ForecastConfig()
        over["horizons"] = sorted({h for h in defaults.horizons if h < max_horizon} | {max_horizon})
        over["selection_horizons"] = [h for h in defaults.selection_horizons if h <= max_horizon] or [max_horizon]
    return typed_config(ForecastConfig, config, over)


@app.command("fit")
def fit_cmd(
    csv: Annotated[
        Optional[Path], typer.Option(help="Your own daily series: CSV with date, site, metric, value[, capacity].")
    ] = None,
    dayfirst: Annotated[
        bool, typer.Option("--dayfirst", help="CSV dates are UK dd/mm/yyyy (default: ISO yyyy-mm-dd).")
    ] = False,
    columns: Annotated[
        Optional[str], typer.Option(help="Map the CSV's column names, e.g. date=Date,value=Occupied.")
    ] = None,
    holidays: Annotated[
        Optional[str], typer.Option(help="Holiday calendar: england (default), none, or a country code (US, GB-SCT).")
    ] = None,
    site: Annotated[
        Optional[list[str]], typer.Option(help="Only these sites (repeatable; ICS = the whole system).")
    ] = None,
    metric: Annotated[Optional[list[str]], typer.Option(help="Only these metrics (repeatable).")] = None,
    origins: Annotated[
        Optional[int], typer.Option(help="Rolling back-test origins at most (default 12, every 14 days).")
    ] = None,
    max_horizon: Annotated[Optional[int], typer.Option(help="Longest forecast, days (default 90).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: up to 2).")] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="Forecast configuration (JSON, fields of ForecastConfig).")
    ] = None,
) -> None:
    """Back-test the model pool on every series, choose per series, forecast with conformal intervals, log to MLflow."""
    fit_forecasts(
        settings(),
        forecast_config(config, origins, max_horizon, workers, holidays),
        csv,
        site,
        metric,
        dayfirst,
        columns,
    )


@app.command("predict")
def predict_cmd(
    site: Annotated[str, typer.Option(help="Site code, or ICS for the whole system.")],
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "ga_beds_occupied",
    horizon: Annotated[int, typer.Option(help="Days ahead.")] = 28,
    out: Annotated[Optional[Path], typer.Option(help="Export to .csv or .json.")] = None,
) -> None:
    """The fitted forecast for a site and metric: mean, 80% and 95% intervals, chance of exceeding capacity."""
    show_forecast(settings(), site, metric, horizon, out)


@app.command("scenario")
def scenario_cmd(
    site: Annotated[str, typer.Option(help="Site code, or ICS.")],
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "ga_beds_occupied",
    horizon: Annotated[int, typer.Option(help="Days ahead.")] = 28,
    top_share: Annotated[float, typer.Option(help="Coordinators reach this highest-risk share (0.05 = 5%).")] = 0.05,
    prevented: Annotated[float, typer.Option(help="Share of those people's emergency admissions prevented.")] = 0.2,
    out: Annotated[Optional[Path], typer.Option(help="Export the daily comparison to .csv or .json.")] = None,
) -> None:
    """What if coordinators reach the top k% by risk and prevent p% of their admissions?"""
    run_planning_scenario(settings(), site, metric, horizon, top_share, prevented, out)


@app.command("nowcast")
def nowcast_cmd(
    site: Annotated[
        Optional[str], typer.Option(help="Only this site (or ICS); default every site and the ICS.")
    ] = None,
    nights: Annotated[int, typer.Option(help="Nights ahead (1-7).")] = 3,
    out: Annotated[Optional[Path], typer.Option(help="Export to .csv or .json.")] = None,
) -> None:
    """Beds occupied in the next nights from the patients in beds now (length-of-stay survival) plus expected admissions."""
    run_nowcast(settings(), site, nights, out)


def run_nowcast(s: Settings, site: Optional[str] = None, nights: int = 3, out: Optional[Path] = None) -> None:
    """Nowcast every site and the ICS, keep it for the service (the Capacity page, `GET /api/nowcast`), show it."""
    import pandas as pd
    from pydantic import ValidationError

    from features.series import SeriesSourceError, data_end
    from training.nowcast import NowcastConfig, current
    from training.nowcast_kept import save

    if not 1 <= nights <= 7:
        raise fail(f"--nights {nights}: between 1 and 7 nights ahead")
    kept_folder = s.home / "nowcast"
    if out is not None:  # checked before the work: an export must not replace what the service shows
        check_export(out)
        if out.resolve().is_relative_to(kept_folder.resolve()):
            raise fail(f"{out}: inside {kept_folder}, which keeps the nowcast for the service; export elsewhere")
    try:
        cfg = NowcastConfig(horizon=nights)
        end = pd.Timestamp(data_end(s.warehouse_path)) if s.warehouse_path.exists() else None
        if end is None:
            raise SeriesSourceError(f"{s.warehouse_path}: no warehouse; run `phm data load` first")
        result = current(s.warehouse_path, cfg, end)
    except ValidationError as exc:
        raise fail(validation_message(exc)) from exc
    except (SeriesSourceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    frame = result.frame
    if site is not None:
        if site not in set(frame.site):
            raise fail(f"unknown site {site!r}; sites: {', '.join(sorted(frame.site.unique()))}")
        frame = frame[frame.site == site]
    forecasts.nowcast(frame, result.night, result.calibration)
    for note in result.notes:
        console.print(Text(f"Note: {note}", style="yellow"), soft_wrap=True)
    try:
        kept = save(result, kept_folder)
    except OSError as exc:
        if out:
            export_frame(frame, out)  # what was asked for is still written
        raise fail(f"{kept_folder}: cannot keep the nowcast for the service ({exc.strerror or exc})") from exc
    console.print(Text(f"Kept for the Capacity page and GET /api/nowcast: {kept}"))
    if out:
        export_frame(frame, out)
