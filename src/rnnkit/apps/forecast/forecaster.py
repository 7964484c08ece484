"""`Forecaster`: a global RNN forecaster with intervals, in the fit/predict style of Darts.

One network is trained on windows cut from every series of a data set. The data flows one
way through the package's modules:

    series (`series`: arrays, seasonal indices) -> windows (`windows`: origins, scaled
    batches) -> network (`model`) -> distribution (`distribution`: data units, quantiles)
    -> calibrated intervals (`calibration`) -> forecast frame (`frame`).

The `Forecaster` only holds the configuration and the trained networks and calls them in
that order (`fit`, `predict`, `update`, `save`, `load`).

Example:
    >>> from rnnkit.data.timeseries import load_series
    >>> data = load_series("elecdemand")  # half-hourly demand, temperature and working days
    >>> quick = dict(epochs=1, batches_per_epoch=4, batch_size=32)  # seconds, not minutes
    >>> model = Forecaster(horizon=48, **quick).fit(data)
    >>> times = pd.date_range(data.frame["time"].max(), periods=49, freq="30min")[1:]
    >>> future = pd.DataFrame({"time": times, "WorkDay": 1.0})  # known-future covariates
    >>> model.predict(future=future).columns.tolist()
    ['series', 'time', 'forecast', 'lo_80', 'hi_80']
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnkit.apps.forecast.calibration import MIN_SCORES, interval_factors, scores
from rnnkit.apps.forecast.combination import (
    MEAN_WEIGHTS,
    WEIGHTS,
    choose_members,
    choose_weight,
    error_scale,
    network_weight,
    shift,
    statistical_at,
    statistical_means,
)
from rnnkit.apps.forecast.config import ForecasterConfig
from rnnkit.apps.forecast.distribution import (
    level_quantiles,
    pooled_quantiles,
    to_data_units,
)
from rnnkit.apps.forecast.features import CALENDAR_FEATURES, CalendarCache
from rnnkit.apps.forecast.frame import (
    forecast_frame,
    future_by_series,
    future_covariates,
    future_times,
)
from rnnkit.apps.forecast.model import ForecastNet, forecast_loss
from rnnkit.apps.forecast.series import (
    SeriesArrays,
    as_series_frame,
    covariate_stats,
    refit_seasonal,
    series_arrays,
)
from rnnkit.apps.forecast.windows import (
    RandomBatches,
    calibration_origins,
    location_scale,
    make_batch,
    seasonal_lag_values,
    split_origins,
    truth_at,
)
from rnnkit.data.timeseries import SERIES, SeriesFrame, series_from_dataframe
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError

# `Forecaster.fit` warns above this many readings of the training windows an epoch (the ten
# benchmark collections read theirs at most 25 times; one monthly series of 144 points, 280).
MANY_PASSES = 100


def epoch_batches(windows: int, batches: int, batch_size: int, max_passes: float | None) -> int:
    """``batches``, or fewer when that would read ``windows`` more than ``max_passes`` times
    (at least one)."""
    if max_passes is None:
        return batches
    return max(1, min(batches, math.ceil(max_passes * windows / batch_size)))


def history_needed(season: int, context: int) -> int:
    """The fewest observed steps a training window starts from: one season (padded to the
    context), so that a series of one season plus the horizon still trains."""
    return max(1, min(int(season), int(context)))


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
        self._meta = {
            "target": data.target,
            "past_covariates": data.past_covariates,
            "future_covariates": data.future_covariates,
            "freq": data.freq,
            "season_length": self.season_length_for(data),
            "context_length": self.context_length_for(data),
        }
        self._covariate_stats = covariate_stats(data)
        windows = self._windows(data)
        self._meta["validation_windows"] = self._validation_windows(windows)
        train_origins, val_origins = self._split_origins(windows, self._meta["context_length"])
        if cfg.deseasonalize:  # seasonal indices of what precedes the validation windows
            ends = windows.lengths.copy()
            for s, origin in val_origins[::-1]:
                ends[s] = origin
            season = int(self._meta["season_length"])
            windows = refit_seasonal(windows, ends, season, self.config.recent_seasons)
        val_batches = (
            [
                self._batch(windows, chunk)
                for chunk in np.array_split(val_origins, max(1, len(val_origins) // cfg.batch_size))
            ]
            if len(val_origins)
            else None
        )
        self._warn_about_many_passes(len(train_origins))
        self.nets, self.history, best_epochs = [], [], []
        for member in range(cfg.ensemble):
            net, history, best_epoch = self._train_member(
                cfg.seed + member, windows, train_origins, val_batches
            )
            self.nets.append(net)
            # the log of every member, one after the other (``member`` tells them apart)
            if cfg.ensemble > 1:
                history = [{**row, "member": member} for row in history]
            self.history += history
            best_epochs.append(best_epoch)
        self._meta["best_epoch"] = best_epochs[0] if cfg.ensemble == 1 else best_epochs
        self.data = data
        # The validation windows choose the epochs, the combination weight and the interval
        # factors with the networks trained without them; `refit` then retrains on them too.
        self._meta["interval_scale"] = [1.0] * cfg.horizon
        self._meta["combine_weight"] = 1.0
        if cfg.combine != "none" and len(val_origins):
            self._choose_combination(windows, val_origins)
        elif cfg.combine not in ("none", "theta"):  # an equal-weight mean: no validation needed
            self._meta["combine_members"] = self._fixed_members()
            self._meta["combine_weight"] = network_weight(self._meta["combine_members"])
        # where the held-out windows begin: `update` recalibrates on nothing earlier
        first_held_out: dict[str, str] = {}
        for s, origin in val_origins:  # in order of origin within each series
            first_held_out.setdefault(windows.ids[s], str(windows.times[s][origin]))
        self._meta["calibration_start"] = first_held_out
        if cfg.calibrate_intervals and len(val_origins):
            self._meta["interval_scale"] = self._interval_scale(
                windows, calibration_origins(val_origins, cfg.horizon)
            )
        # none held out although some were asked for (the detector asks for none)
        if not len(val_origins) and self._validation_windows(windows) > 0 and len(train_origins):
            self._calibrate_without_validation(windows, train_origins)
        if cfg.refit and len(val_origins):
            self._refit(windows, train_origins, val_origins, best_epochs)
        return self

    def _calibrate_without_validation(self, windows, train_origins) -> None:
        """Series too short to hold out a horizon: calibrate on the training windows from
        each series' last one to its end (the truth known there; the combination's errors
        are honest enough, as Theta and the damped trend see only the past), without the
        cap at 3 (the network's own errors there understate), and say so."""
        cfg = self.config
        warnings.warn(
            f"the series are too short to hold out a validation horizon ({cfg.horizon} "
            "steps after the context): the epochs are not chosen on held-out data and "
            "the intervals are calibrated on training windows (likely too narrow); "
            "more history, or a shorter horizon or context, fixes it",
            stacklevel=3,
        )
        if cfg.calibrate_intervals:
            pairs = origins_to_the_end(train_origins, windows.lengths, cfg.horizon)
            scores = self.conformal_scores(windows, pairs)
            self._meta["interval_scale"] = interval_factors(scores, cfg.levels[0], largest=10.0)

    def _refit(self, windows, train_origins, val_origins, best_epochs) -> None:
        """Retrain every member from its seed on the training and validation windows for
        its best epoch count: the most recent history is what a forecast depends on most,
        and the validation windows are the most recent (a collection of short series, such
        as M3, would otherwise never train on its last horizon)."""
        extra = [
            (s, origin)
            for s, first in val_origins
            for origin in range(int(first) - self.config.horizon + 1, int(first) + 1)
            if origin > 0 and origin + self.config.horizon <= windows.lengths[s]
        ]
        everything = np.unique(
            np.concatenate([train_origins, np.array(extra, np.int64).reshape(-1, 2), val_origins]),
            axis=0,
        )
        for member, best in enumerate(best_epochs):
            net, _, _ = self._train_member(
                self.config.seed + member, windows, everything, None, epochs=max(1, best or 1)
            )
            self.nets[member] = net

    def _train_member(self, seed, windows, train_origins, val_batches, epochs=None):
        """One network trained from ``seed``: (net in eval mode, its log, its best epoch)."""
        cfg = self.config
        seed_everything(seed)
        net = self._new_net(
            len(self._meta["past_covariates"]), len(self._meta["future_covariates"])
        )
        net.to(cfg.device)
        rng = np.random.default_rng(seed)
        batches = self.batches_per_epoch(len(train_origins))
        train_batches = RandomBatches(
            partial(self._batch, windows), train_origins, batches, cfg.batch_size, rng
        )
        trainer = Trainer(
            net,
            self._step,
            TrainConfig(
                epochs=epochs or cfg.epochs,
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

    def _warn_about_many_passes(self, windows: int) -> None:
        """Say so when an epoch reads few windows very many times (one short series): the
        fit takes far longer than the data needs, and ``max_passes`` is the way out."""
        cfg = self.config
        if cfg.max_passes is not None or not windows:
            return
        passes = cfg.batches_per_epoch * cfg.batch_size / windows
        if passes > MANY_PASSES:
            capped = epoch_batches(windows, cfg.batches_per_epoch, cfg.batch_size, 30)
            plural = "s" if windows != 1 else ""
            warnings.warn(
                f"each epoch reads the {windows:,} training window{plural} about {passes:,.0f} "
                f"times ({cfg.batches_per_epoch} batches of {cfg.batch_size}); max_passes=30 "
                f"(--max-passes 30) draws {capped} batch(es) an epoch instead (not the default: "
                "see the README's 'One short series trains long')",
                stacklevel=3,
            )

    def batches_per_epoch(self, windows: int) -> int:
        """Batches an epoch draws from ``windows`` training windows: ``batches_per_epoch``,
        or fewer when that would read them more than ``max_passes`` times.

        Example:
            >>> Forecaster(horizon=4, batch_size=8, max_passes=2).batches_per_epoch(40)
            10
        """
        cfg = self.config
        return epoch_batches(windows, cfg.batches_per_epoch, cfg.batch_size, cfg.max_passes)

    def _step(self, net: ForecastNet, batch: dict) -> dict:
        device = next(net.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        # Teacher forcing for an autoregressive decoder: the value before each step is the
        # truth (0 before the first: the window is centred on its last value).
        target = batch["target"]
        previous = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)
        params = net(batch["encoder"], batch["decoder"], previous)
        loss = forecast_loss(net, params, target, batch["mask"], self.config.loss, batch["step"])
        return {"loss": loss}

    def season_length_for(self, data: SeriesFrame) -> int:
        return self.config.season_length or data.season_length

    def context_length_for(self, data: SeriesFrame) -> int:
        if self.config.context_length:
            return self.config.context_length
        return max(3 * self.season_length_for(data), 2 * self.config.horizon, 16)

    def history_needed_for(self, data: SeriesFrame) -> int:
        """`history_needed` of a fit on ``data``."""
        return history_needed(self.season_length_for(data), self.context_length_for(data))

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

    # --- series and windows (see `series` and `windows`) --------------------------------

    def _windows(self, data: SeriesFrame) -> SeriesArrays:
        """Every series of ``data`` as arrays (`series.series_arrays`, model's settings)."""
        return series_arrays(
            data,
            self._meta,
            self._covariate_stats,
            calendar=self.config.calendar,
            deseasonalize=self.config.deseasonalize,
            recent_seasons=self.config.recent_seasons,
        )

    def _split_origins(self, windows: SeriesArrays, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(series, origin) pairs for training and for validation (the last windows)."""
        cfg = self.config
        min_history = history_needed(self._meta["season_length"], self._meta["context_length"])
        return split_origins(
            windows, context, cfg.horizon, self._validation_windows(windows), min_history
        )

    def _validation_windows(self, windows: SeriesArrays) -> int:
        """The configured validation windows per series, or (None) 4 for up to 4 series,
        fewer for more, 1 from 11 series on: a collection of many short series (M3) keeps
        its recent history for training, and 1 window of each series already gives
        hundreds of held-out windows; one series needs several for its calibration."""
        if self.config.validation_windows is not None:
            return self.config.validation_windows
        return int(np.clip(round(16 / len(windows.ids)), 1, 4))

    def _batch(self, windows: SeriesArrays, pairs: np.ndarray, future_known=None) -> dict:
        """`windows.make_batch` with the model's settings."""
        return make_batch(
            windows,
            pairs,
            self._meta["context_length"],
            self.config.horizon,
            future_known,
            scaling=self.config.scaling,
            season=int(self._meta["season_length"]),
            seasonal_lag=self.config.seasonal_lag,
            step_yardstick=self.config.mase_step,
        )

    def _seasonal_lag(self, windows: SeriesArrays, pairs: np.ndarray, start=None) -> np.ndarray:
        """`windows.seasonal_lag_values` with the model's season and horizon."""
        return seasonal_lag_values(
            windows, pairs, int(self._meta["season_length"]), self.config.horizon
        )

    # --- network -> distribution --------------------------------------------------------

    @property
    def net(self) -> ForecastNet | None:
        """The (first) trained network; None before `fit`."""
        return self.nets[0] if self.nets else None

    def _require_fitted(self) -> list[ForecastNet]:
        if not self.nets:
            raise UserError("the forecaster is not trained yet; call fit() or load a model")
        return self.nets

    @torch.no_grad()
    def distribution_at(
        self,
        windows: SeriesArrays,
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
        """`distribution_at` of one ensemble member (interval factors applied)."""
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
            part = pairs[begin : begin + chunk]
            batch = self._batch(windows, part, known)
            params = net(batch["encoder"].to(device), batch["decoder"].to(device))
            params = {k: v.double().cpu().numpy() for k, v in params.items()}
            horizon = self.config.horizon
            seasonal = windows.seasonal_ahead(part[:, 0], part[:, 1], horizon)
            shift = windows.shift_ahead(part[:, 0], part[:, 1], horizon)
            params = to_data_units(
                params, batch["location"].numpy(), batch["scale"].numpy(), seasonal, shift
            )
            params["scale"] = params["scale"] * self._interval_factors()
            parts.append(params)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def forecast_windows(
        self,
        windows: SeriesArrays,
        pairs: np.ndarray,
        future_known: np.ndarray | None = None,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
    ) -> dict[float, np.ndarray]:
        """Quantile forecasts (q -> (B, H) array, data units) at ``(series, origin)`` pairs."""
        wanted = tuple(sorted({0.5, *quantiles}))  # the combination moves the median
        if self.config.decoder == "autoregressive":
            found = self._sampled_quantiles(windows, pairs, future_known, wanted)
        else:
            members = [
                self._member_distribution(net, windows, pairs, future_known)
                for net in self._require_fitted()
            ]
            found = pooled_quantiles(members, wanted, self.config.likelihood)
        found = self._combined(windows, pairs, found)
        floored = windows.floored_at_zero[pairs[:, 0]][:, None]
        return {q: np.where(floored, np.maximum(found[q], 0.0), found[q]) for q in quantiles}

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
        seasonal = windows.seasonal_ahead(pairs[:, 0], pairs[:, 1], self.config.horizon)
        shift = windows.shift_ahead(pairs[:, 0], pairs[:, 1], self.config.horizon)
        paths = (location + scale * paths + shift[None]) * seasonal[None]
        median = np.median(paths, axis=0)
        factors = self._interval_factors()
        return {q: median + factors * (np.quantile(paths, q, axis=0) - median) for q in quantiles}

    # --- combination with statistical forecasts (see `combination`) --------------------

    def _choose_combination(self, windows: SeriesArrays, val_origins: np.ndarray) -> None:
        """Set the network's weight against the statistical forecast by the scaled error on
        the validation windows: ``theta`` chooses it (`combination.choose_weight`); the
        equal-weight means keep theirs (``auto`` chooses which mean,
        `combination.choose_members`)."""
        cfg = self.config
        network = self.uncalibrated_forecast(windows, val_origins, (0.5,))[0.5]
        truth = truth_at(windows, val_origins, cfg.horizon)
        scale = error_scale(windows)[val_origins[:, 0]]
        if cfg.combine == "theta":
            other = statistical_at(windows, val_origins, cfg.horizon, "theta")
            weight, errors = choose_weight(truth, network, other, scale, WEIGHTS)
            self._meta["combine_weight"] = weight
            self._meta["combine_errors"] = {f"{w:.3g}": e for w, e in errors.items()}
            return
        if cfg.combine == "auto":
            statistical = statistical_means(windows, val_origins, cfg.horizon)
            members, errors = choose_members(truth, network, statistical, scale)
            self._meta["combine_errors"] = errors
        else:
            members = self._fixed_members()
            other = statistical_at(windows, val_origins, cfg.horizon, members)
            # ``mean`` keeps its equal weights whatever the validation windows say (their
            # errors are kept for the record): on M3 monthly one window per series chose
            # worse weights than equal ones (see config.py), the "forecast combination
            # puzzle".
            _, errors = choose_weight(truth, network, other, scale, MEAN_WEIGHTS)
            self._meta["combine_errors"] = {f"{w:.3g}": e for w, e in errors.items()}
        self._meta["combine_members"] = members
        self._meta["combine_weight"] = network_weight(members)

    def _fixed_members(self) -> str:
        """The `MEAN_MEMBERS` of an equal-weight mean chosen without validation windows:
        ``by_season`` takes Holt's trend for data without seasons (a season of 1 step);
        ``auto`` without validation windows keeps ``mean``."""
        combine = self.config.combine
        if combine == "by_season":
            return "mean_holt" if int(self._meta["season_length"]) == 1 else "mean"
        return "mean" if combine == "auto" else combine

    def _combined(self, windows, pairs, quantiles: dict[float, np.ndarray]) -> dict:
        """The quantiles moved so the median is the weighted mean with the statistical
        forecast (`combination.statistical_at`)."""
        weight = float(self._meta.get("combine_weight", 1.0))
        if weight >= 1.0 or self.config.combine == "none":
            return quantiles
        # models saved before ``combine_members`` combined by ``combine`` alone
        members = self._meta.get("combine_members", self.config.combine)
        other = statistical_at(windows, pairs, self.config.horizon, members)
        return shift(quantiles, weight * quantiles[0.5] + (1 - weight) * other)

    # --- calibrated intervals (see `calibration`) ---------------------------------------

    def _interval_factors(self) -> np.ndarray:
        """(H,) the calibration factor of each step (one number in models saved before
        per-step calibration: broadcast)."""
        factors = np.asarray(self._meta.get("interval_scale", 1.0), dtype=float)
        return np.broadcast_to(factors, (self.config.horizon,))

    def _interval_scale(self, windows: SeriesArrays, pairs: np.ndarray) -> list[float]:
        """Factors, one per horizon step, on the distance of each interval end from the
        median that make the first interval level cover its share of the windows at
        ``pairs`` (split-conformal calibration, for both decoders; see `interval_factors`).

        Fitted on windows the network did not train on, never on test windows; ``pairs``
        may overlap (`windows.calibration_origins`).
        """
        return interval_factors(self.conformal_scores(windows, pairs), self.config.levels[0])

    def conformal_scores(self, windows: SeriesArrays, pairs: np.ndarray) -> np.ndarray:
        """(B, H) how far out the truth lies at each step of the forecasts at ``pairs``, in
        units of the uncalibrated first-level half-interval on its side of the median
        (NaN where the truth is missing or beyond the data): a score of 1 is on the edge."""
        lower_q, upper_q = level_quantiles(self.config.levels[0])
        forecast = self.uncalibrated_forecast(windows, pairs, (lower_q, 0.5, upper_q))
        truth = truth_at(windows, pairs, self.config.horizon)
        return scores(truth, forecast[0.5], forecast[lower_q], forecast[upper_q])

    def uncalibrated_forecast(
        self, windows: SeriesArrays, pairs: np.ndarray, quantiles: tuple[float, ...]
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
            >>> hours = pd.date_range("2024-01-01", periods=24 * 60, freq="h")
            >>> cycle = 10 + np.sin(np.arange(len(hours)) * 2 * np.pi / 24)
            >>> history_with_today = pd.Series(cycle, index=hours)
            >>> history = history_with_today[:-24]
            >>> quick = dict(epochs=1, batches_per_epoch=4, batch_size=32)  # seconds, not minutes
            >>> model = Forecaster(horizon=24, **quick).fit(history)
            >>> forecast = model.update(history_with_today).predict()  # tomorrow, recalibrated
            >>> forecast["time"].iloc[0]
            Timestamp('2024-03-01 00:00:00')
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
            found = self.conformal_scores(windows, pairs)
            if np.isfinite(found).sum() >= MIN_SCORES:  # otherwise keep the factors it has
                self._meta["interval_scale"] = interval_factors(found, self.config.levels[0])
        self.data = history
        return self

    def recent_origins(self, windows: SeriesArrays, series: int, end: int) -> list[int]:
        """Origins of the forecasts that recalibrate the intervals of a forecast at origin
        ``end`` of series number ``series``: every ``horizon // 6`` steps over the last
        ``recalibration_windows`` horizons whose truth is known by ``end``, from the first
        validation origin on (earlier origins are training windows: too confident)."""
        horizon = self.config.horizon
        windows_back = self.config.recalibration_windows or self._meta.get("validation_windows")
        span = (windows_back or self.config.validation_windows or 4) * horizon
        stride = max(1, horizon // 6)
        earliest = max(end - span, self._meta["context_length"])
        start = self._meta.get("calibration_start", {}).get(windows.ids[series])
        if start is not None:
            first_held_out = windows.times[series].searchsorted(pd.Timestamp(start))
            earliest = max(earliest, int(first_held_out))
        return list(range(end - horizon, earliest - 1, -stride))[::-1]

    # --- forecast frame (see `frame`) ---------------------------------------------------

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
                or a DataFrame with the training columns. Series shorter than the context
                are padded as "not observed".
            future: known-future covariates for the horizon: columns ``time``, ``series``
                (when there are several series) and each future covariate.
            levels: interval levels in percent (default: the config's, e.g. 80).

        Returns:
            DataFrame with columns series, time, forecast (the median), lo_<L>, hi_<L>.
        """
        self._require_fitted()
        horizon = self.config.horizon if horizon is None else int(horizon)
        if not 1 <= horizon <= self.config.horizon:
            raise UserError(
                f"horizon {horizon}: this model forecasts 1 to {self.config.horizon} steps; "
                f"train one with a longer --horizon"
            )
        levels = tuple(levels or self.config.levels)
        history = self.data if data is None else self._coerce_history(data)
        windows = self._windows(history)
        self._check_spacing(windows)
        pairs = np.array([(s, n) for s, n in enumerate(windows.lengths)], dtype=np.int64)
        after: dict[pd.Timestamp, pd.DatetimeIndex] = {}  # series that end together
        for t in windows.times:
            if t[-1] not in after:
                after[t[-1]] = future_times(t[-1], self.config.horizon, self._meta["freq"])
        times = [after[t[-1]] for t in windows.times]
        calendar = CalendarCache()
        future_of = future_by_series(future)
        known = np.stack(
            [
                np.concatenate(
                    [
                        self._calendar(stamps, calendar),
                        self._future_covariates(sid, stamps, future_of(sid)),
                    ],
                    axis=1,
                )
                for sid, stamps in zip(windows.ids, times, strict=True)
            ]
        ).astype(np.float32)
        quantiles = sorted({0.5} | {q for level in levels for q in level_quantiles(level)})
        forecast = self.forecast_windows(windows, pairs, known, tuple(quantiles))
        return forecast_frame(windows.ids, times, forecast, levels, horizon)

    def _check_spacing(self, windows: SeriesArrays) -> None:
        """A one-line error for history coarser than the model's step (weekly values given
        to a daily model): put on the model's grid, six of every seven steps would be gaps,
        and the forecast would silently be made from a few scattered points. Coarser means
        three or more values and no two of them on neighbouring steps."""
        seen = np.flatnonzero(windows.observed)  # flat positions, series after series
        series = np.searchsorted(windows.offsets, seen, side="right") - 1
        gaps = np.diff(seen)
        within = series[1:] == series[:-1]
        count = len(windows.ids)
        values = np.bincount(series, minlength=count)
        neighbours = np.bincount(series[1:][within & (gaps == 1)], minlength=count)
        coarse = np.flatnonzero((values >= 3) & (neighbours == 0))
        if len(coarse):
            first = coarse[0]
            spacing = int(gaps[within & (series[1:] == first)].min())
            freq = self._meta["freq"]
            raise UserError(
                f"series '{windows.ids[first]}': its values lie {spacing}+ steps apart on the "
                f"model's '{freq}' grid; the model was trained on '{freq}' data, so give it "
                "data of that frequency (or train one on this data)"
            )

    def _calendar(self, times: pd.DatetimeIndex, calendar: CalendarCache) -> np.ndarray:
        features = calendar(times)
        return features if self.config.calendar else np.zeros_like(features)

    def _future_covariates(self, sid: str, times: pd.DatetimeIndex, rows) -> np.ndarray:
        names = self._meta["future_covariates"]
        mean, std = self._covariate_stats.get(sid, self._covariate_stats["*"])
        n_past = len(self._meta["past_covariates"])
        return future_covariates(sid, times, rows, names, mean[n_past:], std[n_past:])

    def _coerce_history(self, data: SeriesFrame | pd.DataFrame) -> SeriesFrame:
        meta = self._meta
        if isinstance(data, SeriesFrame):
            frame = data
            if frame.freq != meta["freq"]:
                raise UserError(
                    f"the history's frequency is '{frame.freq}'; the model's is "
                    f"'{meta['freq']}': give it data of the model's frequency"
                )
        else:
            frame = series_from_dataframe(
                data,
                target=meta["target"],
                freq=meta["freq"],
                # A pd.Series indexed by time (as `fit` takes) has no columns: one series.
                series_id=SERIES if isinstance(data, pd.DataFrame) and SERIES in data else None,
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
        # models saved before these options existed behaved as their old defaults
        for name, old in LEGACY_OPTIONS.items():
            options.setdefault(name, old)
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


# What models saved before an option existed did (`Forecaster.load` fills these in).
LEGACY_OPTIONS = {
    "seasonal_lag": False,
    "loss": "nll",
    "scaling": "last",
    "deseasonalize": False,
    "recent_seasons": None,
    "season_length": None,
    "combine": "none",
    "refit": False,
}

# Names other modules and older code import from here.
_Windows = SeriesArrays
_calibration_origins = calibration_origins
_location_scale = location_scale
_level_quantiles = level_quantiles


def origins_to_the_end(origins: np.ndarray, lengths: np.ndarray, horizon: int) -> np.ndarray:
    """(series, origin) pairs every ``horizon // 6`` steps from each series' last origin of
    ``origins`` to its last value (the later ones see part of their horizon's truth)."""
    last: dict[int, int] = {}
    for s, o in origins:
        last[int(s)] = max(last.get(int(s), int(o)), int(o))
    stride = max(1, horizon // 6)
    chosen = [
        (s, origin)
        for s, start in sorted(last.items())
        for origin in range(start, int(lengths[s]), stride)
    ]
    return np.array(chosen, dtype=np.int64).reshape(-1, 2)


__all__ = ["Forecaster", "ForecasterConfig", "as_series_frame", "interval_factors"]
