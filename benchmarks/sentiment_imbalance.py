"""Imbalanced classes: the sentiment classifier with and without class weights, side by side.

The movie snippets' training and validation parts with nine of every ten negative snippets
left out (4,729 positive, 478 negative: a file a user might bring), written as a CSV and
trained as a user's file is, one network each (``--ensemble 1``), with ``--class-weight none``
and with the default ``auto`` (which weighs the classes here); both scored on the untouched,
balanced held-out movie snippets (1,056: the README table's test part). Accuracy, the recall
of each class, macro-F1, and the paired bootstrap of the accuracy difference; ``metrics.json``
in ``--out``. About 5 minutes on 2 cores:

    python benchmarks/sentiment_imbalance.py --out results/sentiment-imbalance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.apps.sentiment import SentimentClassifier
from rnnkit.apps.sentiment.benchmark import movie_polarity_split
from rnnkit.cli import main as main_cli
from rnnkit.stats import paired_bootstrap

NEGATIVES_KEPT = 0.1
WEIGHTINGS = ("none", "auto")


def write_files(out: Path) -> tuple[Path, pd.DataFrame]:
    """The imbalanced training file (shuffled, seed 0) and the balanced test snippets."""
    split = movie_polarity_split()
    train = pd.concat([split.train, split.val])
    negatives = train[train["label"] == "negative"].sample(frac=NEGATIVES_KEPT, random_state=0)
    kept = pd.concat([train[train["label"] == "positive"], negatives]).sample(
        frac=1, random_state=0
    )
    path = out / "train_imbalanced.csv"
    kept[["text", "label"]].to_csv(path, index=False)
    return path, split.test


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    recall = {c: float(np.mean(predicted[truth == c] == c)) for c in ("negative", "positive")}
    f1 = []
    for c in recall:
        hits = np.sum((predicted == c) & (truth == c))
        precision = hits / max(np.sum(predicted == c), 1)
        f1.append(0.0 if hits == 0 else 2 * precision * recall[c] / (precision + recall[c]))
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "recall": recall,
        "macro_f1": float(np.mean(f1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/sentiment-imbalance")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_file, test = write_files(out)
    truth = test["label"].to_numpy()
    right, report = {}, {"negatives_kept": NEGATIVES_KEPT, "n_test": len(test)}
    for weighting in WEIGHTINGS:
        model = out / f"model-{weighting}"
        command = ["sentiment", "train", "--data", str(train_file), "--ensemble", "1"]
        if main_cli([*command, "--class-weight", weighting, "--out", str(model)]) != 0:
            raise SystemExit(f"training with --class-weight {weighting} failed")
        classifier = SentimentClassifier.load(model)
        predicted = np.array([str(p.label) for p in classifier.predict(list(test["text"]))])
        right[weighting] = (predicted == truth).astype(float)
        report[weighting] = {**scores(truth, predicted), "class_weights": classifier.class_weights}
    difference = paired_bootstrap(right["auto"], right["none"], seed=0).to_dict()
    report["accuracy_auto_minus_none"] = difference
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
