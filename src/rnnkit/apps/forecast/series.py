"""Series -> arrays: every series of a `SeriesFrame` as model-ready numbers.

The first room of the forecaster's pipeline (series -> windows -> network -> distribution ->
calibrated intervals -> forecast frame). Each series is read once into flat arrays
concatenated over the series (target, gap-filled target, observed mask, calendar and known
covariates, past covariates) plus offsets, so that `windows` cuts any window by index
arithmetic. Optionally each series is divided by its seasonal indices first
(`seasonal_indices`, the classical decomposition of the Theta method), so that the network
sees the deseasonalised series and the forecast is reseasonalised at the end.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rnnkit.apps.forecast.features import CalendarCache, fill_missing
from rnnkit.data.timeseries import SERIES, SeriesFrame, series_from_dataframe
from rnnkit.errors import UserError

# Two-sided 90% normal quantile of the seasonality test (Assimakopoulos & Nikolopoulos'
# Theta method, as in the M3 and M4 benchmarks): a series is seasonal when its
# autocorrelation at one season lies outside this many standard errors.
SEASONALITY_Z = 1.645


@dataclass
class SeriesArrays:
    """Every series of a `SeriesFrame` as model-ready arrays, concatenated, plus offsets.

    Windows are cut by index arithmetic on these arrays, so a batch costs one gather.
    Values are in the data's units; the network reads them divided by ``seasonal`` (ones
    when not deseasonalising).
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
    seasonal: np.ndarray  # (N,) the seasonal factor each value was divided by
    indices: list[np.ndarray]  # per series (season,) its seasonal factors, by position
    # (N,) and per series (season,): what was then subtracted (additive seasonality of
    # series that go below zero; zeros for the others). See `seasonal_components`.
    shift: np.ndarray
    shifts: list[np.ndarray]

    @functools.cached_property
    def deseasonalised_target(self) -> np.ndarray:
        """(N,) every target value as the network reads it (NaN where missing)."""
        return self.deseasonalised(self.target, np.arange(len(self.target)))

    @functools.cached_property
    def spread(self) -> np.ndarray:
        """(S,) the standard deviation of each series' observed, deseasonalised values: the
        scale of a window too flat to have one of its own (a run of zeros)."""
        values = self.deseasonalised_target
        seen = np.isfinite(values)
        values = np.where(seen, values, 0.0)
        count = np.maximum(np.add.reduceat(seen.astype(float), self.offsets), 1)
        mean = np.add.reduceat(values, self.offsets) / count
        squares = np.where(seen, (values - np.repeat(mean, self.lengths)) ** 2, 0.0)
        return np.sqrt(np.add.reduceat(squares, self.offsets) / count)

    @functools.cached_property
    def mean_step(self) -> np.ndarray:
        """(S,) the mean absolute one-step change of each series' deseasonalised values
        (steps between two observed values): MASE's yardstick, in the data's units."""
        change = np.abs(np.diff(self.deseasonalised_target))
        # the first step of each series would difference across two series
        change[self.offsets[1:] - 1] = np.nan
        change = np.append(change, np.nan)
        seen = np.isfinite(change)
        total = np.add.reduceat(np.where(seen, change, 0.0), self.offsets)
        return total / np.maximum(np.add.reduceat(seen.astype(float), self.offsets), 1)

    @functools.cached_property
    def floored_at_zero(self) -> np.ndarray:
        """(S,) True for a series that reaches zero and never goes below (counts, sales,
        solar power): its forecasts and intervals are cut at zero. A series that only
        stays positive is not: a balance or a temperature may still cross zero."""
        values = np.where(np.isnan(self.target), np.inf, self.target)
        lowest = np.minimum.reduceat(values, self.offsets)
        return lowest == 0

    def deseasonalised(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``values`` (the series' own, at flat positions ``index``) as the network reads
        them: divided by their seasonal factor, less their seasonal shift."""
        return values / self.seasonal[index] - self.shift[index]

    def seasonal_ahead(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(B, H) the seasonal factor of the ``horizon`` steps from each origin (which may lie
        beyond the data: the factors repeat every season)."""
        return _ahead(self.indices, series, origins, horizon)

    def shift_ahead(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(B, H) the seasonal shift of the ``horizon`` steps from each origin."""
        return _ahead(self.shifts, series, origins, horizon)

    def reseasonalised(self, values: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """(B, H) deseasonalised forecasts at ``(series, origin)`` pairs back in data units."""
        series, origins, horizon = pairs[:, 0], pairs[:, 1], values.shape[1]
        shift = self.shift_ahead(series, origins, horizon)
        return (values + shift) * self.seasonal_ahead(series, origins, horizon)


def _ahead(table: list[np.ndarray], series: np.ndarray, origins: np.ndarray, horizon: int):
    """(B, H) ``table[series][step % season]`` for the ``horizon`` steps from each origin."""
    stacked = np.stack(table)  # (S, season): every series has the same season
    steps = origins[:, None] + np.arange(horizon)[None, :]
    return stacked[series[:, None], steps % stacked.shape[1]]


def as_series_frame(data: SeriesFrame | pd.DataFrame, **columns) -> SeriesFrame:
    """A `SeriesFrame` as it is, or a checked one built from a DataFrame."""
    if isinstance(data, SeriesFrame):
        return data
    if isinstance(data, (pd.DataFrame, pd.Series)):  # a Series: its index is the time
        return series_from_dataframe(data, **columns)
    raise UserError(f"expected a DataFrame, Series or SeriesFrame, got {type(data).__name__}")


def covariate_stats(data: SeriesFrame) -> dict[str, tuple[list[float], list[float]]]:
    """Mean and std of each covariate per series (and over all, ``"*"``, for new series)."""
    columns = data.past_covariates + data.future_covariates

    def stats(values: np.ndarray) -> tuple[list[float], list[float]]:
        std = np.nan_to_num(values.std(axis=0), nan=1.0) if len(columns) else np.zeros(0)
        mean = np.nan_to_num(values.mean(axis=0)) if len(columns) else np.zeros(0)
        return mean.tolist(), np.where(std > 1e-8, std, 1.0).tolist()

    ids, order, offsets, lengths = _grouped_rows(data.frame)
    values = data.frame[columns].to_numpy(float)
    # column-major like pandas' own arrays: the sums then add in the same order as ever
    grouped = np.asfortranarray(values[order])
    result = {
        sid: stats(grouped[o : o + n]) for sid, o, n in zip(ids, offsets, lengths, strict=True)
    }
    result["*"] = stats(values)
    return result


def _grouped_rows(frame: pd.DataFrame) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, order, offsets, lengths): ``frame``'s rows in ``order`` are grouped by series
    (in order of first appearance, row order kept within each), series ``i`` at
    ``offsets[i]:offsets[i] + lengths[i]``. Whole columns are then read at once: a pandas
    group per series costs more than everything else a series needs."""
    codes, uniques = pd.factorize(frame[SERIES], sort=False)
    order = np.argsort(codes, kind="stable")
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return list(uniques), order, offsets, lengths


def seasonal_components(
    values: np.ndarray, season: int, recent_seasons: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(factors, shifts), each (season,): the series is read as ``value / factor - shift``.

    A series of positive values gets multiplicative indices (`seasonal_indices`; the
    Theta method's decomposition) and shifts of 0. A series that reaches zero or goes below
    (solar power at night, counts, a temperature in degrees Celsius, a net flow) has no
    meaningful ratios, so it gets additive indices instead (``seasonal_indices(...,
    additive=True)``) and factors of 1: without them its seasonality reached only the
    network, not the statistical forecasts it is combined with (a solar series' daily
    cycle came out a third of its height).

    Example:
        >>> factors, shifts = seasonal_components(np.tile([5.0, -5.0], 12), 2)
        >>> factors, shifts.round(1)
        (array([1., 1.]), array([ 5., -5.]))
    """
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    neutral_factors, neutral_shifts = np.ones(max(season, 1)), np.zeros(max(season, 1))
    if np.any(finite <= 0):
        return neutral_factors, seasonal_indices(values, season, recent_seasons, additive=True)
    return seasonal_indices(values, season, recent_seasons), neutral_shifts


def seasonal_indices(
    values: np.ndarray, season: int, recent_seasons: int | None = None, additive: bool = False
) -> np.ndarray:
    """(season,) multiplicative seasonal indices of a series by position (step ``t`` has
    index ``[t % season]``), averaging to 1; all ones when the series is not seasonal.

    The classical decomposition of the Theta method: a series with at least three seasons,
    only positive values and an autocorrelation at lag ``season`` beyond the 90% test is
    divided by the mean ratio of each position to a centred moving average. Anything else
    (short, non-positive, not seasonal) is left as it is. ``additive``: the mean difference
    of each position from the moving average instead, averaging to 0 (all zeros when not
    seasonal), for any sign of values.

    Args:
        values: the series (NaN where missing).
        season: steps per season.
        recent_seasons: estimate the ratios on the last this many whole seasons only (and one
            season more for the moving average), when the whole history is seasonal and
            longer: seasons drift over the years, and the recent ones say more about the
            next. None: the whole history. Where the recent part alone fails the test, the
            whole history's indices are kept.

    Example:
        >>> y = 10 + np.tile([1.0, -1.0], 12)
        >>> seasonal_indices(y, 2).round(2)
        array([1.1, 0.9])
    """
    neutral = 0.0 if additive else 1.0
    whole = _classical_indices(values, season, additive)
    length = len(values)
    if recent_seasons is None or season <= 1 or length <= (recent_seasons + 1) * season:
        return whole
    if np.all(whole == neutral):
        return whole
    cut = length - (recent_seasons + 1) * season
    cut -= cut % season  # start on a season's first position, so positions keep their phase
    recent = _classical_indices(values[cut:], season, additive)
    return whole if np.all(recent == neutral) else recent


def _classical_indices(values: np.ndarray, season: int, additive: bool = False) -> np.ndarray:
    """`seasonal_indices` of the whole of ``values``."""
    ones = np.full(max(season, 1), 0.0 if additive else 1.0)  # "not seasonal"
    y = np.asarray(values, float)
    seen = y[np.isfinite(y)]
    if season <= 1 or len(seen) < 3 * season or (not additive and np.any(seen <= 0)):
        return ones
    y = fill_missing(y)
    centred = y - y.mean()
    denominator = float(centred @ centred)
    if denominator <= 0:
        return ones
    acf = np.array([centred[k:] @ centred[:-k] for k in range(1, season + 1)]) / denominator
    limit = SEASONALITY_Z * np.sqrt((1 + 2 * np.sum(acf[:-1] ** 2)) / len(y))
    if abs(acf[-1]) <= limit:
        return ones
    weights = np.r_[0.5, np.ones(season - 1), 0.5] if season % 2 == 0 else np.ones(season)
    trend = np.convolve(y, weights / weights.sum(), mode="valid")
    start = (len(weights) - 1) // 2
    position = np.arange(start, start + len(trend)) % season
    if additive:
        difference = y[start : start + len(trend)] - trend
        indices = np.array([difference[position == k].mean() for k in range(season)])
        return indices - indices.mean()
    ratio = y[start : start + len(trend)] / trend
    indices = np.array([ratio[position == k].mean() for k in range(season)])
    return indices / indices.mean()


def series_arrays(
    data: SeriesFrame,
    meta: dict,
    stats: dict[str, tuple[list[float], list[float]]],
    calendar: bool = True,
    deseasonalize: bool = False,
    recent_seasons: int | None = None,
) -> SeriesArrays:
    """Read every series of ``data`` into a `SeriesArrays`.

    Args:
        data: the series.
        meta: the model's target and covariate names and ``season_length``.
        stats: `covariate_stats` of the training data (covariates are standardised by them).
        calendar: calendar features (zeros when False: a time axis that is only an index).
        deseasonalize: divide each series by its `seasonal_indices` (computed on the
            history given here: the training data in `fit`, the history in `predict`).
        recent_seasons: see `seasonal_indices`.
    """
    frame = data.frame
    ids, order, offsets, lengths = _grouped_rows(frame)
    stamps = pd.DatetimeIndex(frame["time"]).take(order)
    times = [stamps[o : o + n] for o, n in zip(offsets, lengths, strict=True)]
    target = frame[meta["target"]].to_numpy(float)[order]

    season = max(int(meta["season_length"]), 1)
    components = [
        seasonal_components(target[o : o + n], season, recent_seasons)
        if deseasonalize
        else (np.ones(season), np.zeros(season))
        for o, n in zip(offsets, lengths, strict=True)
    ]
    indices, shifts = [c[0] for c in components], [c[1] for c in components]
    series = np.repeat(np.arange(len(ids)), lengths)
    position = np.arange(len(target)) - offsets[series]
    seasonal = np.stack(indices)[series, position % season] if len(ids) else np.ones(0)
    shift = np.stack(shifts)[series, position % season] if len(ids) else np.zeros(0)

    calendar_of = CalendarCache()  # series on the same dates share their features
    features = np.concatenate([calendar_of(t) for t in times])
    features = features if calendar else np.zeros_like(features)
    covs = _standardised_covariates(frame, order, ids, lengths, meta, stats)
    n_past = len(meta["past_covariates"])
    filled = [fill_missing(target[o : o + n]) for o, n in zip(offsets, lengths, strict=True)]
    return SeriesArrays(
        ids=ids,
        times=times,
        offsets=offsets,
        lengths=lengths,
        target=target,
        filled=np.concatenate(filled),
        observed=(~np.isnan(target)).astype(np.float32),
        known=np.concatenate([features, covs[:, n_past:]], axis=1).astype(np.float32),
        past=covs[:, :n_past].astype(np.float32),
        seasonal=seasonal,
        indices=indices,
        shift=shift,
        shifts=shifts,
    )


def _standardised_covariates(
    frame: pd.DataFrame,
    order: np.ndarray,
    ids: list,
    lengths: np.ndarray,
    meta: dict,
    stats: dict[str, tuple[list[float], list[float]]],
) -> np.ndarray:
    """(N, covariates) past then future covariates, rows in ``order``, each series
    standardised by its `covariate_stats` (unknown series by those of all, ``"*"``)."""
    columns = meta["past_covariates"] + meta["future_covariates"]
    covs = frame[columns].to_numpy(float)[order]
    if not columns:
        return covs
    mean = np.array([stats.get(sid, stats["*"])[0] for sid in ids], dtype=float)
    std = np.array([stats.get(sid, stats["*"])[1] for sid in ids], dtype=float)
    return (covs - np.repeat(mean, lengths, axis=0)) / np.repeat(std, lengths, axis=0)


def refit_seasonal(
    arrays: SeriesArrays, ends: np.ndarray, season: int, recent_seasons: int | None = None
) -> SeriesArrays:
    """``arrays`` with each series' seasonal components estimated on its first ``ends[s]``
    steps only (`fit` keeps its validation windows out of the indices it scores them with).
    """
    indices, seasonal, shifts, shift = [], [], [], []
    for s, (offset, length) in enumerate(zip(arrays.offsets, arrays.lengths, strict=True)):
        target = arrays.target[offset : offset + length]
        factors, moves = seasonal_components(target[: int(ends[s])], season, recent_seasons)
        position = np.arange(length) % len(factors)
        indices.append(factors)
        shifts.append(moves)
        seasonal.append(factors[position])
        shift.append(moves[position])
    return replace(
        arrays,
        indices=indices,
        seasonal=np.concatenate(seasonal),
        shifts=shifts,
        shift=np.concatenate(shift),
    )
