"""Forecasting: a global RNN forecaster with intervals, baselines and rolling-origin backtests.

Example:
    >>> from rnnkit.apps.forecast import Forecaster
    >>> from rnnkit.data.timeseries import load_series
    >>> model = Forecaster(horizon=24, epochs=5).fit(load_series("nyc-weather"))
    >>> model.predict().head()
"""

from rnnkit.apps.forecast.forecaster import Forecaster, ForecasterConfig

__all__ = ["Forecaster", "ForecasterConfig"]
