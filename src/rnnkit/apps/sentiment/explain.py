"""Why did the classifier say that? Per-token gradient saliency or attention, as highlighted HTML.

Saliency is integrated gradients (Sundararajan et al. 2017): for each word, its embedding dotted
with the gradient of the predicted class's log-probability, averaged on the path from all-zero
embeddings to the text's. Positive values pushed towards the predicted label (green), negative
ones against it (red).

Example:
    >>> from rnnkit.files import write_text
    >>> texts = ["a gem", "a joy", "a mess", "a bore"] * 16
    >>> labels = ["positive", "positive", "negative", "negative"] * 16
    >>> classifier = SentimentClassifier().fit(texts, labels)
    >>> tokens = explain(classifier, "a gem of a film")  # unknown words are [UNK]
    >>> [token.token for token in tokens], tokens[1]
    (['a', 'gem', '[UNK]', 'a', '[UNK]'], TokenWeight(token='gem', weight=1.0))
    >>> prediction = classifier.predict("a gem of a film")
    >>> write_text("why.html", explanation_html([(prediction, tokens)]))
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import torch

from rnnkit.apps.sentiment.classifier import Prediction, SentimentClassifier, _collate
from rnnkit.errors import UserError


@dataclass
class TokenWeight:
    """A token and its weight, scaled so that the largest magnitude in the text is 1."""

    token: str
    weight: float


def explain(
    classifier: SentimentClassifier, text: str, method: str = "saliency"
) -> list[TokenWeight]:
    """Per-token weights for the classifier's prediction on ``text``.

    Args:
        method: ``saliency`` (integrated gradients, signed) or ``attention`` (the model's attention
            weights, >= 0; needs a model trained with attention pooling).
    """
    members = classifier._require_model().eval()
    check_method(classifier, method)
    if not text.strip():
        raise UserError("empty text: nothing to explain")
    ids, pieces, tokens = classifier.encode([text])[0]
    batch = _collate([(ids, pieces, 0, 0.0)])
    device = next(members.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    # The ensemble's label is the one explained; the networks' weights are averaged.
    predicted = None
    if classifier.config.task == "classify":
        predicted = int(classifier.predict_scores([text])[0].argmax())
    if method == "attention":
        with torch.no_grad():
            values = torch.stack(
                [net(batch["tokens"], batch["lengths"], batch["pieces"])[1][0] for net in members]
            ).mean(0)
    elif method == "saliency":
        values = torch.stack(
            [_integrated_gradients(classifier, net, batch, predicted) for net in members]
        ).mean(0)
    largest = float(values.abs().max()) or 1.0
    return [TokenWeight(t, float(v) / largest) for t, v in zip(tokens, values.cpu(), strict=True)]


def check_method(classifier: SentimentClassifier, method: str) -> None:
    """A one-line UserError if ``method`` cannot explain this classifier's predictions."""
    if method not in ("saliency", "attention"):
        raise UserError(f"unknown explanation method {method!r}; expected saliency or attention")
    pooling = classifier.config.pooling
    if method == "attention" and "attention" not in pooling:
        raise UserError(
            f"method 'attention' needs a model trained with attention pooling "
            f"(this one uses {pooling!r}); use method 'saliency'"
        )


def _integrated_gradients(
    classifier: SentimentClassifier, net, batch: dict, predicted: int | None, steps: int = 24
) -> torch.Tensor:
    """Per-word integrated gradients of one network, from all-zero embeddings to the text's.

    The gradient of the target score (log-probability of class ``predicted``, or the rating
    when it is None) is averaged along the straight path and multiplied by the embedding;
    the word attributions then add up to score(text) - score(zeros).
    """
    embedded = net.embed(batch["tokens"], batch["pieces"]).detach()  # [1, T, E]
    fractions = torch.linspace(1 / steps, 1, steps, device=embedded.device).view(-1, 1, 1)
    path = (fractions * embedded).requires_grad_(True)  # [steps, T, E]
    tokens = batch["tokens"].expand(steps, -1)
    scores, _ = net(tokens, batch["lengths"].expand(steps), embedded=path)
    if predicted is None:
        target = scores[:, 0]  # the rating itself: green raises it, red lowers it
    else:
        target = classifier._class_logits(scores).log_softmax(-1)[:, predicted]
    (gradients,) = torch.autograd.grad(target.sum(), path)
    return (gradients.mean(0) * embedded[0]).sum(-1).detach()


def explanation_html(
    items: list[tuple[Prediction, list[TokenWeight]]], title: str = "Why these predictions"
) -> str:
    """A self-contained HTML page: each text with its words shaded by weight, and its label."""
    rows = []
    for prediction, weights in items:
        spans = " ".join(_span(w) for w in weights)
        label = html.escape(str(prediction.label))
        rows.append(f"<p><b>{label}</b> ({prediction.probability:.2f})&nbsp;&nbsp;{spans}</p>")
    legend = (
        "<p class='legend'>green: the word pushed towards the predicted label; red: against it; "
        "the stronger the colour, the larger the effect.</p>"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;"
        "line-height:2}span{padding:.1em .2em;border-radius:.2em}.legend{color:#666}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{legend}{''.join(rows)}</body></html>\n"
    )


def _span(token: TokenWeight) -> str:
    colour = "0,160,60" if token.weight >= 0 else "210,40,40"
    alpha = min(abs(token.weight), 1.0) * 0.8
    return (
        f"<span style='background:rgba({colour},{alpha:.2f})' title='{token.weight:+.2f}'>"
        f"{html.escape(token.token)}</span>"
    )
