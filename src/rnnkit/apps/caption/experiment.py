"""The captioning experiment: train on composed scenes (or clips), test on the compositional
split, and compare the attention decoder, the decoder without attention and the
nearest-neighbour baseline in one run.

Example:
    A quick look (the README's run: 4,000 scenes, 300 test scenes, 12 epochs):

    >>> data = synthetic_data("image", train_size=32, test_size=8, seed=0)
    >>> config = CaptionConfig(epochs=1, feature_size=16, hidden_size=32, summary_size=32)
    >>> rows, models, predictions = compare_captioners(data, config)
    >>> [(row["model"], row["decoding"]) for row in rows]  # BLEU, CIDEr-D, fact accuracy...
    [('attention LSTM', 'greedy'), ('attention LSTM', 'beam 3'),
     ('LSTM without attention', 'greedy'), ('LSTM without attention', 'beam 3'),
     ('nearest neighbour (CNN features)', '-')]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rnnkit.apps.caption.captioner import (
    VIDEO_ENCODERS,
    CaptionConfig,
    Captioner,
    NearestNeighbourCaptioner,
)
from rnnkit.apps.caption.metrics import caption_metrics, compare_bleu4
from rnnkit.data import vision

# Sizes of the full and the --quick runs (train items, test items, epochs).
FULL_SIZES = {"image": (4000, 300, 12), "video": (3000, 300, 20)}
QUICK_SIZES = {"image": (256, 64, 1), "video": (128, 32, 1)}
# The video encoder is chosen on the validation pairs at this budget (train clips,
# validation clips, epochs): a tenth of the full run's clip-epochs, so all three fit.
ENCODER_CHOICE_SIZES = (1000, 300, 8)


@dataclass
class CaptionData:
    """Training items, and the compositional test split with its facts."""

    kind: str
    train_inputs: np.ndarray
    train_captions: list[list[str]]
    test_inputs: np.ndarray
    test_captions: list[list[str]]
    test_facts: list[dict]
    parse: Callable[[str], dict]


def synthetic_data(
    kind: str, train_size: int, test_size: int, seed: int = 0, evaluate_on: str = "test"
) -> CaptionData:
    """Composed scenes ("image") or moving-item clips ("video"); the test split holds
    pairs of item classes never seen together in training, drawn from unseen item images.

    Args:
        evaluate_on: "test" for the compositional test split, or "validation" for choosing
            settings without touching it: the validation pairs (never seen together in
            training either, and disjoint from the test pairs), drawn from *training* item
            images with another seed (the test split's images stay unseen).
    """
    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"evaluate_on must be 'test' or 'validation', got {evaluate_on!r}")
    train_bank = vision.load_item_bank("train")
    if evaluate_on == "test":
        test_bank, test_seed = vision.load_item_bank("test"), seed
    else:
        test_bank, test_seed = train_bank, seed + 1
    if kind == "image":
        train = vision.compose_scenes(train_bank, train_size, "train", seed)
        test = vision.compose_scenes(test_bank, test_size, evaluate_on, test_seed)
        pixels = [s.image for s in train], [s.image for s in test]
        parse = vision.parse_caption
    else:
        train = vision.compose_clips(train_bank, train_size, "train", seed)
        test = vision.compose_clips(test_bank, test_size, evaluate_on, test_seed)
        pixels = [c.frames for c in train], [c.frames for c in test]
        parse = vision.parse_motion_caption
    return CaptionData(
        kind,
        np.stack(pixels[0]),
        [x.captions for x in train],
        np.stack(pixels[1]),
        [x.captions for x in test],
        [x.facts for x in test],
        parse,
    )


def evaluate_predictions(data: CaptionData, predictions: list[str]) -> dict[str, float]:
    """BLEU-1..4, CIDEr-D and object/relation accuracy on the test split."""
    return caption_metrics(predictions, data.test_captions, data.test_facts, data.parse)


def compare_captioners(
    data: CaptionData,
    config: CaptionConfig,
    beam_width: int = 3,
    progress: bool = False,
) -> tuple[list[dict], dict, dict[str, list[str]]]:
    """Train both decoders with the same data and seed; score them and the baseline.

    Returns:
        rows (one per model and decoding, with metrics and seconds), the fitted models
        {"attention", "plain", "nearest"} and the test predictions of each row.
    """
    rows, models, predictions = [], {}, {}
    for decoder in ("attention", "plain"):
        began = time.perf_counter()
        captioner = Captioner(replace(config, kind=data.kind, decoder=decoder))
        captioner.fit(data.train_inputs, data.train_captions, progress=progress)
        seconds = time.perf_counter() - began
        models[decoder] = captioner
        name = "attention LSTM" if decoder == "attention" else "LSTM without attention"
        decodings = [("greedy", 1)] + (
            [(f"beam {beam_width}", beam_width)] if beam_width > 1 else []
        )
        for label, width in decodings:
            key = f"{name}, {label}"
            predictions[key] = captioner.predict(data.test_inputs, beam_width=width)
            rows.append(
                {
                    "model": name,
                    "decoding": label,
                    **evaluate_predictions(data, predictions[key]),
                    "train_seconds": round(seconds, 1),
                }
            )
    nearest = NearestNeighbourCaptioner(models["attention"].features)
    nearest.fit(data.train_inputs, data.train_captions)
    key = "nearest neighbour (CNN features)"
    predictions[key] = nearest.predict(data.test_inputs)
    rows.append(
        {
            "model": key,
            "decoding": "-",
            **evaluate_predictions(data, predictions[key]),
            "train_seconds": 0.0,
        }
    )
    models["nearest"] = nearest
    return rows, models, predictions


def baseline_comparisons(
    data: CaptionData, predictions: dict[str, list[str]], beam_width: int = 3, seed: int = 0
) -> list[dict]:
    """The attention decoder against each baseline of `compare_captioners`' run: BLEU-4
    differences with paired-bootstrap 95% intervals over the test items.

    Returns:
        one dict per baseline: ``system``, ``baseline``, ``bleu4_difference`` (estimate, low,
        high, confidence) and ``verdict`` ("beats" only where the interval excludes zero).
    """
    decoding = f"beam {beam_width}" if beam_width > 1 else "greedy"
    system = f"attention LSTM, {decoding}"
    comparisons = []
    for baseline in (f"LSTM without attention, {decoding}", "nearest neighbour (CNN features)"):
        interval = compare_bleu4(
            predictions[system], predictions[baseline], data.test_captions, seed=seed
        )
        comparisons.append(
            {
                "system": system,
                "baseline": baseline,
                "bleu4_difference": interval.to_dict(),
                "verdict": interval.verdict(higher_is_better=True),
            }
        )
    return comparisons


def choose_video_encoder(
    seed: int = 0,
    sizes: tuple[int, int, int] = ENCODER_CHOICE_SIZES,
    beam_width: int = 3,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[str, list[dict]]:
    """Train every video encoder (`VIDEO_ENCODERS`) with the attention decoder and score it
    on the validation pairs (never on the test pairs); the best BLEU-4 wins.

    Returns:
        the chosen encoder and one row per encoder (validation metrics, training seconds).
    """
    train_size, validation_size, epochs = sizes
    data = synthetic_data("video", train_size, validation_size, seed, evaluate_on="validation")
    rows = []
    for encoder in VIDEO_ENCODERS:
        began = time.perf_counter()
        config = CaptionConfig(
            kind="video", video_encoder=encoder, epochs=epochs, seed=seed, device=device
        )
        captioner = Captioner(config).fit(data.train_inputs, data.train_captions, progress=progress)
        seconds = time.perf_counter() - began
        predictions = captioner.predict(data.test_inputs, beam_width=beam_width)
        rows.append(
            {
                "encoder": encoder,
                "split": "validation pairs",
                **evaluate_predictions(data, predictions),
                "train_seconds": round(seconds, 1),
            }
        )
    best = max(rows, key=lambda row: row["bleu4"])["encoder"]
    return best, rows
