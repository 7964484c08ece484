"""The sentiment section of ``rnnkit tour``: train, compare with baselines, explain, plot."""

from __future__ import annotations

from pathlib import Path

from rnnkit.apps.sentiment.benchmark import (
    PolaritySplit,
    compare_on_benchmark,
    movie_polarity_split,
)
from rnnkit.apps.sentiment.classifier import SentimentClassifier, SentimentConfig
from rnnkit.apps.sentiment.explain import explain, explanation_html
from rnnkit.files import atomic_path, write_text
from rnnkit.report import Section

EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is nothing but a tired retread of better films.",
    "Not bad at all, though it drags in the middle.",
    "An utterly charming and hilarious film that reminded me why I love movies.",
    "Too long, too loud and not nearly as clever as it thinks it is.",
]


def sentiment_tour(
    out: Path, quick: bool, seed: int = 0, device: str = "cpu", keep: Path | None = None
) -> Section:
    """Train on the movie snippets (a small model: a minute, or seconds when ``quick``)."""
    section = Section(title="Sentiment: movie snippets")
    split = movie_polarity_split()
    if quick:
        split = PolaritySplit(split.train.head(1500), split.val.head(300), split.test.head(300))
    config = SentimentConfig(
        hidden_size=16 if quick else 64,
        embedding_dim=16 if quick else 64,
        subword_vocab_size=1000 if quick else 4000,
        epochs=1 if quick else 4,
        seed=seed,
        device=device,
    )
    classifier = SentimentClassifier(config).fit(
        split.train["text"],
        split.train["label"],
        split.val["text"],
        split.val["label"],
        ratings=split.train["rating"],
        val_ratings=split.val["rating"],
    )
    if keep is not None:  # the model folder `make serve` serves
        classifier.save(keep)
    rows = compare_on_benchmark(
        classifier, split, shift_domains=() if quick else ("tweets", "amazon")
    )
    section.text(
        f"A bidirectional LSTM over word + subword embeddings with max pooling, trained from "
        f"scratch on {len(split.train):,} Rotten Tomatoes sentences rated by humans (VADER's "
        f"ground truth; positive if the mean rating is above 0) for {config.epochs} epoch(s), "
        f"against TF-IDF + logistic regression trained on the same sentences and VADER's "
        f"rule-based analyser. Tweets and Amazon snippets test the movie model out of domain."
        + (" Quick mode: a tiny model on a sample; expect chance-level accuracy." if quick else "")
    )
    section.table(rows, "Binary polarity: accuracy and macro-F1")
    section.table(classifier.history, "Training history")
    section.image(_plot(rows, out / "accuracy.png"), "Accuracy by test set and model")
    predictions = classifier.predict(EXAMPLES)
    section.table(
        [{"text": p.text, "label": p.label, "probability": p.probability} for p in predictions],
        "Predictions on new sentences",
    )
    items = [(p, explain(classifier, p.text)) for p in predictions]
    write_text(out / "explanations.html", explanation_html(items))
    section.file(out / "explanations.html", "per-word gradient saliency, highlighted")
    return section


def _plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(dict.fromkeys(r["data"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    figure, axes = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(models)
    for index, model in enumerate(models):
        values = [
            next(r["accuracy"] for r in rows if r["data"] == d and r["model"] == model)
            for d in datasets
        ]
        axes.bar(np.arange(len(datasets)) + index * width, values, width, label=model)
    axes.set_xticks(np.arange(len(datasets)) + width * (len(models) - 1) / 2, datasets)
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axes.set_ylim(0.4, 1.0)
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return path
