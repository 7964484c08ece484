"""The forecasts a data scientist would try first: naive, seasonal naive, ETS and ARIMA.

Each baseline takes the history before a forecast origin and returns quantile forecasts
``{0.1: (H,), 0.5: (H,), 0.9: (H,)}`` so that it is scored exactly like rnnkit, intervals
included. ETS and ARIMA are statsmodels' (``ETSModel`` and ``ARIMA``), refitted at every
origin on the most recent ``max_history`` points (that keeps a backtest affordable).

* naive: the last value; the spread grows like sqrt(h) from the one-step residuals;
* seasonal naive: the value one season earlier; the spread grows with the number of seasons;
* ETS: additive errors, damped additive trend, additive season when the season is > 1;
* ARIMA: ARIMA(2, d, 1), d from a KPSS test (pmdarima's ``ndiffs``); for seasons longer
  than 12 steps the season enters as 3 Fourier pairs of regressors (dynamic harmonic
  regression, Hyndman & Athanasopoulos, ch. 10.5): a seasonal ARIMA with a season of 24 or
  48 steps takes tens of seconds per fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from rnnkit.apps.forecast.features import fill_missing
from rnnkit.apps.forecast.metrics import QUANTILES

Quantiles = dict[float, np.ndarray]


def _gaussian(mean: np.ndarray, std: np.ndarray) -> Quantiles:
    return {q: mean + norm.ppf(q) * std for q in QUANTILES}


def naive(history: np.ndarray, horizon: int, season_length: int = 1) -> Quantiles:
    """Repeat the last value."""
    y = fill_missing(history)
    residual_std = np.nanstd(np.diff(y)) if len(y) > 1 else 0.0
    mean = np.full(horizon, y[-1])
    return _gaussian(mean, residual_std * np.sqrt(np.arange(1, horizon + 1)))


def seasonal_naive(history: np.ndarray, horizon: int, season_length: int) -> Quantiles:
    """Repeat the last season."""
    y = fill_missing(history)
    m = season_length if len(y) > season_length else 1
    steps = np.arange(horizon)
    mean = y[len(y) - m + steps % m]
    residual_std = np.nanstd(y[m:] - y[:-m]) if len(y) > m else 0.0
    return _gaussian(mean, residual_std * np.sqrt(steps // m + 1))


def ets(history: np.ndarray, horizon: int, season_length: int) -> Quantiles:
    """statsmodels ETS(A, Ad, A) (or ETS(A, Ad, N) without a season), 80% intervals."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = pd.Series(fill_missing(history))
    seasonal = season_length > 1 and len(y) >= 3 * season_length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ETSModel(
            y,
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=season_length if seasonal else None,
            initialization_method="heuristic" if seasonal else "estimated",
        )
        fitted = model.fit(disp=False, maxiter=200)
        frame = fitted.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(
            alpha=0.2
        )
    mean = frame["mean"].to_numpy()
    return _from_interval(mean, frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())


def arima(history: np.ndarray, horizon: int, season_length: int) -> Quantiles:
    """statsmodels ARIMA(2, d, 1) (+ Fourier terms for long seasons), 80% intervals."""
    from pmdarima.arima import ndiffs
    from statsmodels.tsa.arima.model import ARIMA

    y = fill_missing(history)
    d = min(int(ndiffs(y, test="kpss", max_d=1)), 1)
    exog = future_exog = None
    if season_length > 12:
        steps = np.arange(len(y) + horizon)
        exog_all = np.column_stack(
            [f(2 * np.pi * k * steps / season_length) for k in (1, 2, 3) for f in (np.sin, np.cos)]
        )
        exog, future_exog = exog_all[: len(y)], exog_all[len(y) :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ARIMA(y, exog=exog, order=(2, d, 1), trend="c" if d == 0 else "t")
        fitted = model.fit()
        forecast = fitted.get_forecast(horizon, exog=future_exog)
    interval = np.asarray(forecast.conf_int(alpha=0.2))
    return _from_interval(np.asarray(forecast.predicted_mean), interval[:, 0], interval[:, 1])


def _from_interval(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Quantiles:
    return {QUANTILES[0]: lower, 0.5: mean, QUANTILES[-1]: upper}


BASELINES = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "ets": ets,
    "arima": arima,
}
