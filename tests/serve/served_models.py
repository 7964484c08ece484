"""Tiny models of every application (trained in seconds) and a live server, for the tests.

Each model is trained through its application's Python API on a little toy data (seconds),
saved with its own ``save`` and served from those folders, exactly as ``rnnkit serve`` does.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

TOKEN = "test-token"
GOOD = ["wonderful", "gorgeous", "witty", "moving", "brilliant"]
BAD = ["dull", "tired", "clumsy", "boring", "awful"]
SPANISH = {"the": "el", "dog": "perro", "sees": "ve", "big": "grande", "cat": "gato"}


def reviews(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    labels = [rng.choice(["positive", "negative"]) for _ in range(n)]
    texts = [f"the film is {rng.choice(GOOD if y == 'positive' else BAD)}" for y in labels]
    return texts, labels


def seasonal_history(length: int = 240) -> pd.DataFrame:
    """An hourly series with a daily cycle: what the forecaster and the detector read."""
    steps = np.arange(length)
    noise = np.random.default_rng(0).normal(0, 0.3, length)
    values = 10 + 3 * np.sin(2 * np.pi * steps / 24) + noise
    times = pd.date_range("2024-01-01", periods=length, freq="h")
    return pd.DataFrame({"time": times, "load": values})


def train_forecast(out: Path) -> None:
    from rnnkit.apps.forecast import Forecaster

    model = Forecaster(
        horizon=6, context_length=24, hidden_size=8, num_layers=1, epochs=1,
        batches_per_epoch=3, batch_size=8, seed=0,
    )  # fmt: skip
    model.fit(seasonal_history(), target="load")
    model.save(out)


def two_series_with_workdays(length: int = 120) -> pd.DataFrame:
    parts = []
    for sid, level in (("north", 10.0), ("south", 20.0)):
        part = seasonal_history(length).assign(series=sid)
        part["workday"] = (part["time"].dt.dayofweek < 5).astype(float)
        part["load"] += level + 2 * part["workday"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def future_rows(history: pd.DataFrame, steps: int = 4) -> pd.DataFrame:
    parts = []
    for sid, part in history.groupby("series"):
        times = pd.date_range(part["time"].max(), periods=steps + 1, freq="h")[1:]
        parts.append(pd.DataFrame({"time": times, "series": sid, "workday": 1.0}))
    return pd.concat(parts, ignore_index=True)


def train_covariates(out: Path) -> None:
    """A forecaster of two series with a known-future covariate (working days)."""
    from rnnkit.apps.forecast import Forecaster

    model = Forecaster(
        horizon=4, context_length=12, hidden_size=8, num_layers=1, epochs=1,
        batches_per_epoch=2, batch_size=8, seed=0,
    )  # fmt: skip
    model.fit(
        two_series_with_workdays(), target="load", series_id="series", future_covariates=["workday"]
    )
    model.save(out)


def train_anomaly(out: Path) -> None:
    from rnnkit.apps.anomaly import AnomalyDetector

    values = seasonal_history(400)["load"].to_numpy()
    AnomalyDetector(context_length=24, epochs=1, batches_per_epoch=3, seed=0).fit(values).save(out)


def train_sentiment(out: Path) -> None:
    from rnnkit.apps.sentiment import SentimentClassifier, SentimentConfig

    config = SentimentConfig(
        embedding_dim=8, hidden_size=8, vocab_size=100, subword_vocab_size=80, epochs=1,
        batch_size=16, ensemble=1,
    )  # fmt: skip
    texts, labels = reviews(64, seed=1)
    val_texts, val_labels = reviews(16, seed=2)
    SentimentClassifier(config).fit(texts, labels, val_texts, val_labels).save(out)


def train_lm(out: Path) -> None:
    from rnnkit.apps.lm import LanguageModel, LMConfig

    text = "And God said, Let there be light: and there was light.\n" * 20
    config = LMConfig(embedding_dim=8, hidden_size=16, bptt=20, batch_size=4, epochs=1)
    LanguageModel(config).fit(text).save(out)


def train_translate(out: Path) -> None:
    from rnnkit.apps.translate import Translator, TranslatorConfig
    from rnnkit.data.parallel import SentencePair

    rng = random.Random(0)
    pairs = []
    for i in range(48):
        words = [rng.choice(list(SPANISH)) for _ in range(rng.randint(2, 4))]
        pairs.append(SentencePair(" ".join(words), " ".join(SPANISH[w] for w in words), f"g{i}"))
    config = TranslatorConfig(vocab_size=40, embedding_size=8, hidden_size=16, batch_size=16)
    translator = Translator(config)
    translator.fit(pairs, epochs=1, seed=0)
    translator.save(out)


def tone(hz: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def train_speech(out: Path) -> None:
    from rnnkit.apps.speech import RecognizerConfig, SpeechRecognizer
    from rnnkit.data.speech import Utterance

    recognizer = SpeechRecognizer(RecognizerConfig(n_mels=16, hidden_size=8, channels=4))
    recognizer.fit([Utterance(tone(300), "a"), Utterance(tone(600), "b")], epochs=1)
    recognizer.save(out)


def train_caption(out: Path) -> None:
    from rnnkit.apps.caption import CaptionConfig, Captioner

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    captions = [["a red shoe"] if i % 2 else ["a blue seven"] for i in range(16)]
    config = CaptionConfig(
        epochs=1, batch_size=8, hidden_size=16, feature_size=8, summary_size=8, embed_size=8
    )
    Captioner(config).fit(images, captions).save(out)


def train_music(out: Path) -> None:
    from rnnkit.apps.music import PianoRollConfig, PianoRollLM
    from rnnkit.data.music import Piece
    from rnnkit.engine import TrainConfig

    pieces = [
        Piece(name=f"p{i}", notes=np.array([(60 + (i + j) % 12, j, 1) for j in range(16)]))
        for i in range(4)
    ]
    model = PianoRollLM(PianoRollConfig(hidden_size=8, nade_size=8))
    model.fit(pieces, None, TrainConfig(epochs=1, progress=False))
    model.save(out, {"data": "toy"})


def run_experiment(out: Path) -> None:
    from rnnkit.apps.experiments import ExperimentConfig, run_experiment

    config = ExperimentConfig(
        tasks=("adding",), cells=("rnn", "lstm"), adding_lengths=(20,), quick=True
    )
    run_experiment(config, out)


TRAINERS = {
    "forecast": train_forecast,
    "anomaly": train_anomaly,
    "sentiment": train_sentiment,
    "lm": train_lm,
    "translate": train_translate,
    "speech": train_speech,
    "caption": train_caption,
    "music": train_music,
    "experiment": run_experiment,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
