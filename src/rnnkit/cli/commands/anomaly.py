"""``rnnkit anomaly train | detect | evaluate``: flag surprising points of a series.

An rnnkit forecaster trained on normal data scores each point by how unlikely it was under
the predicted distribution; a threshold chosen without labels (Hundman et al. 2018) flags
points and windows. Data: ``--data ucr`` (UCR InternalBleeding16: trains on its normal
part, detects in its test part), a bundled series by name (first series; trains on its first
--train-points), or your CSV/Parquet file (--file, --time, --target). The work is in
`rnnkit.apps.anomaly`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    existing_file,
    out_dir,
    positive_int,
    refuse_file_flags,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.files import write_json, write_text
from rnnkit.report import Section, table_to_text

NAME = "anomaly"
# --train-points' default: the first 2,000 points, or the first half of a shorter series.
TRAIN_POINTS = 2000
HELP = "anomaly detection in time series (forecast residuals, label-free threshold)"
ORDER = 41


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, __doc__)

    train = add_verb(
        verbs,
        "train",
        "train the detector's forecaster on normal data",
        [
            "rnnkit anomaly train --data ucr --out models/anomaly",
            "rnnkit anomaly train --file sensor.csv --time ts --target value "
            "--train-points 2000 --out models/sensor",
        ],
    )
    add_common_flags(train, epochs=15)
    _add_data_flags(train)
    train.add_argument(
        "--context", type=positive_int, default=64, help="past points per prediction"
    )
    train.set_defaults(func=run_train)

    detect = add_verb(
        verbs,
        "detect",
        "score a series and flag anomalous points and windows",
        [
            "rnnkit anomaly detect --model models/anomaly --data ucr --out flagged",
            "rnnkit anomaly detect --model models/sensor --file sensor.csv --out flagged",
        ],
    )
    detect.add_argument("--model", required=True, help="folder written by 'anomaly train'")
    detect.add_argument("--out", default=None, help="folder for anomalies.csv and the PNG")
    detect.add_argument("--device", default="auto")
    _add_data_flags(detect)
    detect.set_defaults(func=run_detect)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "UCR InternalBleeding16 and injected anomalies, against a rolling z-score and an "
        "isolation forest (metrics.json, PNGs)",
        ["rnnkit anomaly evaluate --out results/anomaly", "rnnkit anomaly evaluate --quick"],
    )
    add_common_flags(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=None, help="ucr, or a bundled series (elecdemand, nyc-weather, ...)"
    )
    parser.add_argument("--file", default=None, help="your CSV or Parquet file")
    parser.add_argument("--time", default=None, help="time column of --file (default: time)")
    parser.add_argument(
        "--time-format",
        default=None,
        help="strftime format of --time, e.g. %%d/%%m/%%Y (default: inferred)",
    )
    parser.add_argument("--target", default=None, help="value column of --file")
    parser.add_argument(
        "--id", default=None, help="series-id column of --file, with --series to pick one"
    )
    parser.add_argument(
        "--series", default=None, help="the series to use (an --id value, or of a bundled set)"
    )
    parser.add_argument(
        "--freq",
        default=None,
        help="grid of --file, e.g. h, 30min: the values of each step are averaged "
        "(default: inferred)",
    )
    parser.add_argument(
        "--train-points",
        type=positive_int,
        default=None,
        help="train on the first N points of --data/--file (default: 2000, or the first "
        "half of a shorter series); detect runs on the points after them",
    )


def load_parts(args: argparse.Namespace):
    """(name, training values, values to scan, times of those values or None, labels)."""
    from rnnkit.apps.anomaly.detector import MIN_TRAIN_POINTS
    from rnnkit.data.timeseries import load_series, load_ucr_internal_bleeding

    if bool(args.data) == bool(args.file):
        raise UserError("give exactly one of --data NAME or --file PATH")
    refuse_file_flags(args, ("--time", "--time-format", "--target", "--id", "--freq"))
    if args.data == "ucr":
        data = load_ucr_internal_bleeding()
        return data.name, data.train, data.test, None, data.labels
    frame = load_series(args.data) if args.data else _read_file(args)
    # a bundled data set without --series: its first series, as always
    group = _one_series(frame, args.series, first=bool(args.data))
    values = group[frame.target].to_numpy(float)
    times = group["time"].to_numpy()
    split = args.train_points or min(TRAIN_POINTS, len(values) // 2)
    if split < MIN_TRAIN_POINTS or split >= len(values) - 10:
        given = f"--train-points {split}" if args.train_points else frame.name
        raise UserError(
            f"{given}: the series has {len(values)} points; expected at least "
            f"{MIN_TRAIN_POINTS} for training and some left to scan"
        )
    return frame.name, values[:split], values[split:], times[split:], None


def _read_file(args: argparse.Namespace):
    """--file as a SeriesFrame; several series in it without --id: a one-line error."""
    from rnnkit.cli.commands.forecast import check_freq_flag
    from rnnkit.data.timeseries import DuplicateTimestampError, read_series_file

    check_freq_flag(args.freq)
    if args.series and not args.id:
        raise UserError("--series: give --id too (the column naming the series)")
    try:
        return read_series_file(
            existing_file(args.file),
            time=args.time or "time",
            target=args.target,
            series_id=args.id,
            freq=args.freq,
            time_format=args.time_format,
        )
    except DuplicateTimestampError as error:
        if args.id:
            raise
        raise UserError(
            f"{error}; anomaly detection takes one series: if the file holds several, pick "
            "one with --id COLUMN --series NAME (or filter the file)"
        ) from error


def _one_series(frame, name: str | None, first: bool):
    """The rows of series ``name``; without a name, the only series (or the ``first``)."""
    groups = dict(frame.groups())
    if name is None:
        if len(groups) > 1 and not first:
            raise UserError(
                f"--id: the file holds {len(groups)} series ({_listed(groups)}); anomaly "
                "detection takes one: pick it with --series NAME"
            )
        return next(iter(groups.values()))
    if name not in groups:
        raise UserError(f"--series {name}: no such series; the series are {_listed(groups)}")
    return groups[name]


def _listed(groups: dict) -> str:
    names = list(groups)
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.anomaly import AnomalyDetector

    if args.resume:
        raise UserError(
            "--resume: the anomaly detector trains in seconds and keeps no checkpoints; "
            "run 'anomaly train' again (it is seeded)"
        )
    _, train, _, _, _ = load_parts(args)
    options = dict(epochs=args.epochs)
    if args.quick:
        train, options = train[-600:], dict(epochs=2, batches_per_epoch=10)
    detector = AnomalyDetector(
        context_length=args.context, seed=args.seed, device=resolve_device(args.device), **options
    )
    detector.fit(train)
    out = out_dir(args, "models/anomaly")
    detector.save(out)
    if args.file:
        write_json(out / FILE_COLUMNS, {flag: getattr(args, flag) for flag in COLUMN_FLAGS})
    print(table_to_text(detector.forecaster.history))
    print(f"saved the detector to {out}")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    import numpy as np

    from rnnkit.apps.anomaly import AnomalyDetector
    from rnnkit.apps.anomaly.plots import plot_detection

    detector = AnomalyDetector.load(args.model, device=resolve_device(args.device))
    _recall_columns(args, Path(args.model))
    name, train, values, times, labels = load_parts(args)
    # The end of the training part leads in, so that the first scanned points have their
    # context too (they had no score: 64 of 145 points of a short series).
    lead_in = train[-detector.context_length :]
    detection = detector.detect(np.concatenate([lead_in, values])).last(len(values))
    # Bundled and user series keep their timestamps; the UCR series has only positions.
    detection.frame["time"] = times if times is not None else range(len(values))
    out = out_dir(args, "anomalies")
    write_text(out / "anomalies.csv", detection.frame.to_csv(index=False))
    windows = detection.window_table()
    write_text(out / "windows.csv", windows.to_csv(index=False))
    plot_detection(
        out / "detection.png",
        detection.frame["value"].to_numpy(),
        detection.frame["smoothed"].to_numpy(),
        detection.frame["anomaly"].to_numpy(),
        detection.threshold,
        labels,
        title=name,
    )
    print(windows.to_string(index=False) if len(windows) else "no anomalous windows")
    print(
        f"threshold {detection.threshold:.3g}; {int(detection.frame['anomaly'].sum())} "
        f"flagged points in {len(windows)} windows"
    )
    print(f"wrote {out / 'anomalies.csv'}, {out / 'windows.csv'}, {out / 'detection.png'}")
    return 0


# How `train` read --file, kept beside the model so that `detect` on a file of the same
# layout needs only --model and --file (a flag given to `detect` wins).
FILE_COLUMNS = "file_columns.json"
COLUMN_FLAGS = ("time", "time_format", "target", "id", "series", "freq", "train_points")


def _recall_columns(args: argparse.Namespace, model: Path) -> None:
    saved = model / FILE_COLUMNS
    if not args.file or not saved.exists():
        return
    for flag, value in json.loads(saved.read_text()).items():
        if getattr(args, flag, None) is None:
            setattr(args, flag, value)


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.anomaly.evaluate import run_evaluation

    if args.resume:
        raise UserError(
            "--resume: anomaly evaluate trains many small models and keeps no checkpoints; "
            "run it again (it is seeded)"
        )
    out = out_dir(args, "results/anomaly")
    result = run_evaluation(
        quick=args.quick, seed=args.seed, epochs=args.epochs, device=resolve_device(args.device)
    )
    images = _plots(result, out)
    print("UCR InternalBleeding16: is the top-scored point within 100 points of the anomaly?")
    print(table_to_text(result["ucr"]))
    print("\nthreshold settings per method, chosen on the validation stretches (event F1):")
    print(table_to_text(result["threshold_choice"]))
    print("\ninjected anomalies, test stretches, per series:")
    print(table_to_text(result["injected"]))
    report_metrics(
        result["injected_pooled"],
        out,
        title="injected anomalies, all test stretches pooled (95% paired-bootstrap intervals "
        "of the event-F1 difference, over events)",
        extra={
            "ucr": result["ucr"],
            "threshold_choice": result["threshold_choice"],
            "per_series": result["injected"],
            "quick": args.quick,
            "seed": args.seed,
        },
    )
    print(f"wrote {', '.join(str(p) for p in images)}")
    return 0


def _plots(result: dict, out) -> list:
    from rnnkit.apps.anomaly.plots import plot_detection

    paths = []
    for scored in result["scored"]:
        flagged = scored.flagged["rnnkit"]
        path = out / f"{scored.name}.png"
        plot_detection(
            path,
            scored.values,
            flagged.smoothed,
            flagged.flags,
            flagged.threshold,
            scored.labels,
            title=f"{scored.name}: rnnkit score and flagged points",
        )
        paths.append(path)
    return paths


def tour(ctx: TourContext) -> Section:
    """UCR InternalBleeding16 and injected anomalies: rnnkit against two baselines."""
    from rnnkit.apps.anomaly.evaluate import TOUR_PROTOCOL, run_evaluation

    result = run_evaluation(
        quick=ctx.quick,
        seed=ctx.seed,
        device=ctx.device,
        log=lambda text: None,
        protocol=None if ctx.quick else TOUR_PROTOCOL,
    )
    _keep_detector(ctx)
    images = _plots(result, ctx.out)
    tables = ("ucr", "threshold_choice", "injected", "injected_pooled")
    write_json(ctx.out / "metrics.json", {name: result[name] for name in tables})
    section = Section(title="Anomaly detection")
    section.text(
        "An LSTM forecaster trained on normal data scores every point by its surprise "
        "(-log10 of the two-sided tail probability under the predicted Student-t); scores "
        "are smoothed and thresholded without labels (Hundman et al. 2018). A second rnnkit "
        "score, lstm_autoencoder, is the reconstruction error of an LSTM autoencoder trained "
        "on the same normal data. The rolling z-score and the isolation forest go through the "
        "same threshold rule, its settings chosen for each score on validation stretches. "
        + (
            "Quick mode: a barely trained model."
            if ctx.quick
            else "The tour injects 12 anomalies into each of two series; the published table "
            "(rnnkit anomaly evaluate) uses six series and 20 each."
        )
    )
    section.table(
        result["ucr"],
        "UCR InternalBleeding16: top-scored point within 100 of the labelled anomaly (4187-4198)?",
    )
    section.table(
        result["injected_pooled"],
        "injected spikes, level shifts, flattened seasons and noise bursts, all test "
        "stretches pooled: event-wise precision, recall, F1 (95% paired-bootstrap intervals)",
    )
    section.table(result["injected"], "the same, per series")
    section.table(result["threshold_choice"], "threshold settings chosen on validation")
    for path in images:
        section.image(
            path.resolve(),
            f"{path.stem}: series, flagged points (red), true "
            "anomalies (shaded), smoothed score and threshold",
        )
    return section


def _keep_detector(ctx: TourContext) -> None:
    """A detector for `make serve` (seconds): as `anomaly train --data ucr --quick` trains it."""
    from rnnkit.apps.anomaly import AnomalyDetector
    from rnnkit.data.timeseries import load_ucr_internal_bleeding

    normal = load_ucr_internal_bleeding().train[-600:]
    detector = AnomalyDetector(seed=ctx.seed, device=ctx.device, epochs=2, batches_per_epoch=10)
    detector.fit(normal).save(ctx.models)
