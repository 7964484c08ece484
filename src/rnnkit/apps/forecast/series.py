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
    seasonal: np.ndarray  # (N,) the seasonal index each value was divided by
    indices: list[np.ndarray]  # per series (season,) its seasonal indices, by position

    def seasonal_ahead(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(B, H) the seasonal index of the ``horizon`` steps from each origin (which may lie
        beyond the data: the indices repeat every season)."""
        table = np.stack(self.indices)  # (S, season): every series has the same season
        steps = origins[:, None] + np.arange(horizon)[None, :]
        return table[series[:, None], steps % table.shape[1]]


def as_series_frame(data: SeriesFrame | pd.DataFrame, **columns) -> SeriesFrame:
    """A `SeriesFrame` as it is, or a checked one built from a DataFrame."""
    if isinstance(data, SeriesFrame):
        return data
    if isinstance(data, pd.DataFrame):
        return series_from_dataframe(data, **columns)
    raise UserError(f"expected a DataFrame or SeriesFrame, got {type(data).__name__}")


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


def seasonal_indices(
    values: np.ndarray, season: int, recent_seasons: int | None = None
) -> np.ndarray:
    """(season,) multiplicative seasonal indices of a series by position (step ``t`` has
    index ``[t % season]``), averaging to 1; all ones when the series is not seasonal.

    The classical decomposition of the Theta method: a series with at least three seasons,
    only positive values and an autocorrelation at lag ``season`` beyond the 90% test is
    divided by the mean ratio of each position to a centred moving average. Anything else
    (short, non-positive, not seasonal) is left as it is.

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
    whole = _classical_indices(values, season)
    length = len(values)
    if recent_seasons is None or season <= 1 or length <= (recent_seasons + 1) * season:
        return whole
    if np.all(whole == 1.0):
        return whole
    cut = length - (recent_seasons + 1) * season
    cut -= cut % season  # start on a season's first position, so positions keep their phase
    recent = _classical_indices(values[cut:], season)
    return whole if np.all(recent == 1.0) else recent


def _classical_indices(values: np.ndarray, season: int) -> np.ndarray:
    """`seasonal_indices` of the whole of ``values``."""
    ones = np.ones(max(season, 1))
    y = np.asarray(values, float)
    seen = y[np.isfinite(y)]
    if season <= 1 or len(seen) < 3 * season or np.any(seen <= 0):
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
    ratio = y[start : start + len(trend)] / trend
    position = np.arange(start, start + len(trend)) % season
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
    indices = [
        seasonal_indices(target[o : o + n], season, recent_seasons)
        if deseasonalize
        else np.ones(season)
        for o, n in zip(offsets, lengths, strict=True)
    ]
    series = np.repeat(np.arange(len(ids)), lengths)
    position = np.arange(len(target)) - offsets[series]
    seasonal = np.stack(indices)[series, position % season] if len(ids) else np.ones(0)

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
    """``arrays`` with each series' seasonal indices estimated on its first ``ends[s]``
    steps only (`fit` keeps its validation windows out of the indices it scores them with).
    """
    indices, seasonal = [], []
    for s, (offset, length) in enumerate(zip(arrays.offsets, arrays.lengths, strict=True)):
        target = arrays.target[offset : offset + length]
        found = seasonal_indices(target[: int(ends[s])], season, recent_seasons)
        indices.append(found)
        seasonal.append(found[np.arange(length) % len(found)])
    return replace(arrays, indices=indices, seasonal=np.concatenate(seasonal))
