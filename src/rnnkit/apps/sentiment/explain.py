"""Why did the classifier say that? Per-token gradient saliency or attention, as highlighted HTML.

Saliency is gradient x input (Shrikumar et al. 2017; Denil et al. 2014): for each word, the dot
product of its embedding with the gradient of the predicted class's log-probability. Positive
values pushed towards the predicted label (green), negative ones against it (red).

Example:
    >>> tokens = explain(classifier, "a gorgeous, witty film")
    >>> tokens[1]
    TokenWeight(token='gorgeous', weight=0.83)
    >>> write_text("why.html", explanation_html([(text, prediction, tokens)]))
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


def explain(classifier: SentimentClassifier, text: str, method: str = "saliency") -> list[TokenWeight]:
    """Per-token weights for the classifier's prediction on ``text``.

    Args:
        method: ``saliency`` (gradient x input, signed) or ``attention`` (the model's attention
            weights, >= 0; needs a model trained with attention pooling).
    """
    model = classifier._require_model()
    if not text.strip():
        raise UserError("empty text: nothing to explain")
    ids, pieces, tokens = classifier.encode([text])[0]
    batch = _collate([(ids, pieces, 0)])
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    model.eval()
    if method == "attention":
        if "attention" not in model.pooling:
            raise UserError(
                f"method 'attention' needs a model trained with attention pooling "
                f"(this one uses {model.pooling!r}); use method 'saliency'"
            )
        with torch.no_grad():
            _, weights = model(batch["tokens"], batch["lengths"], batch["pieces"])
        values = weights[0]
    elif method == "saliency":
        embedded = model.embed(batch["tokens"], batch["pieces"]).detach().requires_grad_(True)
        scores, _ = model(batch["tokens"], batch["lengths"], embedded=embedded)
        if classifier.config.task == "regress":
            target = scores[0, 0]  # the rating itself: green raises it, red lowers it
        else:
            target = scores.log_softmax(-1)[0].max()
        (gradient,) = torch.autograd.grad(target, embedded)
        values = (gradient * embedded).sum(-1)[0].detach()
    else:
        raise UserError(f"unknown explanation method {method!r}; expected saliency or attention")
    largest = float(values.abs().max()) or 1.0
    return [TokenWeight(t, float(v) / largest) for t, v in zip(tokens, values.cpu(), strict=True)]


def explanation_html(
    items: list[tuple[Prediction, list[TokenWeight]]], title: str = "Why these predictions"
) -> str:
    """A self-contained HTML page: each text with its words shaded by weight, and its label."""
    rows = []
    for prediction, weights in items:
        spans = " ".join(_span(w) for w in weights)
        label = html.escape(str(prediction.label))
        rows.append(
            f"<p><b>{label}</b> ({prediction.probability:.2f})&nbsp;&nbsp;{spans}</p>"
        )
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
