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


# --- the M3 competition's benchmarks (point forecasts, as the competition scored them) -----
#
# Naive2 and Theta work on seasonally adjusted data, as in the M3 competition (Makridakis &
# Hibon 2000) and the M4 benchmark code: a series is called seasonal when its autocorrelation
# at lag m is outside the 90% band of Bartlett's formula, and then adjusted by the seasonal
# indices of a classical multiplicative decomposition; the forecast is re-seasonalized.


def is_seasonal(history: np.ndarray, season_length: int) -> bool:
    """The M3/M4 seasonality test: ``|acf(m)| > 1.645 sqrt((1 + 2 sum_{k<m} acf(k)^2) / n)``.

    Needs at least three seasons of data (as the M4 benchmark code); shorter series and
    ``season_length`` 1 are not seasonal.
    """
    from statsmodels.tsa.stattools import acf

    y = fill_missing(history)
    m = season_length
    if m <= 1 or len(y) < 3 * m:
        return False
    rho = acf(y, nlags=m, fft=False)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(rho[1:m] ** 2)) / len(y))
    return bool(abs(rho[m]) > limit)


def seasonal_indices(history: np.ndarray, season_length: int) -> np.ndarray:
    """Multiplicative seasonal indices for every position of the history and the future.

    Returns:
        (m,) indices in the order of the history's first m positions (ones when the series
        is not seasonal by `is_seasonal`, or has a value <= 0, where multiplicative
        decomposition is undefined).
    """
    from statsmodels.tsa.seasonal import seasonal_decompose

    y = fill_missing(history)
    m = max(season_length, 1)
    if not is_seasonal(y, m) or np.min(y) <= 0:
        return np.ones(m)
    return np.asarray(seasonal_decompose(y, model="multiplicative", period=m).seasonal[:m])


def _deseasonalized(history: np.ndarray, season_length: int):
    """``(adjusted history, factors of the horizon's steps as a function of horizon)``."""
    y = fill_missing(history)
    indices = seasonal_indices(y, season_length)
    m = len(indices)
    adjusted = y / indices[np.arange(len(y)) % m]

    def future(horizon: int) -> np.ndarray:
        return indices[(len(y) + np.arange(horizon)) % m]

    return adjusted, future


def naive2(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """M3's Naive2: the last seasonally adjusted value, re-seasonalized. Returns (H,)."""
    adjusted, future = _deseasonalized(history, season_length)
    return adjusted[-1] * future(horizon)


def theta(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """The Theta method (statsmodels ``ThetaModel``, theta = 2) on M3-style seasonally
    adjusted data (the adjustment of `naive2`), re-seasonalized. Returns (H,)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    adjusted, future = _deseasonalized(history, season_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ThetaModel(adjusted, period=1, deseasonalize=False).fit()
        forecast = np.asarray(fitted.forecast(horizon, theta=2))
    return forecast * future(horizon)


def ets_variants(history: np.ndarray, season_length: int) -> list[dict]:
    """The ETS models tried by `ets_aicc`, as keyword arguments of statsmodels' ``ETSModel``.

    Errors additive or multiplicative, trend none, additive or damped additive, season none,
    additive or multiplicative; multiplicative parts only for positive data, a season only
    when ``season_length > 1`` and two full seasons are there to estimate it, and no
    additive-error model with a multiplicative season (numerically unstable; R's ``ets``
    leaves it out for the same reason).
    """
    positive = bool(np.nanmin(history) > 0)
    m = season_length
    seasons = [None]
    if m > 1 and len(history) >= 2 * m:
        seasons += ["add", "mul"] if positive else ["add"]
    variants = []
    for error in ["add", "mul"] if positive else ["add"]:
        for trend, damped in [(None, False), ("add", False), ("add", True)]:
            for season in seasons:
                if error == "add" and season == "mul":
                    continue
                variants.append(
                    {
                        "error": error,
                        "trend": trend,
                        "damped_trend": damped,
                        "seasonal": season,
                        "seasonal_periods": m if season else None,
                    }
                )
    return variants


def ets_aicc(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """statsmodels ETS, the variant of `ets_variants` with the lowest AICc. Returns (H,).

    A variant whose fit fails or gives a non-finite forecast is skipped; if all fail the
    forecast is `naive2`'s.
    """
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = fill_missing(history)
    best, best_aicc = None, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for variant in ets_variants(y, season_length):
            try:
                fitted = ETSModel(y, **variant).fit(disp=False, maxiter=200)
                forecast = np.asarray(fitted.forecast(horizon))
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
            finite = np.isfinite(fitted.aicc) and np.all(np.isfinite(forecast))
            if finite and fitted.aicc < best_aicc:
                best, best_aicc = forecast, fitted.aicc
    return best if best is not None else naive2(y, horizon, season_length)


def auto_arima(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Auto-ARIMA on M3-style seasonally adjusted data, re-seasonalized. Returns (H,).

    pmdarima's ``auto_arima`` (the stepwise search of Hyndman & Khandakar 2008 over
    ARIMA(p, d, q) with a constant or drift, d by KPSS tests, orders by AIC, pmdarima's
    defaults) on the data of `naive2` and `theta`: divided by the classical multiplicative
    seasonal indices where the 90% autocorrelation test calls the series seasonal. The season
    is taken out first, as for Theta, rather than searched as a seasonal ARIMA, for time
    alone: the seasonal search fits state-space models with a 12-step season, about 5 s of
    CPU per M3 monthly series here (two hours for the 1,428), the non-seasonal one 0.5 s.

    A search that fails, or a forecast that is not finite, gives `naive2`'s forecast.
    """
    import pmdarima

    adjusted, future = _deseasonalized(history, season_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = pmdarima.auto_arima(
                adjusted, seasonal=False, suppress_warnings=True, error_action="ignore"
            )
            forecast = np.asarray(model.predict(horizon)) * future(horizon)
        except (ValueError, np.linalg.LinAlgError):
            return naive2(history, horizon, season_length)
    return forecast if np.all(np.isfinite(forecast)) else naive2(history, horizon, season_length)


def seasonal_naive_point(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """The median of `seasonal_naive`: the last season repeated. Returns (H,)."""
    return seasonal_naive(history, horizon, season_length)[0.5]


# The benchmarks of the M3 protocol (`rnnkit.apps.forecast.competition`), in table order.
COMPETITION_BASELINES = {
    "seasonal_naive": seasonal_naive_point,
    "naive2": naive2,
    "ets": ets_aicc,
    "theta": theta,
    "arima": auto_arima,
}


def _from_interval(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Quantiles:
    return {QUANTILES[0]: lower, 0.5: mean, QUANTILES[-1]: upper}


BASELINES = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "ets": ets,
    "arima": arima,
}
