"""Anomaly detection: thresholds, metrics, injection, baselines, the detector, the CLI.

The series are generated here (a noisy sine) except in the UCR tests; the fully trained UCR
check is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.apps.anomaly import AnomalyDetector
from rnnkit.apps.anomaly.autoencoder import AutoencoderScorer, LSTMAutoencoder
from rnnkit.apps.anomaly.baselines import isolation_forest, rolling_zscore
from rnnkit.apps.anomaly.evaluate import (
    METHODS,
    Scored,
    choose_threshold_settings,
    event_blocks,
    eventwise,
    pointwise,
    pooled_f1,
    precision_recall_f1,
    score_test_stretches,
)
from rnnkit.apps.anomaly.inject import KINDS, inject_anomalies
from rnnkit.apps.anomaly.thresholds import dynamic_threshold, flag, prune, runs, smooth
from rnnkit.cli import main
from rnnkit.errors import UserError


def noisy_sine(length: int = 1200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(length) / 40) + 0.1 * rng.normal(size=length)


@pytest.fixture(scope="module")
def detector():
    return AnomalyDetector(context_length=48, epochs=4, batches_per_epoch=20, seed=0, lr=1e-2).fit(
        noisy_sine()
    )


def test_runs_finds_every_stretch():
    assert runs(np.array([0, 1, 1, 0, 0, 1, 0, 1], bool)) == [(1, 3), (5, 6), (7, 8)]
    assert runs(np.zeros(4, bool)) == []


def test_dynamic_threshold_separates_a_clear_outlier():
    scores = np.abs(np.random.default_rng(0).normal(size=2000))
    scores[1000:1005] = 9.0
    threshold = dynamic_threshold(smooth(scores, span=2))
    flagged = flag(scores, span=2)
    assert np.isfinite(threshold)
    assert flagged.flags[1000:1005].any()
    assert flagged.flags.sum() <= 12  # the outlier run, not the noise
    assert all(1000 <= start < 1010 for start, _ in flagged.windows)


def test_pruning_keeps_the_runs_above_the_last_clear_drop():
    scores = np.zeros(60)
    scores[[10, 20, 30, 40]] = [10.0, 9.5, 5.0, 4.8]  # peaks of four flagged runs
    scores[50] = 1.0  # the highest unflagged score
    windows = [(10, 11), (20, 21), (30, 31), (40, 41)]
    # 10 -> 9.5 (5%), 9.5 -> 5 (47%: clear), 5 -> 4.8 (4%), 4.8 -> 1 (79%: clear): all kept
    assert prune(scores, windows, min_decrease=0.13) == windows
    scores[50] = 4.5  # 4.8 -> 4.5 is no clear drop: the two runs below 9.5 look like noise
    assert prune(scores, windows, min_decrease=0.13) == [(10, 11), (20, 21)]
    assert prune(scores, windows, min_decrease=0.5) == []
    assert prune(scores, [], min_decrease=0.13) == []


def test_flag_with_pruning_drops_flags_of_pruned_windows():
    scores = np.abs(np.random.default_rng(0).normal(size=2000))
    scores[1000:1005] = 9.0
    flagged = flag(scores, span=2, min_decrease=0.99)  # nothing drops by 99%
    assert flagged.windows == [] and not flagged.flags.any()
    kept = flag(scores, span=2, min_decrease=0.13)
    assert kept.windows == flag(scores, span=2).windows  # the outlier stands out


def test_dynamic_threshold_of_a_constant_is_infinite():
    assert dynamic_threshold(np.ones(100)) == float("inf")


def test_point_and_event_metrics_match_hand_counts():
    labels = np.array([0, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    flags = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1])
    assert pointwise(labels, flags) == pytest.approx(
        precision_recall_f1(true_positive=2, predicted=4, actual=4)
    )
    assert pointwise(labels, flags)["f1"] == pytest.approx(0.5)
    events, windows = [(1, 4), (8, 9)], [(2, 5), (9, 10)]
    assert eventwise(events, windows) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert eventwise(events, windows, tolerance=1)["recall"] == pytest.approx(1.0)


def test_event_blocks_cut_between_events_and_pool_to_the_eventwise_f1():
    events = [(10, 20), (50, 60), (90, 91)]
    windows = [(12, 15), (30, 32), (88, 95)]  # hits event 1, a false alarm, hits event 3
    blocks = event_blocks(events, windows, length=120, tolerance=0)
    # blocks [0, 35) [35, 75) [75, 120): (found, events, windows, right windows)
    np.testing.assert_array_equal(blocks, [[1, 1, 2, 1], [0, 1, 0, 0], [1, 1, 1, 1]])
    assert pooled_f1(blocks) == pytest.approx(eventwise(events, windows)["f1"])


def test_validation_chooses_per_method_and_the_test_is_scored_with_that_choice():
    clean = noisy_sine(1500, seed=4)
    stretches = []
    for seed in (11, 12):  # validation and test injections
        injected = inject_anomalies(clean, per_kind=3, seed=seed)
        one = Scored("sine", injected.values, injected.labels)
        one.events = [(start, end) for start, end, _ in injected.events]
        # a score that sees the anomalies, and one that is noise
        one.scores = {
            method: injected.labels * 5.0 + np.random.default_rng(seed).random(1500)
            if method == "rnnkit"
            else np.random.default_rng(seed + 1).random(1500)
            for method in METHODS
        }
        stretches.append(one)
    chosen, rows = choose_threshold_settings(stretches[:1], tolerance=12)
    assert {r["method"] for r in rows if r["chosen"]} == set(METHODS)
    best = max(r["validation_event_F1"] for r in rows if r["method"] == "rnnkit")
    assert next(r for r in rows if r["method"] == "rnnkit" and r["chosen"])[
        "validation_event_F1"
    ] == pytest.approx(best)
    per_series, pooled = score_test_stretches(stretches[1:], chosen, tolerance=12, seed=0)
    by_method = {row["method"]: row for row in pooled}
    assert by_method["rnnkit"]["event_F1"] > 0.8  # the informative score finds the events
    assert by_method["rolling_zscore"]["rnnkit_verdict"] == "beats"
    assert len(per_series) == len(METHODS)


def test_cli_evaluate_honours_epochs_and_rejects_resume(tmp_path, capsys, monkeypatch):
    import json

    import rnnkit.apps.anomaly.evaluate as evaluate

    seen = {}
    real = evaluate.AnomalyDetector

    def recording(**options):
        seen.update(options)
        return real(**options)

    monkeypatch.setattr(evaluate, "AnomalyDetector", recording)
    out = tmp_path / "results"
    args = ["anomaly", "evaluate", "--quick", "--epochs", "1", "--device", "cpu", "--out"]
    assert main([*args, str(out)]) == 0
    assert seen["epochs"] == 1 and seen["device"] == "cpu"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"ucr", "threshold_choice", "per_series"} <= set(metrics)
    assert main(["anomaly", "evaluate", "--quick", "--resume", "--out", str(tmp_path / "x")]) == 2
    assert "--resume" in capsys.readouterr().err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_injection_changes_only_the_labelled_points():
    clean = noisy_sine(2000)
    injected = inject_anomalies(clean, per_kind=2, seed=3)
    assert sorted(kind for *_, kind in injected.events) == sorted(KINDS * 2)
    changed = ~np.isclose(injected.values, clean)
    assert not changed[injected.labels == 0].any()
    for start, end, _ in injected.events:
        assert changed[start:end].any()
    again = inject_anomalies(clean, per_kind=2, seed=3)
    np.testing.assert_array_equal(again.values, injected.values)


def test_rolling_zscore_by_hand():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    scores = rolling_zscore(values, window=3)
    assert np.isnan(scores[:3]).all()
    assert scores[3] == pytest.approx((10 - 2) / 1.0)


def test_isolation_forest_scores_a_spike_highest():
    clean = noisy_sine(800)
    test = noisy_sine(400, seed=1)
    test[200] += 5
    scores = isolation_forest(clean, test, window=8)
    assert 200 <= int(np.nanargmax(scores)) < 208


def test_detector_finds_a_spike_and_a_level_shift(detector):
    test = noisy_sine(600, seed=5)
    test[300] += 2.0
    test[450:480] += 1.5
    detection = detector.detect(test)
    scores = detection.frame["score"].to_numpy()
    assert abs(int(np.nanargmax(scores)) - 300) <= 2
    assert scores[450:452].max() > np.nanpercentile(scores, 99)  # the shift's first points
    # Something is flagged, and only near the anomalies: the clean stretches stay quiet.
    assert detection.windows
    assert all(start >= 295 and end <= 530 for start, end in detection.windows)
    assert not detection.frame["anomaly"].iloc[100:290].any()


def test_detector_score_beats_rolling_zscore_on_a_level_shift(detector):
    # A level shift of the size of the cycle: the z-score against the last 48 points barely
    # moves (the cycle dominates its spread); the forecaster's surprise jumps.
    test = noisy_sine(600, seed=6)
    test[400:430] += 0.8
    ours = detector.score(test)
    z = rolling_zscore(test, window=48)

    def contrast(scores):
        return np.nanmean(scores[400:405]) / np.nanmedian(scores[100:380])

    assert contrast(ours) > 2 * contrast(z)


def test_detector_save_load_round_trip(detector, tmp_path):
    detector.save(tmp_path / "model")
    again = AnomalyDetector.load(tmp_path / "model")
    test = noisy_sine(300, seed=2)
    np.testing.assert_allclose(again.score(test), detector.score(test), equal_nan=True)


def test_series_shorter_than_the_context_is_a_user_error(detector):
    with pytest.raises(UserError, match="needs more than 48"):
        detector.score(noisy_sine(40))


def test_cli_train_detect_and_wrong_model(tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["anomaly", "train", "--data", "ucr", "--quick", "--out", str(model)]) == 0
    out = tmp_path / "flagged"
    assert (
        main(["anomaly", "detect", "--model", str(model), "--data", "ucr", "--out", str(out)]) == 0
    )
    assert (out / "anomalies.csv").exists() and (out / "detection.png").exists()
    assert main(["anomaly", "detect", "--model", str(tmp_path / "nope"), "--data", "ucr"]) == 2
    assert "no such model folder" in capsys.readouterr().err


@pytest.mark.slow
def test_ucr_top_score_lies_within_100_points_of_the_anomaly():
    from rnnkit.apps.anomaly.evaluate import ucr_test

    rows, _ = ucr_test(seed=0, options={})
    assert next(r for r in rows if r["method"] == "rnnkit")["within_100"]
    assert next(r for r in rows if r["method"] == "lstm_autoencoder")["within_100"]


# --- the LSTM autoencoder's reconstruction error ---------------------------------------------


@pytest.fixture(scope="module")
def autoencoder():
    return AutoencoderScorer(window=40, hidden_size=16, epochs=6, batches_per_epoch=20, seed=0).fit(
        noisy_sine()
    )


def test_autoencoder_reconstruction_loss_falls(autoencoder):
    losses = [row["loss"] for row in autoencoder.history]
    assert losses[-1] < 0.5 * losses[0]


def test_autoencoder_rebuilds_from_its_state_alone():
    net = LSTMAutoencoder(hidden_size=4)
    windows = torch.randn(3, 10)
    changed = windows.clone()
    changed[:, 0] += 5.0  # the first point is read first, so only the state carries it
    assert net(windows).shape == (3, 10)
    assert not torch.allclose(net(windows), net(changed))


def test_autoencoder_scores_a_flattened_cycle_and_a_spike_highest(autoencoder):
    test = noisy_sine(600, seed=7)
    test[200:240] = 0.0  # one whole cycle lost
    test[450] += 3.0
    scores = autoencoder.score(test)
    assert scores.shape == (600,)
    clean = np.r_[scores[20:160], scores[280:420]]
    assert np.median(scores[200:240]) > 3 * np.median(clean)
    assert scores[450] > np.percentile(clean, 99.5)


def test_autoencoder_is_reproducible_and_refuses_short_series(autoencoder):
    again = AutoencoderScorer(window=40, hidden_size=16, epochs=6, batches_per_epoch=20, seed=0)
    test = noisy_sine(300, seed=8)
    np.testing.assert_array_equal(again.fit(noisy_sine()).score(test), autoencoder.score(test))
    with pytest.raises(UserError, match="at least its window"):
        autoencoder.score(noisy_sine(30))
