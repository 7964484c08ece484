"""The movie-snippet polarity benchmark: one fixed split, rnnkit against TF-IDF + LR and VADER.

Labels: a snippet is ``positive`` when its mean human rating is above 0 and ``negative`` when
below; the 37 snippets rated exactly 0 are dropped (10,568 remain). The split is fixed (its own
seed, independent of the training seed): 80% train, 10% validation, 10% held-out test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnkit.data.text import load_vader_analyzer, load_vader_snippets
from rnnkit.errors import UserError

SPLIT_SEED = 20140601  # VADER's paper date: the split never changes with --seed
LABELS = ("negative", "positive")


@dataclass
class PolaritySplit:
    """Texts and labels of the three parts of a split."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def polarity_frame(snippets: pd.DataFrame) -> pd.DataFrame:
    """Add a ``label`` column (negative/positive) and drop neutral (rating exactly 0) snippets."""
    rated = snippets[snippets["rating"] != 0].reset_index(drop=True)
    return rated.assign(label=np.where(rated["rating"] > 0, "positive", "negative"))


def movie_polarity_split(snippets: pd.DataFrame | None = None) -> PolaritySplit:
    """The fixed 80/10/10 split of the movie snippets (see module docstring)."""
    frame = polarity_frame(load_vader_snippets("movie") if snippets is None else snippets)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    n_test = n_val = len(frame) // 10
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return PolaritySplit(
        frame.iloc[train].reset_index(drop=True),
        frame.iloc[val].reset_index(drop=True),
        frame.iloc[test].reset_index(drop=True),
    )


def tfidf_logistic_regression(train_texts, train_labels):
    """The classic baseline: TF-IDF of word 1-2-grams, logistic regression (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    return pipeline.fit(list(train_texts), list(train_labels))


def vader_labels(texts) -> list[str]:
    """VADER's polarity: positive when its compound score is >= 0 (no neutral class here)."""
    analyzer = load_vader_analyzer()
    return [
        "positive" if analyzer.polarity_scores(t)["compound"] >= 0 else "negative" for t in texts
    ]


def accuracy_and_macro_f1(truth, predicted) -> dict[str, float]:
    """Accuracy and macro-F1 (torchmetrics-compatible definitions, via scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(list(truth), list(predicted))),
        "macro_f1": float(f1_score(list(truth), list(predicted), average="macro")),
    }


ENSEMBLE = "rnnkit BiLSTM"
BASELINES = ("TF-IDF + LR", "VADER")


def benchmark_predictions(
    classifier, split: PolaritySplit, shift_domains: tuple[str, ...] = ("tweets", "amazon")
) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """Per test set (held-out movie snippets, then each domain-shift set), the true labels and
    each system's predicted labels: rnnkit's ensemble, each of its networks alone
    (``network N (seed S)``), TF-IDF + LR (trained on the movie training split) and VADER."""
    baseline = tfidf_logistic_regression(split.train["text"], split.train["label"])
    test_sets = {"movie (held-out)": split.test}
    for domain in shift_domains:
        test_sets[domain] = polarity_frame(load_vader_snippets(domain))
    results = {}
    for name, frame in test_sets.items():
        texts, truth = list(frame["text"]), list(frame["label"])
        members = classifier.member_scores(texts)  # [members, N, classes]
        classes = np.array(classifier.classes)
        predictions = {ENSEMBLE: list(classes[members.mean(0).argmax(-1)])}
        if len(members) > 1:
            for index, scores in enumerate(members):
                seed = classifier.config.seed + index
                predictions[f"network {index + 1} (seed {seed})"] = list(classes[scores.argmax(-1)])
        predictions[BASELINES[0]] = list(baseline.predict(texts))
        predictions[BASELINES[1]] = vader_labels(texts)
        results[name] = (truth, predictions)
    return results


def compare_on_benchmark(
    classifier, split: PolaritySplit, shift_domains: tuple[str, ...] = ("tweets", "amazon")
) -> list[dict]:
    """Rows of accuracy and macro-F1: rnnkit, TF-IDF + LR and VADER, on the held-out movie
    snippets and (domain shift, models trained on movies only) on other snippet domains."""
    return benchmark_rows(benchmark_predictions(classifier, split, shift_domains))


def benchmark_rows(predictions: dict) -> list[dict]:
    """Accuracy and macro-F1 of every system on every test set (`benchmark_predictions`)."""
    rows = []
    for name, (truth, systems) in predictions.items():
        for model, predicted in systems.items():
            rows.append(
                {
                    "data": name,
                    "n": len(truth),
                    "model": model,
                    **accuracy_and_macro_f1(truth, predicted),
                }
            )
    return rows


def accuracy_intervals(predictions: dict) -> list[dict]:
    """rnnkit (the ensemble and each network) minus each baseline, in accuracy, with a 95 %
    paired-bootstrap interval over the test snippets (`rnnkit.stats.paired_bootstrap`, 2,000
    resamples, seed 0). The verdict says "beats" or "loses" only where the interval excludes
    zero, "ties" otherwise."""
    from rnnkit.stats import paired_bootstrap

    rows = []
    for name, (truth, systems) in predictions.items():
        truth = np.asarray(truth)
        correct = {model: np.asarray(p) == truth for model, p in systems.items()}
        for model in (m for m in systems if m not in BASELINES):
            for baseline in BASELINES:
                difference = paired_bootstrap(correct[model], correct[baseline])
                rows.append(
                    {
                        "data": name,
                        "rnnkit": model,
                        "minus": baseline,
                        "accuracy difference": difference.estimate,
                        "low": difference.low,
                        "high": difference.high,
                        "verdict": difference.verdict(higher_is_better=True),
                    }
                )
    return rows


def seed_spread(rows: list[dict], data: str = "movie (held-out)") -> dict | None:
    """The accuracy of the ensemble's networks alone on ``data``: mean, standard deviation
    (n - 1), lowest and highest; None for a single network."""
    single = [r["accuracy"] for r in rows if r["data"] == data and r["model"].startswith("network")]
    if len(single) < 2:
        return None
    return {
        "data": data,
        "networks": len(single),
        "mean accuracy": float(np.mean(single)),
        "std": float(np.std(single, ddof=1)),
        "min": float(np.min(single)),
        "max": float(np.max(single)),
    }


def verdict_sentences(intervals: list[dict]) -> list[str]:
    """One line per comparison of the ensemble: "beats", "ties" or "loses", with its interval."""
    return [
        f"{r['data']}: rnnkit (ensemble) {r['verdict']} {r['minus']}: accuracy "
        f"{r['accuracy difference']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
        for r in intervals
        if r["rnnkit"] == ENSEMBLE
    ]


def training_data(
    path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    task: str = "classify",
    quick: bool = False,
) -> PolaritySplit:
    """The movie split (default) or the user's file split 80/10/10 with the fixed split seed.

    The returned frames have ``text`` and ``label`` columns (and ``rating`` for regression).
    ``quick`` keeps 1,000 training and 300 validation texts.
    """
    from rnnkit.data.text import read_labelled_texts

    if path is None:
        split = movie_polarity_split()
    else:
        frame = read_labelled_texts(path, text_column, label_column)
        if task == "regress":
            numbers = pd.to_numeric(frame["label"], errors="coerce")
            if numbers.isna().any():
                line = int(numbers.isna().to_numpy().argmax()) + 2
                raise UserError(
                    f"{path}, line {line}, column {label_column!r}: expected a "
                    f"number to regress, got {frame['label'].iloc[line - 2]!r}"
                )
            frame = frame.assign(rating=numbers)
        else:
            frame = frame.assign(label=frame["label"].astype(str))
            _warn_about_single_examples(frame["label"], path)
        strata = frame["label"] if task == "classify" else None
        train, val, test = user_split(len(frame), strata)
        split = PolaritySplit(*(frame.iloc[p].reset_index(drop=True) for p in (train, val, test)))
        if split.train.empty or split.val.empty:
            raise UserError(f"{path}: too few rows ({len(frame)}); expected at least 10")
    if quick:
        split = PolaritySplit(split.train.head(1000), split.val.head(300), split.test.head(300))
    return split


def user_split(
    n: int, strata: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the 80/10/10 train / validation / test split of a user's file.

    Rows are shuffled with the fixed split seed. With ``strata`` (the class labels) each
    class is split 80/10/10 on its own, rounding the held-out parts down, so every class
    that has a validation example also has training examples, and a rare class (fewer
    than 10 examples) stays in training. If that leaves a part empty, it gets one example
    of the largest class (when that class keeps at least one in training).
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    if strata is None:
        n_held = max(n // 10, 1)
        test, val, train = np.split(order, [n_held, 2 * n_held])
        return train, val, test
    labels = np.asarray(strata)[order]
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    largest = None
    for label in sorted(set(labels)):
        members = list(order[labels == label])
        n_held = len(members) // 10
        parts["test"] += members[:n_held]
        parts["val"] += members[n_held : 2 * n_held]
        parts["train"] += members[2 * n_held :]
        if largest is None or len(members) > len(largest):
            largest = members[2 * n_held :]  # its training examples, in shuffled order
    for name in ("val", "test"):
        if not parts[name] and largest is not None and len(largest) > 1:
            moved = largest.pop(0)
            parts["train"].remove(moved)
            parts[name].append(moved)
    # Back to the shuffled order: classes stay mixed within each part.
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    return tuple(
        np.array(sorted(parts[name], key=lambda i: rank[i]), dtype=int)
        for name in ("train", "val", "test")
    )


def _warn_about_single_examples(labels: pd.Series, path: str) -> None:
    """A class with one example is learned from that example alone and never validated."""
    counts = labels.value_counts()
    single = sorted(counts[counts == 1].index)
    if single:
        shown = ", ".join(map(repr, single[:5]))
        warnings.warn(
            f"{path}: class(es) {shown} have a single example; it goes to training, so the "
            "model cannot be validated or tested on them; add examples for a useful classifier",
            stacklevel=3,
        )


def evaluate_on_file(
    classifier, path: str, text_column: str = "text", label_column: str = "label"
) -> list[dict]:
    """The classifier's accuracy and macro-F1 (or mean squared error) on a labelled file."""
    from rnnkit.data.text import read_labelled_texts

    frame = read_labelled_texts(path, text_column, label_column)
    texts = list(frame["text"])
    if classifier.config.task == "regress":
        truth = pd.to_numeric(frame["label"], errors="coerce").to_numpy()
        if np.isnan(truth).any():
            raise UserError(f"{path}: column {label_column!r} must hold numbers (ratings)")
        predicted = np.array([p.label for p in classifier.predict(texts)])
        return [
            {"data": str(path), "n": len(texts), "mse": float(np.mean((predicted - truth) ** 2))}
        ]
    labels = [str(label) for label in frame["label"]]
    classifier._targets(labels)  # a clear error for labels that are not one of the classes
    predicted = [str(p.label) for p in classifier.predict(texts)]  # int classes too
    # Always answering the commonest label: what the model must beat to have learned anything
    # (a model of imbalanced classes may answer nothing else).
    commonest = max(set(labels), key=labels.count)
    return [
        {"data": str(path), "method": "rnnkit", "n": len(texts)}
        | accuracy_and_macro_f1(labels, predicted),
        {"data": str(path), "method": f"majority class ({commonest})", "n": len(texts)}
        | accuracy_and_macro_f1(labels, [commonest] * len(labels)),
    ]
