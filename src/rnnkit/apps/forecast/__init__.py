"""Forecasting: a global RNN forecaster with intervals, baselines and rolling-origin backtests.

Example:
    >>> from rnnkit.apps.forecast import Forecaster
    >>> from rnnkit.data.timeseries import load_series
    >>> data = load_series("nyc-weather")  # hourly weather at New York's three airports, 2013
    >>> quick = dict(epochs=1, batches_per_epoch=4, batch_size=32)  # seconds, not minutes
    >>> model = Forecaster(horizon=24, **quick)
    >>> forecast = model.fit(data).predict()
    >>> forecast.shape, list(forecast.columns)  # 24 hours ahead for each airport
    ((72, 5), ['series', 'time', 'forecast', 'lo_80', 'hi_80'])
"""

from rnnkit.apps.forecast.forecaster import Forecaster, ForecasterConfig

__all__ = ["Forecaster", "ForecasterConfig"]
