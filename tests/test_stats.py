"""The paired bootstrap: intervals that cover the truth and verdicts that follow them."""

import numpy as np
import pytest

from rnnkit.stats import bootstrap, paired_bootstrap


def test_a_real_difference_is_found_and_a_null_one_is_not():
    rng = np.random.default_rng(0)
    b = rng.binomial(1, 0.70, size=2000)
    better = np.where(rng.random(2000) < 0.2, 1, b)  # fixes ~20% of b's items: +6 points
    diff = paired_bootstrap(better, b)
    assert diff.low > 0.03 and diff.verdict(higher_is_better=True) == "beats"
    assert paired_bootstrap(b, better).verdict(higher_is_better=True) == "loses"
    same = paired_bootstrap(b, rng.permutation(b))  # same accuracy, other items
    assert same.low < 0 < same.high and same.verdict(higher_is_better=True) == "ties"


def test_interval_covers_the_true_mean_about_as_often_as_it_says():
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(200):
        interval = bootstrap(rng.normal(3.0, 1.0, size=60), resamples=400, seed=trial)
        hits += interval.low <= 3.0 <= interval.high
    assert 0.88 <= hits / 200 <= 0.99  # nominal 0.95


def test_corpus_statistic_is_a_ratio_of_sums_and_the_seed_fixes_the_interval():
    errors_a, errors_b, words = (
        np.array([1, 0, 2, 0]),
        np.array([2, 1, 2, 1]),
        np.array([4, 2, 5, 3]),
    )

    def wer(rows):
        return rows[:, 0].sum() / rows[:, 1].sum()

    diff = paired_bootstrap(np.c_[errors_a, words], np.c_[errors_b, words], statistic=wer)
    assert diff.estimate == pytest.approx(3 / 14 - 6 / 14)
    again = paired_bootstrap(np.c_[errors_a, words], np.c_[errors_b, words], statistic=wer)
    assert diff == again


def test_unpaired_inputs_are_refused():
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
