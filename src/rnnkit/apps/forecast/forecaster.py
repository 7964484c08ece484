"""`Forecaster`: a global RNN forecaster with intervals, in the fit/predict style of Darts.

One network is trained on windows cut from every series of a data set. Each window is scaled
by its own context (see `features.window_location_scale`), gets calendar features and the
covariates, and the network predicts a distribution for each of the next ``horizon`` steps.

Example:
    >>> from rnnkit.data.timeseries import load_series
    >>> data = load_series("elecdemand")
    >>> model = Forecaster(horizon=48, epochs=5).fit(data)
    >>> model.predict().head()   # series, time, forecast, lo_80, hi_80
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnkit.apps.forecast.features import CALENDAR_FEATURES, calendar_features, fill_missing
from rnnkit.apps.forecast.model import CELLS, LIKELIHOODS, ForecastNet, masked_nll
from rnnkit.data.timeseries import SERIES, SeriesFrame, series_from_dataframe
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError


@dataclass
class ForecasterConfig:
    """Everything that defines a forecaster (saved with the model).

    Attributes:
        horizon: steps forecast at once.
        context_length: past steps the encoder reads; None: two seasons, at least 4 horizons.
        cell, hidden_size, num_layers, dropout: the RNNs (see `ForecastNet`).
        likelihood: ``student_t`` (heavy tails, robust to outliers) or ``gaussian``.
        epochs, batches_per_epoch, batch_size, lr: training; each epoch draws
            ``batches_per_epoch`` batches of random windows.
        validation_windows: windows per series held out at the end of the training data for
            the validation loss, early stopping and the interval calibration (never the test
            windows of a backtest).
        schedule: learning-rate schedule of `rnnkit.engine.TrainConfig`; ``plateau`` halves
            the rate after 2 epochs without a lower validation loss.
        patience: stop after this many epochs without a lower validation loss and keep the
            weights of the best epoch (None: train every epoch, still keep the best).
        calibrate_intervals: widen or narrow the intervals by a factor per horizon step so
            that the first level covers its share of the validation windows (see
            `_interval_scale`).
        levels: central interval levels in percent, e.g. (80,) gives lo_80 and hi_80.
        recalibration_windows: horizons of the model's own elapsed forecasts that `update`
            (and a recalibrating backtest) refit the interval factors on: the most recent
            ones, so the intervals follow the volatility of the last few horizons; None:
            ``validation_windows``.
        decoder: ``direct`` (every step at once from the known future; the default) or
            ``autoregressive`` (each step also reads the previous value: the truth in
            training, a sampled value in forecasting, ``samples`` paths per forecast).
        ensemble: train this many networks (seeds ``seed``, ``seed + 1``, ...) and pool
            their forecasts: the sample paths of autoregressive members, the quantiles
            (averaged) of direct ones. Costs that many trainings; steadies the result.
        calendar: feed calendar features; turn off for series whose time axis is only an
            index (sensor samples, the UCR anomaly series).
        seasonal_lag: the decoder also reads, for each future step, the observed value one
            season earlier (two seasons for steps beyond the first season; DeepAR's lag
            features): the daily cycle of yesterday is the best single hint for tomorrow's,
            and the decoder gets it without having to carry it through its state.
    """

    horizon: int = 24
    context_length: int | None = None
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    likelihood: str = "student_t"
    epochs: int = 20
    batches_per_epoch: int = 50
    batch_size: int = 64
    lr: float = 3e-3
    schedule: str = "constant"
    validation_windows: int = 4
    patience: int | None = 4
    calibrate_intervals: bool = True
    levels: tuple[int, ...] = (80,)
    recalibration_windows: int | None = None
    calendar: bool = True
    seasonal_lag: bool = False
    decoder: str = "direct"
    samples: int = 200
    ensemble: int = 1
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        if self.horizon < 1:
            raise UserError(f"horizon must be at least 1, got {self.horizon}")
        if self.context_length is not None and self.context_length < 2:
            raise UserError(f"context length must be at least 2, got {self.context_length}")
        if self.cell not in CELLS:
            raise UserError(f"cell must be one of {', '.join(CELLS)}, got '{self.cell}'")
        if self.likelihood not in LIKELIHOODS:
            raise UserError(f"likelihood must be one of {', '.join(LIKELIHOODS)}")
        if self.ensemble < 1:
            raise UserError(f"ensemble must be at least 1, got {self.ensemble}")
        if self.decoder not in ("direct", "autoregressive"):
            raise UserError(f"decoder must be direct or autoregressive, got '{self.decoder}'")
        for level in self.levels:
            if not 0 < level < 100:
                raise UserError(f"interval level must be between 0 and 100, got {level}")


@dataclass
class _Windows:
    """Every series of a `SeriesFrame` as model-ready arrays, concatenated, plus offsets.

    Windows are cut by index arithmetic on these arrays, so a batch costs one gather.
    """

    ids: list[str]
    times: list[pd.DatetimeIndex]
    offsets: np.ndarray  # (S,) start of each series in the concatenated arrays
    lengths: np.ndarray  # (S,)
    target: np.ndarray  # (N,) with NaN where missing
    filled: np.ndarray  # (N,) target with gaps filled (inputs only)
    observed: np.ndarray  # (N,) 1.0 where the target was observed
    known: np.ndarray  # (N, 6 + future covariates): what is known for any step
    past: np.ndarray  # (N, past covariates): known only up to the origin


class Forecaster:
    """A global RNN forecaster: ``Forecaster(horizon=...).fit(data).predict()``.

    Args:
        **options: fields of `ForecasterConfig` (horizon, context_length, cell, hidden_size,
            likelihood, epochs, lr, seed, device, ...).
    """

    def __init__(self, config: ForecasterConfig | None = None, **options):
        self.config = replace(config or ForecasterConfig(), **options)
        self.config.check()
        self.nets: list[ForecastNet] = []  # one per ensemble member
        self.history: list[dict] = []
        self.data: SeriesFrame | None = None
        self._covariate_stats: dict[str, tuple[list[float], list[float]]] = {}
        self._meta: dict = {}
        # How a user's file was read (time, series-id, covariate columns), saved with the
        # model so that `predict` from the command line reads the file the same way.
        self.columns: dict = {}

    # --- fitting ------------------------------------------------------------------------

    def fit(self, data: SeriesFrame | pd.DataFrame, **columns) -> Forecaster:
        """Train on every series of ``data``; returns self.

        Args:
            data: a `SeriesFrame`, or a DataFrame with ``columns`` as in
                `rnnkit.data.timeseries.series_from_dataframe` (time=, target=, series_id=,
                past_covariates=, future_covariates=).
        """
        data = as_series_frame(data, **columns)
        cfg = self.config
        context = self.context_length_for(data)
        self._meta = {
            "target": data.target,
            "past_covariates": data.past_covariates,
            "future_covariates": data.future_covariates,
            "freq": data.freq,
            "season_length": data.season_length,
            "context_length": context,
        }
        self._covariate_stats = _covariate_stats(data)
        windows = self._windows(data)
        train_origins, val_origins = self._split_origins(windows, context)
        val_batches = (
            [
                self._batch(windows, chunk)
                for chunk in np.array_split(val_origins, max(1, len(val_origins) // cfg.batch_size))
            ]
            if len(val_origins)
            else None
        )
        self.nets, self.history, best_epochs = [], [], []
        for member in range(cfg.ensemble):
            net, history, best_epoch = self._train_member(
                cfg.seed + member, data, windows, train_origins, val_batches
            )
            self.nets.append(net)
            # the log of every member, one after the other (``member`` tells them apart)
            if cfg.ensemble > 1:
                history = [{**row, "member": member} for row in history]
            self.history += history
            best_epochs.append(best_epoch)
        self._meta["best_epoch"] = best_epochs[0] if cfg.ensemble == 1 else best_epochs
        self.data = data
        self._meta["interval_scale"] = [1.0] * cfg.horizon
        # where the held-out windows begin: `update` recalibrates on nothing earlier
        first_held_out: dict[str, str] = {}
        for s, origin in val_origins:  # in order of origin within each series
            first_held_out.setdefault(windows.ids[s], str(windows.times[s][origin]))
        self._meta["calibration_start"] = first_held_out
        if cfg.calibrate_intervals and len(val_origins):
            self._meta["interval_scale"] = self._interval_scale(
                windows, _calibration_origins(val_origins, cfg.horizon)
            )
        return self

    def _train_member(self, seed, data, windows, train_origins, val_batches):
        """One network trained from ``seed``: (net in eval mode, its log, its best epoch)."""
        cfg = self.config
        seed_everything(seed)
        net = self._new_net(len(data.past_covariates), len(data.future_covariates))
        net.to(cfg.device)
        rng = np.random.default_rng(seed)
        train_batches = _RandomBatches(self, windows, train_origins, rng)
        trainer = Trainer(
            net,
            self._step,
            TrainConfig(
                epochs=cfg.epochs,
                lr=cfg.lr,
                seed=seed,
                device=cfg.device,
                grad_clip=1.0,
                schedule=cfg.schedule if val_batches else "constant",
                progress=False,
                # Early stopping on the validation windows; the best epoch's weights are
                # restored, so a late over-fitted epoch never becomes the model.
                patience=cfg.patience if val_batches else None,
                restore_best=True,
                save_checkpoints=False,
                tensorboard=False,
            ),
        )
        history = trainer.fit(train_batches, val_batches)
        net.eval()
        return net, history, trainer.best_epoch

    def _interval_scale(self, windows: _Windows, pairs: np.ndarray) -> list[float]:
        """Factors, one per horizon step, on the distance of each interval end from the
        median that make the first interval level cover its share of the windows at
        ``pairs`` (split-conformal calibration, for both decoders; see `interval_factors`).

        Networks trained by likelihood are often over-confident away from their training
        windows, and by different amounts at different lead times (an autoregressive
        decoder's paths spread too slowly or too fast). Fitted on windows the network did
        not train on, never on test windows; ``pairs`` may overlap (`_calibration_origins`).
        """
        scores = self.conformal_scores(windows, pairs)
        return interval_factors(scores, self.config.levels[0])

    def conformal_scores(self, windows: _Windows, pairs: np.ndarray) -> np.ndarray:
        """(B, H) how far out the truth lies at each step of the forecasts at ``pairs``, in
        units of the uncalibrated first-level half-interval on its side of the median
        (NaN where the truth is missing or beyond the data): a score of 1 is on the edge."""
        lower_q, upper_q = _level_quantiles(self.config.levels[0])
        forecast = self.uncalibrated_forecast(windows, pairs, (lower_q, 0.5, upper_q))
        index = (
            windows.offsets[pairs[:, 0]][:, None] + pairs[:, 1:2] + np.arange(self.config.horizon)
        )
        ends = (windows.offsets + windows.lengths)[pairs[:, 0]][:, None]
        truth = np.where(
            index < ends, windows.target[np.minimum(index, len(windows.target) - 1)], np.nan
        )
        return _scores(truth, forecast[0.5], forecast[lower_q], forecast[upper_q])

    def uncalibrated_forecast(
        self, windows: _Windows, pairs: np.ndarray, quantiles: tuple[float, ...]
    ) -> dict[float, np.ndarray]:
        """`forecast_windows` with every interval factor at 1 (the network's own spread).

        The calibrated quantiles are ``median + factor[step] * (q - median)`` of these, so
        a backtest can recalibrate them afterwards without forecasting again.
        """
        saved = self._meta.get("interval_scale")
        self._meta["interval_scale"] = [1.0] * self.config.horizon
        try:
            return self.forecast_windows(windows, pairs, quantiles=quantiles)
        finally:
            self._meta["interval_scale"] = saved

    def update(self, data: SeriesFrame | pd.DataFrame) -> Forecaster:
        """Take in the observations up to now and recalibrate the intervals on the model's
        own most recent forecasts whose horizons have fully elapsed; returns self.

        What a forecaster run day after day does: the network stays as trained, but the
        interval factors (`interval_factors`) are refitted on the last
        ``recalibration_windows`` horizons of forecasts before the end of ``data`` (dense
        origins, as in `fit`), never reaching back into the training windows, so that the
        intervals follow a change in volatility within a few horizons. A forecast made at
        origin t reads only data before t, so these are the forecasts the model made then.
        Later `predict` calls forecast from ``data``.

        Args:
            data: the whole history up to now (a `SeriesFrame`, or a DataFrame with the
                training columns), including the new observations.

        Example:
            >>> model = Forecaster(horizon=24).fit(history)
            >>> model.update(history_with_today).predict()   # tomorrow, recalibrated
        """
        self._require_fitted()
        history = self._coerce_history(data)
        windows = self._windows(history)
        pairs = np.array(
            [
                (s, origin)
                for s, length in enumerate(windows.lengths)
                for origin in self.recent_origins(windows, s, int(length))
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
        if len(pairs):
            scores = self.conformal_scores(windows, pairs)
            if np.isfinite(scores).sum() >= 20:  # otherwise keep the factors it has
                self._meta["interval_scale"] = interval_factors(scores, self.config.levels[0])
        self.data = history
        return self

    def recent_origins(self, windows: _Windows, series: int, end: int) -> list[int]:
        """Origins of the forecasts that recalibrate the intervals of a forecast at origin
        ``end`` of series number ``series``: every ``horizon // 6`` steps over the last
        ``recalibration_windows`` horizons whose truth is known by ``end``, from the first
        validation origin on (earlier origins are training windows: too confident)."""
        horizon = self.config.horizon
        span = (self.config.recalibration_windows or self.config.validation_windows) * horizon
        stride = max(1, horizon // 6)
        earliest = max(end - span, self._meta["context_length"])
        start = self._meta.get("calibration_start", {}).get(windows.ids[series])
        if start is not None:
            first_held_out = windows.times[series].searchsorted(pd.Timestamp(start))
            earliest = max(earliest, int(first_held_out))
        return list(range(end - horizon, earliest - 1, -stride))[::-1]

    def context_length_for(self, data: SeriesFrame) -> int:
        if self.config.context_length:
            return self.config.context_length
        return max(2 * data.season_length, 4 * self.config.horizon, 16)

    def _new_net(self, past: int, future: int) -> ForecastNet:
        cfg = self.config
        return ForecastNet(
            encoder_inputs=2 + CALENDAR_FEATURES + future + past,
            decoder_inputs=CALENDAR_FEATURES + future + 1 + int(cfg.seasonal_lag),
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            cell=cfg.cell,
            likelihood=cfg.likelihood,
            autoregressive=cfg.decoder == "autoregressive",
        )

    def _split_origins(self, windows: _Windows, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(series, origin) pairs for training and for validation (the last windows)."""
        horizon = self.config.horizon
        needed = context + horizon
        train, val = [], []
        for s, length in enumerate(windows.lengths):
            held_out = self.config.validation_windows * horizon
            if length - held_out < needed:
                held_out = 0  # too short to spare validation windows
            last_train_origin = length - held_out - horizon
            for origin in range(context, last_train_origin + 1):
                train.append((s, origin))
            for origin in range(length - held_out, length - horizon + 1, horizon):
                val.append((s, origin))
        if not train:
            longest = int(windows.lengths.max())
            raise UserError(
                f"every series is shorter than the model needs: {needed} points (context "
                f"{context} + horizon {horizon}), the longest has {longest}; use a shorter "
                f"--horizon or --context"
            )
        return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64).reshape(-1, 2)

    def _step(self, net: ForecastNet, batch: dict) -> dict:
        device = next(net.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        # Teacher forcing for an autoregressive decoder: the value before each step is the
        # truth (0 before the first: the window is centred on its last value).
        target = batch["target"]
        previous = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)
        params = net(batch["encoder"], batch["decoder"], previous)
        return {"loss": masked_nll(net, params, target, batch["mask"])}

    # --- windows ------------------------------------------------------------------------

    def _windows(self, data: SeriesFrame) -> _Windows:
        ids, times, parts = [], [], []
        meta = self._meta
        for sid, group in data.groups():
            stamps = pd.DatetimeIndex(group["time"])
            target = group[meta["target"]].to_numpy(float)
            mean, std = self._covariate_stats.get(sid, self._covariate_stats["*"])
            covs = group[meta["past_covariates"] + meta["future_covariates"]].to_numpy(float)
            covs = (covs - np.array(mean)) / np.array(std) if covs.shape[1] else covs
            n_past = len(meta["past_covariates"])
            parts.append((target, stamps, covs[:, :n_past], covs[:, n_past:]))
            ids.append(sid)
            times.append(stamps)
        lengths = np.array([len(p[0]) for p in parts])
        target = np.concatenate([p[0] for p in parts])
        return _Windows(
            ids=ids,
            times=times,
            offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            lengths=lengths,
            target=target,
            filled=np.concatenate([fill_missing(p[0]) for p in parts]),
            observed=(~np.isnan(target)).astype(np.float32),
            known=np.concatenate(
                [np.concatenate([self._calendar(p[1]), p[3]], axis=1) for p in parts]
            ).astype(np.float32),
            past=np.concatenate([p[2] for p in parts]).astype(np.float32),
        )

    def _calendar(self, times: pd.DatetimeIndex) -> np.ndarray:
        features = calendar_features(times)
        return features if self.config.calendar else np.zeros_like(features)

    def _batch(self, windows: _Windows, pairs: np.ndarray, future_known: np.ndarray | None = None):
        """Tensors for the windows whose forecast starts at ``(series, origin)`` pairs.

        ``future_known`` (B, H, K) replaces the known features of the horizon when the
        horizon lies beyond the data (a forecast of the real future).
        """
        context, horizon = self._meta["context_length"], self.config.horizon
        start = windows.offsets[pairs[:, 0]] + pairs[:, 1]
        past_index = start[:, None] + np.arange(-context, 0)[None, :]
        filled, observed = windows.filled[past_index], windows.observed[past_index]
        location, scale = _location_scale(filled, observed)
        scaled = (filled - location[:, None]) / scale[:, None]
        encoder = np.concatenate(
            [
                scaled[..., None],
                observed[..., None],
                windows.known[past_index],
                windows.past[past_index],
            ],
            axis=2,
        )
        if future_known is None:
            # Steps past the end of a series (origins near the end, when scoring) repeat its
            # last row and get no target.
            steps = pairs[:, 1:2] + np.arange(horizon)[None, :]
            last = windows.lengths[pairs[:, 0]][:, None] - 1
            future_index = start[:, None] - pairs[:, 1:2] + np.minimum(steps, last)
            future_known = windows.known[future_index]
            target = (windows.target[future_index] - location[:, None]) / scale[:, None]
            target = np.where(steps <= last, target, np.nan)
        else:
            target = np.full((len(pairs), horizon), np.nan)
        position = np.broadcast_to(
            (np.arange(1, horizon + 1) / horizon)[None, :, None], (len(pairs), horizon, 1)
        )
        parts = [future_known, position]
        if self.config.seasonal_lag:
            lagged = self._seasonal_lag(windows, pairs, start)
            parts.append(((lagged - location[:, None]) / scale[:, None])[..., None])
        decoder = np.concatenate(parts, axis=2)
        mask = ~np.isnan(target)
        return {
            "encoder": torch.from_numpy(encoder.astype(np.float32)),
            "decoder": torch.from_numpy(decoder.astype(np.float32)),
            "target": torch.from_numpy(np.nan_to_num(target).astype(np.float32)),
            "mask": torch.from_numpy(mask.astype(np.float32)),
            "location": torch.from_numpy(location),
            "scale": torch.from_numpy(scale),
        }

    def _seasonal_lag(self, windows: _Windows, pairs: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(B, H) the filled value a whole number of seasons before each future step, always
        before the origin (so known when forecasting); clamped at the start of the series."""
        season = max(int(self._meta["season_length"]), 1)
        steps = np.arange(self.config.horizon)
        back = season * ((steps // season) + 1)  # steps 0..m-1: one season, m..2m-1: two
        offset = np.maximum(pairs[:, 1:2] + steps[None, :] - back[None, :], 0)
        return windows.filled[(start - pairs[:, 1])[:, None] + offset]

    # --- forecasting --------------------------------------------------------------------

    @property
    def net(self) -> ForecastNet | None:
        """The (first) trained network; None before `fit`."""
        return self.nets[0] if self.nets else None

    def _require_fitted(self) -> list[ForecastNet]:
        if not self.nets:
            raise UserError("the forecaster is not trained yet; call fit() or load a model")
        return self.nets

    def _interval_factors(self) -> np.ndarray:
        """(H,) the calibration factor of each step (one number in models saved before
        per-step calibration: broadcast)."""
        factors = np.asarray(self._meta.get("interval_scale", 1.0), dtype=float)
        return np.broadcast_to(factors, (self.config.horizon,))

    @torch.no_grad()
    def distribution_at(
        self,
        windows: _Windows,
        pairs: np.ndarray,
        future_known: np.ndarray | None = None,
        chunk: int = 1024,
    ) -> dict[str, np.ndarray]:
        """Predicted distributions at ``(series, origin)`` pairs, in the data's units.

        Returns a dict of (B, H) float64 arrays: ``loc``, ``scale`` and (Student-t) ``df``.
        An ensemble's first member answers (quantiles pool all: `forecast_windows`).
        """
        net = self._require_fitted()[0]
        return self._member_distribution(net, windows, pairs, future_known, chunk)

    @torch.no_grad()
    def _member_distribution(self, net, windows, pairs, future_known=None, chunk=1024) -> dict:
        """`distribution_at` of one ensemble member."""
        if net.autoregressive:
            raise UserError(
                "an autoregressive forecaster has no closed-form distribution; "
                "use forecast_windows (sample paths)"
            )
        net.eval()
        device = next(net.parameters()).device
        parts = []
        for begin in range(0, len(pairs), chunk):
            known = None if future_known is None else future_known[begin : begin + chunk]
            batch = self._batch(windows, pairs[begin : begin + chunk], known)
            params = net(batch["encoder"].to(device), batch["decoder"].to(device))
            params = {k: v.double().cpu().numpy() for k, v in params.items()}
            location = batch["location"].numpy()[:, None]
            scale = batch["scale"].numpy()[:, None]
            params["loc"] = location + scale * params["loc"]
            params["scale"] = scale * params["scale"] * self._interval_factors()
            parts.append(params)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def forecast_windows(
        self,
        windows: _Windows,
        pairs: np.ndarray,
        future_known: np.ndarray | None = None,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
    ) -> dict[float, np.ndarray]:
        """Quantile forecasts (q -> (B, H) array, data units) at ``(series, origin)`` pairs."""
        if self.config.decoder == "autoregressive":
            return self._sampled_quantiles(windows, pairs, future_known, quantiles)
        # Direct members: the average of their quantiles (Vincentization), which keeps the
        # quantiles ordered and is as wide as a typical member.
        members = [
            self._member_distribution(net, windows, pairs, future_known)
            for net in self._require_fitted()
        ]
        return {
            q: np.mean([_quantile(params, q, self.config.likelihood) for params in members], 0)
            for q in quantiles
        }

    @torch.no_grad()
    def _sampled_quantiles(self, windows, pairs, future_known, quantiles) -> dict:
        """Quantiles of ``samples`` sample paths of the autoregressive decoder (shared out
        among the ensemble's members and pooled: a mixture of their predictions)."""
        nets = self._require_fitted()
        device = next(nets[0].parameters()).device
        generator = torch.Generator().manual_seed(self.config.seed)
        batch = self._batch(windows, pairs, future_known)
        per_member = max(1, self.config.samples // len(nets))
        paths = np.concatenate(
            [
                net.eval()
                .sample_paths(
                    batch["encoder"].to(device),
                    batch["decoder"].to(device),
                    per_member,
                    generator,
                )
                .double()
                .cpu()
                .numpy()
                for net in nets
            ]
        )
        location = batch["location"].numpy()[None, :, None]
        scale = batch["scale"].numpy()[None, :, None]
        paths = location + scale * paths
        median = np.median(paths, axis=0)
        widen = self._interval_factors()
        return {q: median + widen * (np.quantile(paths, q, axis=0) - median) for q in quantiles}

    def predict(
        self,
        horizon: int | None = None,
        data: SeriesFrame | pd.DataFrame | None = None,
        future: pd.DataFrame | None = None,
        levels: tuple[int, ...] | None = None,
    ) -> pd.DataFrame:
        """Forecast the steps after the end of every series.

        Args:
            horizon: steps to forecast (at most the trained horizon); default: all of them.
            data: the history to forecast from (default: the training data); a `SeriesFrame`
                or a DataFrame with the training columns.
            future: known-future covariates for the horizon: columns ``time``, ``series``
                (when there are several series) and each future covariate.
            levels: interval levels in percent (default: the config's, e.g. 80).

        Returns:
            DataFrame with columns series, time, forecast (the median), lo_<L>, hi_<L>.
        """
        self._require_fitted()
        horizon = horizon or self.config.horizon
        if not 1 <= horizon <= self.config.horizon:
            raise UserError(
                f"horizon {horizon}: this model forecasts 1 to {self.config.horizon} steps; "
                f"train one with a longer --horizon"
            )
        levels = tuple(levels or self.config.levels)
        history = self.data if data is None else self._coerce_history(data)
        windows = self._windows(history)
        context = self._meta["context_length"]
        short = [(i, n) for i, n in zip(windows.ids, windows.lengths, strict=True) if n < context]
        if short:
            sid, n = short[0]
            raise UserError(
                f"series '{sid}' has {n} points; the model needs at least {context} of history"
            )
        pairs = np.array([(s, n) for s, n in enumerate(windows.lengths)], dtype=np.int64)
        future_times = [
            pd.date_range(t[-1], periods=self.config.horizon + 1, freq=self._meta["freq"])[1:]
            for t in windows.times
        ]
        known = np.stack(
            [
                np.concatenate(
                    [self._calendar(times), self._future_covariates(sid, times, future)], axis=1
                )
                for sid, times in zip(windows.ids, future_times, strict=True)
            ]
        ).astype(np.float32)
        quantiles = sorted({0.5} | {q for level in levels for q in _level_quantiles(level)})
        forecast = self.forecast_windows(windows, pairs, known, tuple(quantiles))
        rows = []
        for s, sid in enumerate(windows.ids):
            frame = pd.DataFrame(
                {
                    SERIES: sid,
                    "time": future_times[s][:horizon],
                    "forecast": forecast[0.5][s, :horizon],
                }
            )
            for level in levels:
                low, high = _level_quantiles(level)
                frame[f"lo_{level:g}"] = forecast[low][s, :horizon]
                frame[f"hi_{level:g}"] = forecast[high][s, :horizon]
            rows.append(frame)
        return pd.concat(rows, ignore_index=True)

    def _coerce_history(self, data: SeriesFrame | pd.DataFrame) -> SeriesFrame:
        meta = self._meta
        if isinstance(data, SeriesFrame):
            frame = data
        else:
            frame = series_from_dataframe(
                data,
                target=meta["target"],
                freq=meta["freq"],
                series_id=SERIES if SERIES in data.columns else None,
                past_covariates=meta["past_covariates"],
                future_covariates=meta["future_covariates"],
                season_length=meta["season_length"],
            )
        missing = [
            c
            for c in [frame.target, *meta["past_covariates"], *meta["future_covariates"]]
            if c not in frame.frame.columns
        ]
        if missing or frame.target != meta["target"]:
            raise UserError(
                f"the history lacks the model's columns (target '{meta['target']}', "
                f"covariates {meta['past_covariates'] + meta['future_covariates']})"
            )
        return frame

    def _future_covariates(self, sid: str, times: pd.DatetimeIndex, future) -> np.ndarray:
        names = self._meta["future_covariates"]
        if not names:
            return np.zeros((len(times), 0), np.float32)
        if future is None:
            raise UserError(
                f"this model uses known-future covariates ({', '.join(names)}); pass their "
                f"values for the horizon (future=, or --future FILE with columns time, series, "
                f"{', '.join(names)})"
            )
        rows = future[future[SERIES].astype(str) == sid] if SERIES in future.columns else future
        missing = [c for c in ["time", *names] if c not in rows.columns]
        if missing:
            raise UserError(f"future covariates: no column(s) {', '.join(missing)}")
        stamps = pd.to_datetime(rows["time"], errors="coerce")
        if stamps.isna().any():
            raise UserError(
                f"future covariates: unparseable time {rows['time'][stamps.isna()].iloc[0]!r}"
            )
        rows = rows.assign(time=stamps).drop_duplicates("time").set_index("time")
        values = rows.reindex(times)[names].apply(pd.to_numeric, errors="coerce")
        if values.isna().any().any():
            raise UserError(
                f"future covariates of series '{sid}' are missing for some of "
                f"{times[0]} .. {times[-1]}"
            )
        mean, std = self._covariate_stats.get(sid, self._covariate_stats["*"])
        n_past = len(self._meta["past_covariates"])
        return (values.to_numpy(float) - np.array(mean[n_past:])) / np.array(std[n_past:])

    # --- saving -------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.safetensors and config.json into ``directory``."""
        nets = self._require_fitted()
        # one member: its own state dict (the format of single models); several: a list
        net = nets[0] if len(nets) == 1 else torch.nn.ModuleList(nets)
        config = {
            "kind": "rnnkit.forecast",
            "config": {**asdict(self.config), "levels": list(self.config.levels)},
            "meta": self._meta,
            "covariate_stats": self._covariate_stats,
            "history": self.history,
            "columns": self.columns,
        }
        return save_model(directory, net, config)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> Forecaster:
        """Rebuild a forecaster saved by `save` (tensors and JSON only, no pickles)."""
        state, saved = load_model_state(directory)
        if saved.get("kind") != "rnnkit.forecast":
            raise UserError(f"{directory}: not a forecasting model (config.json kind)")
        options = {**saved["config"], "levels": tuple(saved["config"]["levels"]), "device": device}
        options.setdefault("seasonal_lag", False)  # models saved before the option existed
        model = cls(ForecasterConfig(**options))
        model._meta = saved["meta"]
        model._covariate_stats = {k: tuple(v) for k, v in saved["covariate_stats"].items()}
        model.history = saved.get("history", [])
        model.columns = saved.get("columns", {})
        model.nets = [
            model._new_net(
                len(model._meta["past_covariates"]), len(model._meta["future_covariates"])
            )
            for _ in range(model.config.ensemble)
        ]
        holder = model.nets[0] if len(model.nets) == 1 else torch.nn.ModuleList(model.nets)
        holder.load_state_dict(state)
        for net in model.nets:
            net.to(device).eval()
        return model

    @property
    def meta(self) -> dict:
        """Target, covariates, frequency, season and context length of the trained model."""
        return dict(self._meta)


class _RandomBatches:
    """An epoch of ``batches_per_epoch`` batches of random training windows."""

    def __init__(self, model: Forecaster, windows: _Windows, pairs: np.ndarray, rng):
        self.model, self.windows, self.pairs, self.rng = model, windows, pairs, rng

    def __iter__(self):
        cfg = self.model.config
        for _ in range(cfg.batches_per_epoch):
            chosen = self.rng.integers(0, len(self.pairs), size=cfg.batch_size)
            yield self.model._batch(self.windows, self.pairs[chosen])

    def __len__(self) -> int:
        return self.model.config.batches_per_epoch


def as_series_frame(data: SeriesFrame | pd.DataFrame, **columns) -> SeriesFrame:
    """A `SeriesFrame` as it is, or a checked one built from a DataFrame."""
    if isinstance(data, SeriesFrame):
        return data
    if isinstance(data, pd.DataFrame):
        return series_from_dataframe(data, **columns)
    raise UserError(f"expected a DataFrame or SeriesFrame, got {type(data).__name__}")


def _covariate_stats(data: SeriesFrame) -> dict[str, tuple[list[float], list[float]]]:
    """Mean and std of each covariate per series (and over all, ``"*"``, for new series)."""
    columns = data.past_covariates + data.future_covariates

    def stats(frame: pd.DataFrame) -> tuple[list[float], list[float]]:
        values = frame[columns].to_numpy(float)
        std = np.nan_to_num(values.std(axis=0), nan=1.0) if len(columns) else np.zeros(0)
        mean = np.nan_to_num(values.mean(axis=0)) if len(columns) else np.zeros(0)
        return mean.tolist(), np.where(std > 1e-8, std, 1.0).tolist()

    result = {sid: stats(group) for sid, group in data.groups()}
    result["*"] = stats(data.frame)
    return result


def _calibration_origins(val_origins: np.ndarray, horizon: int) -> np.ndarray:
    """Origins every ``horizon // 6`` steps across the validation windows (whose origins are
    ``horizon`` apart), for the interval calibration.

    Overlapping windows see the same held-out points at other lead times: six times the
    scores for the same data, which steadies the quantile of each step (the points of one
    window are correlated, so more distinct origins help more than more steps of one).
    """
    stride = max(1, horizon // 6)
    dense = [
        (series, origin + shift)
        for series, origin in val_origins
        for shift in range(0, horizon, stride)
    ]
    # the last window's shifted copies would reach past the end of the series: drop them
    last = {series: origin for series, origin in val_origins}
    dense = [(s, o) for s, o in dense if o <= last[s]]
    return np.array(dense, dtype=np.int64).reshape(-1, 2)


def _scores(truth, median, lower, upper) -> np.ndarray:
    """|truth - median| over the half-interval on the truth's side (NaN where no truth)."""
    above = truth >= median
    half_width = np.where(above, upper - median, median - lower)
    return np.abs(truth - median) / np.maximum(half_width, 1e-12)


def interval_factors(scores: np.ndarray, level: float) -> list[float]:
    """Per-step factors on the half-intervals that make ``level`` percent of ``scores``
    (B, H; see `Forecaster.conformal_scores`) fall inside: the split-conformal quantile.

    A step's factor is the level's quantile of the scores of that step and its two
    neighbours on each side (pooled, because a few dozen windows per step give a noisy
    quantile), clipped to 0.5-3. Too few scores (under 20): no change (factors of 1).

    Example:
        >>> interval_factors(np.full((10, 4), 2.0), 80)
        [2.0, 2.0, 2.0, 2.0]
    """
    horizon = scores.shape[1]
    if np.isfinite(scores).sum() < 20:  # too few points to say anything
        return [1.0] * horizon
    factors = []
    for step in range(horizon):
        near = scores[:, max(0, step - 2) : step + 3]
        near = near[np.isfinite(near)]
        factor = np.quantile(near, level / 100) if len(near) else 1.0
        factors.append(float(np.clip(factor, 0.5, 3.0)))
    return factors


def _location_scale(filled: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-window location and scale, vectorised `features.window_location_scale`.

    ``filled`` carries the last observation forward, so its last column is the last
    observed value of each window.
    """
    count = np.maximum(observed.sum(axis=1), 1)
    mean = (filled * observed).sum(axis=1) / count
    variance = (((filled - mean[:, None]) ** 2) * observed).sum(axis=1) / count
    floor = 1e-3 * np.maximum(np.abs(mean), 1e-3)
    return filled[:, -1].astype(float), np.maximum(np.sqrt(variance), floor)


def _level_quantiles(level: float) -> tuple[float, float]:
    tail = (1 - level / 100) / 2
    return round(tail, 6), round(1 - tail, 6)


def _quantile(params: dict, q: float, likelihood: str) -> np.ndarray:
    from scipy import stats

    z = stats.t.ppf(q, params["df"]) if likelihood == "student_t" else stats.norm.ppf(q)
    return params["loc"] + params["scale"] * z


__all__ = ["Forecaster", "ForecasterConfig", "as_series_frame", "interval_factors"]
