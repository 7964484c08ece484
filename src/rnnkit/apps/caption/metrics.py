"""Caption metrics: BLEU-1..4 (sacrebleu), CIDEr-D, and exact fact accuracy.

Captions are lower-case, space-separated token strings; each prediction is scored against
all of its references.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from rnnkit.stats import Interval, paired_bootstrap


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 in [0, 1] (sacrebleu; cumulative, uniform weights, no smoothing, as in
    the captioning papers). Captions are already tokenized, so sacrebleu does not re-tokenize.

    Example:
        >>> scores = bleu(["a red 7 in the top left"], [["a red 7 in the top left", "a red 7"]])
        >>> round(scores["bleu4"], 6)
        1.0
    """
    streams = _reference_streams(references)
    scores = {}
    for n in range(1, 5):
        metric = _bleu_metric(n)
        scores[f"bleu{n}"] = metric.corpus_score(list(predictions), streams).score / 100.0
    return scores


def _bleu_metric(order: int):
    from sacrebleu.metrics import BLEU

    return BLEU(max_ngram_order=order, tokenize="none", smooth_method="none")


def _reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu wants one stream per reference position; None fills the shorter lists."""
    width = max((len(r) for r in references), default=1)
    return [[r[k] if k < len(r) else None for r in references] for k in range(width)]


def compare_bleu4(
    system_a: Sequence[str],
    system_b: Sequence[str],
    references: Sequence[Sequence[str]],
    seed: int = 0,
) -> Interval:
    """Paired-bootstrap 95% interval of corpus BLEU-4(a) - BLEU-4(b) over items, in [0, 1] units.

    As sacrebleu's own paired bootstrap does, each item contributes its sufficient statistics
    (n-gram matches and counts, lengths) and a resample's score is the corpus BLEU-4 of the
    resampled items, computed from their sums.

    Example:
        >>> refs = [["a red 7 in the top left"], ["a blue bag in the bottom right"]] * 20
        >>> good = ["a red 7 in the top left", "a blue bag in the bottom right"] * 20
        >>> worse = ["a red 1 in the top left", "a bag in the bottom right"] * 20
        >>> compare_bleu4(good, worse, refs).low > 0
        True
    """
    metric, streams = _bleu_metric(4), _reference_streams(references)
    stats_a = np.array(metric._extract_corpus_statistics(list(system_a), streams), dtype=float)
    stats_b = np.array(metric._extract_corpus_statistics(list(system_b), streams), dtype=float)

    def corpus_bleu4(rows: np.ndarray) -> float:
        return metric._compute_score_from_stats(list(rows.sum(axis=0))).score / 100.0

    return paired_bootstrap(stats_a, stats_b, statistic=corpus_bleu4, resamples=1000, seed=seed)


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    sigma: float = 6.0,
    max_n: int = 4,
) -> float:
    """CIDEr-D (Vedantam et al. 2015), as computed by the COCO caption evaluation code.

    Each caption becomes TF-IDF vectors of its 1..4-grams, with document frequencies counted
    over the reference sets of the whole corpus (so words every caption shares, like "a",
    weigh little). The score is the cosine similarity of prediction and reference vectors,
    with the prediction's counts clipped at the reference's, damped by a Gaussian penalty on
    the length difference, averaged over n and references, and scaled by 10.

    Args:
        predictions: one caption per item.
        references: the reference captions of each item.

    Returns:
        The corpus score, the mean over items (0 for nothing in common; about 10 at most when
        a prediction matches references that are all alike).
    """
    if len(predictions) != len(references):
        raise ValueError("one list of references per prediction")
    if not predictions:
        return 0.0
    reference_grams = [
        [[_ngrams(r.split(), n) for n in range(1, max_n + 1)] for r in refs] for refs in references
    ]
    document_frequency: Counter = Counter()
    for refs in reference_grams:
        document_frequency.update({g for ref in refs for grams in ref for g in grams})
    log_items = math.log(float(len(predictions)))

    def vector(grams_by_n: list[Counter]) -> tuple[list[dict], list[float]]:
        vectors, norms = [], []
        for grams in grams_by_n:
            weights = {
                g: count * (log_items - math.log(max(1.0, document_frequency[g])))
                for g, count in grams.items()
            }
            vectors.append(weights)
            norms.append(math.sqrt(sum(w * w for w in weights.values())))
        return vectors, norms

    total = 0.0
    for prediction, refs_text, refs in zip(predictions, references, reference_grams, strict=True):
        words = prediction.split()
        pred_vec, pred_norm = vector([_ngrams(words, n) for n in range(1, max_n + 1)])
        item = [0.0] * max_n
        for ref_text, ref in zip(refs_text, refs, strict=True):
            ref_vec, ref_norm = vector(ref)
            delta = len(words) - len(ref_text.split())
            for n in range(max_n):
                overlap = sum(
                    min(w, ref_vec[n][g]) * ref_vec[n][g]
                    for g, w in pred_vec[n].items()
                    if g in ref_vec[n]
                )
                if pred_norm[n] and ref_norm[n]:
                    overlap /= pred_norm[n] * ref_norm[n]
                item[n] += overlap * math.exp(-(delta**2) / (2 * sigma**2))
        total += sum(item) / max_n / len(refs) * 10.0
    return total / len(predictions)


def fact_accuracy(
    predictions: Sequence[str], facts: Sequence[dict], parse: Callable[[str], dict]
) -> dict[str, float]:
    """How well captions state the facts of their scenes (see `rnnkit.data.vision`).

    ``object_accuracy``: share of items whose caption names exactly the right objects (with
    sizes and colours); ``relation_accuracy``: exactly the right relations, positions or
    motions; ``object_recall``: share of all true objects that captions name correctly.
    """
    pairs = list(zip((parse(p) for p in predictions), facts, strict=True))
    n = max(len(pairs), 1)
    named = sum(sum((Counter(p["objects"]) & Counter(f["objects"])).values()) for p, f in pairs)
    return {
        "object_accuracy": sum(p["objects"] == f["objects"] for p, f in pairs) / n,
        "relation_accuracy": sum(p["relations"] == f["relations"] for p, f in pairs) / n,
        "object_recall": named / max(sum(len(f["objects"]) for _, f in pairs), 1),
    }


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    facts: Sequence[dict] | None = None,
    parse: Callable[[str], dict] | None = None,
) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D, plus fact accuracies when ``facts`` and ``parse`` are given."""
    row = {**bleu(predictions, references), "cider": cider_d(predictions, references)}
    if facts is not None and parse is not None:
        row.update(fact_accuracy(predictions, facts, parse))
    return row
