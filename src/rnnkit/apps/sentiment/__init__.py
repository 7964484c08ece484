"""Sentiment analysis: a BiLSTM classifier of short texts, its baselines and explanations.

Example:
    >>> from rnnkit.apps.sentiment import SentimentClassifier, movie_polarity_split
    >>> split = movie_polarity_split()
    >>> len(split.train.text), len(split.val.text)
    (8456, 1056)
    >>> clf = SentimentClassifier().fit(split.train.text, split.train.label,  # doctest: +SKIP
    ...                                 split.val.text, split.val.label)  # minutes of training
    >>> clf.predict(["a gorgeous, witty film"])[0].label  # doctest: +SKIP
    'positive'
"""

from rnnkit.apps.sentiment.benchmark import (
    compare_on_benchmark,
    evaluate_on_file,
    movie_polarity_split,
    training_data,
)
from rnnkit.apps.sentiment.classifier import Prediction, SentimentClassifier, SentimentConfig
from rnnkit.apps.sentiment.explain import TokenWeight, explain, explanation_html

__all__ = [
    "Prediction",
    "SentimentClassifier",
    "SentimentConfig",
    "TokenWeight",
    "compare_on_benchmark",
    "evaluate_on_file",
    "explain",
    "explanation_html",
    "movie_polarity_split",
    "training_data",
]
