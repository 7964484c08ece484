"""``rnnkit forecast train | predict | evaluate``: forecasts with intervals from a global RNN.

Data: a bundled real series by name (--data nyc-weather, city-weather, seattle-weather,
sp500, msft, elecdemand) or your CSV/Parquet file (--file, with --time, --target, --id,
--past, --future-covariates). Missing values and gaps: each series is put on a regular grid;
missing targets are left out of the loss and fed as "not observed". The work is in
`rnnkit.apps.forecast`.
"""

from __future__ import annotations

import argparse

import pandas as pd

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    existing_file,
    non_negative_int,
    out_dir,
    positive_float,
    positive_int,
    refuse_file_flags,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.files import write_json
from rnnkit.report import Section, table_to_text

NAME = "forecast"
HELP = "forecast time series with intervals; backtest against naive, ETS and ARIMA"
ORDER = 40
EVALUATED = ("nyc-weather", "sp500", "elecdemand")
ALL_BASELINES = "seasonal_naive,naive2,ets,theta,arima"  # of the competitions


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, __doc__)

    train = add_verb(
        verbs,
        "train",
        "train a global RNN forecaster",
        [
            "rnnkit forecast train --data elecdemand --out models/elec",
            "rnnkit forecast train --file sales.csv --time date --target units --id store "
            "--horizon 14 --out models/sales",
            "rnnkit forecast train --data nyc-weather --cell gru --likelihood gaussian --quick",
            "rnnkit forecast train --data nyc-weather --decoder autoregressive --seasonal-lag "
            "--ensemble 3 --out models/nyc",
        ],
    )
    add_common_flags(train)  # --epochs: default the Forecaster's (chosen on M3 validation)
    _add_data_flags(train)
    train.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        help="steps to forecast (default: the data set's, else 1 season)",
    )
    train.add_argument(
        "--context",
        type=positive_int,
        default=None,
        help="past steps the model reads (default: 3 seasons, >= 2 horizons)",
    )
    train.add_argument(
        "--season-length",
        type=positive_int,
        default=None,
        help="steps per season (default: guessed from the step and the data's length: "
        "a day of hourly steps, a week of days, a year of months, ...; 1: none)",
    )
    train.add_argument(
        "--cell", choices=["lstm", "gru", "rnn", "mingru", "minlstm"], default="lstm"
    )
    train.add_argument(
        "--hidden-size",
        type=positive_int,
        default=None,
        help="units per RNN layer (default: the Forecaster's)",
    )
    train.add_argument("--likelihood", choices=["student_t", "gaussian"], default="student_t")
    train.add_argument(
        "--decoder",
        choices=["direct", "autoregressive"],
        default="direct",
        help="all steps at once (default) or step by step on its own samples",
    )
    train.add_argument(
        "--seasonal-lag",
        action="store_true",
        help="the decoder also reads the value one season before each future step",
    )
    train.add_argument(
        "--ensemble",
        type=positive_int,
        default=1,
        help="train this many networks (seeds --seed, --seed + 1, ...) and pool their forecasts",
    )
    train.add_argument(
        "--patience",
        type=non_negative_int,
        default=4,
        help="stop after this many epochs without a lower validation loss (0: never); "
        "the best epoch's weights are kept",
    )
    train.add_argument(
        "--max-passes",
        type=positive_float,
        default=None,
        help="an epoch reads the training windows at most this many times: much faster on "
        "one short series (e.g. 30); default: 100 batches an epoch whatever the data",
    )
    train.add_argument(
        "--combine",
        choices=["mean", "auto", "mean_holt", "by_season", "theta", "none"],
        default=None,
        help="how the network's forecast is averaged with statistical ones (Theta, damped "
        "trend; mean_holt adds Holt's trend; auto: whichever mean the validation windows "
        "prefer; by_season: Holt's trend for data without seasons; none: the network alone); "
        "default: the Forecaster's",
    )
    train.set_defaults(func=run_train)

    predict = add_verb(
        verbs,
        "predict",
        "forecast the steps after the end of the data",
        [
            "rnnkit forecast predict --model models/elec --data elecdemand --future workdays.csv",
            "rnnkit forecast predict --model models/sales --file sales.csv --out forecasts",
            "rnnkit forecast predict --model models/sales --file sales_today.csv --recalibrate",
        ],
    )
    predict.add_argument("--model", required=True, help="folder written by 'forecast train'")
    predict.add_argument("--out", default=None, help="folder for forecast.csv and forecast.png")
    predict.add_argument("--device", default="auto")
    _add_data_flags(predict)
    predict.add_argument(
        "--future", default=None, help="CSV of known-future covariates: time, series, columns"
    )
    predict.add_argument("--horizon", type=positive_int, default=None)
    predict.add_argument(
        "--recalibrate",
        action="store_true",
        help="first refit the intervals on the model's own forecasts over the last windows "
        "of the data whose truth is known (Forecaster.update): for data newer than training",
    )
    predict.set_defaults(func=run_predict)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "rolling-origin backtest on bundled real data against naive, seasonal naive, ETS, "
        "ARIMA (metrics.json, backtest.png); or the M3/M1/Tourism competitions with --data m3",
        [
            "rnnkit forecast evaluate --out results/forecast",
            "rnnkit forecast evaluate --data elecdemand --quick",
            "rnnkit forecast evaluate --data m3 --out results/m3",
            "rnnkit forecast evaluate --data m3-monthly --part validation --baselines theta,ets",
        ],
    )
    add_common_flags(evaluate)
    evaluate.add_argument(
        "--data",
        default=",".join(EVALUATED),
        help=f"comma-separated data sets (default: {','.join(EVALUATED)}), or competitions: "
        "m3, m1, tourism, m3-monthly, m3-quarterly, m3-yearly, m3-other, m1-monthly, ...",
    )
    evaluate.add_argument(
        "--protocol",
        choices=["current", "original"],
        default="current",
        help="bundled data: the test windows, 28/48/28 (current, since 2026-11-25 12:31) or "
        "7/24/14 (original, as first published); see BacktestProtocol in backtest.py",
    )
    evaluate.add_argument(
        "--part",
        choices=["test", "validation"],
        default="test",
        help="competitions: score on the test part (a reported result) or on the validation "
        "split, the last horizon of each training part (for choices; default: test)",
    )
    evaluate.add_argument(
        "--baselines",
        default=ALL_BASELINES,
        help="competitions: comma-separated baselines (default: all five; their forecasts are "
        "cached in ~/.cache/rnnkit)",
    )
    evaluate.add_argument(
        "--cached-baselines",
        default="",
        help="competitions: comma-separated baselines read from the cache only, left out "
        "(and listed) where a separate run has not filled it, e.g. arima",
    )
    evaluate.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="competitions: processes fitting the baselines (default: one per core)",
    )
    evaluate.set_defaults(func=run_evaluate)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="a bundled data set by name")
    parser.add_argument("--file", default=None, help="your CSV or Parquet file")
    parser.add_argument("--time", default=None, help="time column of --file (default: time)")
    parser.add_argument(
        "--time-format",
        default=None,
        help="strftime format of --time, e.g. %%d/%%m/%%Y (default: inferred)",
    )
    parser.add_argument("--target", default=None, help="target column(s), comma-separated")
    parser.add_argument("--id", default=None, help="series-id column of --file")
    parser.add_argument("--past", default="", help="past covariate columns, comma-separated")
    parser.add_argument(
        "--future-covariates", default="", help="known-future covariate columns, comma-separated"
    )
    parser.add_argument(
        "--freq",
        default=None,
        help="grid frequency, e.g. h, D, 30min (default: inferred); the values of each step "
        "of --file are averaged",
    )


# The flags that say how to read --file (an error with a bundled --data).
FILE_FLAGS = (
    "--time",
    "--time-format",
    "--target",
    "--id",
    "--past",
    "--future-covariates",
    "--freq",
)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def load_data(args: argparse.Namespace, columns: dict | None = None):
    """The SeriesFrame named by --data or read from --file (columns from the flags, or the
    ones the model was trained with)."""
    from rnnkit.data.timeseries import load_series, read_series_file

    if bool(args.data) == bool(args.file):
        raise UserError("give exactly one of --data NAME or --file PATH")
    refuse_file_flags(args, FILE_FLAGS)
    if args.data:
        return load_series(args.data)
    columns = columns or {}
    targets = _split(args.target) or columns.get("target")
    freq = args.freq or columns.get("freq")
    check_freq_flag(freq)
    return read_series_file(
        existing_file(args.file),
        time=args.time or columns.get("time") or "time",
        target=targets if targets is None or len(targets) != 1 else targets[0],
        series_id=args.id or columns.get("series_id"),
        past_covariates=_split(args.past) or columns.get("past_covariates"),
        future_covariates=_split(args.future_covariates) or columns.get("future_covariates"),
        freq=freq,
        season_length=getattr(args, "season_length", None),  # train's --season-length
        time_format=args.time_format or columns.get("time_format"),
    )


def check_freq_flag(freq: str | None) -> None:
    """A one-line error for an unknown --freq, before the file is read."""
    from rnnkit.data.timeseries import check_frequency

    if freq is not None:
        try:
            check_frequency(freq)
        except UserError as error:
            raise UserError(f"--freq {freq!r}: not a frequency (e.g. h, D, 30min)") from error


def _check_length(data, model, horizon: int) -> None:
    """Stop before training when no series is long enough, naming what to shorten: the
    horizon, or the season (and context) the model first reads (as the Forecaster counts
    it: one season, at most a context, then the horizon)."""
    from rnnkit.data.timeseries import SERIES

    longest = int(data.frame.groupby(SERIES, sort=False).size().max())
    history = model.history_needed_for(data)
    if longest >= history + horizon:
        return
    advice = (
        "a shorter --context or --season-length" if history > horizon else "a shorter --horizon"
    )
    raise UserError(
        f"every series is shorter than the model needs: {history + horizon} points (a "
        f"season or context of {history} + horizon {horizon}), the longest has {longest}; "
        f"use {advice}"
    )


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.forecast import Forecaster
    from rnnkit.apps.forecast.plots import plot_forecast
    from rnnkit.data.timeseries import BUNDLED

    data = load_data(args)
    horizon = args.horizon
    if horizon is None:  # the data set's own, else one season
        horizon = BUNDLED[args.data].horizon if args.data else data.season_length
    given = dict(
        epochs=args.epochs,
        hidden_size=args.hidden_size,
        max_passes=args.max_passes,
        combine=args.combine,
    )
    options = {name: value for name, value in given.items() if value is not None}
    if args.quick:
        data = data.tail_of_each(max(600, 6 * horizon))
        quick = dict(epochs=2, batches_per_epoch=5, hidden_size=16)
        options = {**options, **quick}
    model = Forecaster(
        horizon=horizon,
        context_length=args.context,
        season_length=args.season_length,
        cell=args.cell,
        likelihood=args.likelihood,
        decoder=args.decoder,
        seasonal_lag=args.seasonal_lag,
        ensemble=args.ensemble,
        patience=args.patience or None,
        seed=args.seed,
        device=resolve_device(args.device),
        **options,
    )
    _check_length(data, model, horizon)
    model.fit(data)
    model.columns = {
        "time": args.time or "time",
        "time_format": args.time_format,
        "series_id": args.id,
        "freq": data.freq,
        "target": _split(args.target) or None,
        "past_covariates": data.past_covariates,
        "future_covariates": data.future_covariates,
    }
    out = out_dir(args, "models/forecast")
    model.save(out)
    print(table_to_text(model.history))
    if not data.future_covariates:  # a forecast needs the future covariates' values
        forecast = model.predict()
        plot_forecast(out / "forecast.png", data.frame, forecast, data.target, data.name)
        print(f"wrote {out / 'forecast.png'}")
    print(f"saved the model to {out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.forecast import Forecaster
    from rnnkit.apps.forecast.plots import plot_forecast
    from rnnkit.files import write_text

    model = Forecaster.load(args.model, device=resolve_device(args.device))
    data = load_data(args, getattr(model, "columns", None))
    future = None
    if args.future:
        path = existing_file(args.future)
        try:
            future = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
            raise UserError(f"{path}: cannot read it as CSV ({type(error).__name__})") from error
        if "time" not in future.columns:
            raise UserError(f"{path}, line 1: no column 'time'")
    if args.recalibrate:
        model.update(data)
    forecast = model.predict(horizon=args.horizon, data=data, future=future)
    out = out_dir(args, "forecast")
    write_text(out / "forecast.csv", forecast.to_csv(index=False))
    plot_forecast(out / "forecast.png", data.frame, forecast, data.target, data.name)
    print(forecast.head(12).to_string(index=False))
    print(f"wrote {out / 'forecast.csv'} and {out / 'forecast.png'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.forecast.backtest import run_evaluation, targets_summary
    from rnnkit.apps.forecast.competition import COLLECTIONS, PROTOCOL
    from rnnkit.apps.forecast.plots import plot_backtest

    names = _split(args.data)
    if args.resume:  # each evaluation trains fresh models on its own splits: nothing to resume
        raise UserError(
            "forecast evaluate: --resume is not supported (it trains a fresh model per data "
            "set and backtest origin); run it again without --resume"
        )
    competitions = [n for n in names if n in COLLECTIONS or n in dict(PROTOCOL.horizons)]
    if competitions and args.protocol != "current":
        raise UserError("forecast evaluate: --protocol applies to the bundled data sets only")
    if competitions:
        if len(competitions) != len(names):
            raise UserError(
                "forecast evaluate: give either competitions (m3, m3-monthly, ...) or bundled "
                f"data sets ({', '.join(EVALUATED)}), not both"
            )
        return _evaluate_competitions(args, names)
    competition_only = [args.workers is not None, args.baselines != ALL_BASELINES]
    if args.part != "test" or any(competition_only) or args.cached_baselines:
        raise UserError(
            "forecast evaluate: --part, --baselines and --workers apply to competitions only"
        )
    out = out_dir(args, "results/forecast")
    results = run_evaluation(
        names,
        quick=args.quick,
        seed=args.seed,
        device=resolve_device(args.device),
        epochs=args.epochs,
        protocol=args.protocol,
    )
    rows = [{"data": r.name, **row} for r in results for row in r.rows]
    plot_backtest(out / "backtest.png", results)
    summary = targets_summary(results)
    print(table_to_text(summary))
    report_metrics(
        rows,
        out,
        title="rolling-origin backtest (MASE, sQL: scaled by the in-sample seasonal naive MAE)",
        extra={
            "targets": summary,
            "quick": args.quick,
            "seed": args.seed,
            "protocol": args.protocol,
            "epochs": args.epochs,
        },
    )
    print(f"wrote {out / 'backtest.png'}")
    return 0


def _evaluate_competitions(args: argparse.Namespace, names: list[str]) -> int:
    """rnnkit with its defaults and the baselines on the M3/M1/Tourism protocol."""
    from rnnkit.apps.forecast.competition import (
        PUBLISHED,
        PUBLISHED_SOURCE,
        format_table,
        rnnkit_forecaster,
        run_competition,
    )
    from rnnkit.files import write_text

    options = {"seed": args.seed, "device": resolve_device(args.device)}
    if args.epochs:
        options["epochs"] = args.epochs
    limit = None
    if args.quick:  # a smoke test: six series per data set, a tiny network, cheap baselines
        limit = 6
        options.update(epochs=args.epochs or 1, batches_per_epoch=3, hidden_size=8)
    baselines = tuple(_split(args.baselines))
    if args.quick and args.baselines == ALL_BASELINES:
        baselines = ("seasonal_naive", "naive2", "theta")
    out = out_dir(args, "results/forecast-competition")
    result = run_competition(
        names,
        part=args.part,
        baselines=baselines,
        forecaster=rnnkit_forecaster(**options),
        limit=limit,
        workers=args.workers,
        cached_only=tuple(_split(args.cached_baselines)),
    )
    if result["left_out"]:
        print(f"left out (not in the cache): {', '.join(result['left_out'])}")
    per_series = result.pop("per_series")
    write_json(out / "per_series.json", per_series)  # for paired comparisons with other runs
    table = format_table(result)
    published = [
        {"data": data, "method": method, "published sMAPE": value}
        for data, methods in PUBLISHED.items()
        if any(row["data"] == data or data in row["data"].split("+") for row in table)
        for method, value in methods.items()
    ]
    title = (
        f"{'+'.join(names)}, {args.part} part: sMAPE (M3, percent) and MASE averaged over "
        "series; cover_80: share of the truth inside rnnkit's 80% interval; last column: a "
        "baseline's sMAPE minus rnnkit's with a paired bootstrap 95% interval over series"
    )
    report_metrics(
        table,
        out,
        title=title,
        extra={
            **result,
            "published_table": published,
            "quick": args.quick,
            "seed": args.seed,
            "forecaster_options": {k: v for k, v in options.items() if k != "device"},
        },
    )
    if published:
        print(f"published (other runs, not this one): {PUBLISHED_SOURCE}")
        print(table_to_text(published))
    lines = [f"# {title}", "", "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in table]
    if published:
        lines += ["", f"Published sMAPE ({PUBLISHED_SOURCE}; other runs):", ""]
        lines += [f"- {p['data']} {p['method']}: {p['published sMAPE']}" for p in published]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'}")
    return 0


def tour(ctx: TourContext) -> Section:
    """Backtest rnnkit and the baselines on three real data sets; plot the last windows."""
    from rnnkit.apps.forecast.backtest import run_evaluation, targets_summary
    from rnnkit.apps.forecast.plots import plot_backtest

    results = run_evaluation(
        list(EVALUATED),
        quick=ctx.quick,
        tour=True,  # fewer windows and a shorter training than `forecast evaluate`
        seed=ctx.seed,
        device=ctx.device,
        log=lambda text: None,
    )
    rows = [{"data": r.name, **row} for r in results for row in r.rows]
    for r in results:  # kept for `make serve`
        if r.model is not None:
            r.model.save(ctx.models.with_name(f"forecast-{r.name}"))
    plot_backtest(ctx.out / "backtest.png", results)
    write_json(ctx.out / "metrics.json", {"rows": rows, "targets": targets_summary(results)})
    section = Section(title="Forecasting")
    section.text(
        "A global LSTM forecaster (encoder-decoder, Student-t likelihood, per-window scaling, "
        "calendar features and covariates; a direct decoder for electricity, an autoregressive "
        "one for temperature and the S&P 500, as chosen on validation backtests) against "
        "naive, seasonal naive, statsmodels ETS "
        "and ARIMA, in a rolling-origin backtest on the last windows of each series "
        "(NYC hourly temperature, S&P 500 daily close, Victoria half-hourly electricity "
        "demand). MASE and sQL are scaled by the in-sample seasonal naive error; "
        "coverage_80 is the share of the truth inside the 80% interval; rnnkit's intervals "
        "are recalibrated at every origin on its own elapsed forecasts (coverage_80_static: "
        "the intervals as fitted on the validation windows, for comparison)."
        + (
            " Quick mode: a tiny model and two windows, so the numbers mean little."
            if ctx.quick
            else " A quarter of the windows (the last ones), one network and a shorter "
            "training than 'rnnkit forecast evaluate'."
        )
    )
    section.table(rows, "backtest, per data set and method")
    section.table(targets_summary(results), "the issue's targets")
    section.image(
        (ctx.out / "backtest.png").resolve(),
        "last test window: history, truth, rnnkit's median and 80% band, baselines",
    )
    return section
