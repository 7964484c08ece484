"""The served models: which application a folder holds, loading it once, and running it.

`load_models(folders)` reads each folder written by ``rnnkit <app> train`` (or an experiment's
output folder with ``gradient_norms.png``), recognises the application from the folder itself
(`detect_app`) and wraps the loaded object in a `Served` subclass whose methods the routes
call on the model's own worker thread (`rnnkit.serve.batching.ModelWorker`). The methods
raise `UserError` with the CLI's one-line messages for bad input; the app turns those into
4xx JSON.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnkit.apps.common import app_of_folder
from rnnkit.data.timeseries import SERIES
from rnnkit.errors import UserError
from rnnkit.serve.settings import Settings


class OverLimit(UserError):
    """Input over one of the server's size limits (answered with 413, not 400)."""


def detect_app(folder: Path) -> str:
    """The application whose ``train`` wrote ``folder``, read from its files.

    Raises:
        UserError: the folder is missing or holds no model rnnkit recognises.
    """
    from rnnkit.engine.checkpoint import read_json

    if not folder.is_dir():
        raise UserError(f"{folder}: no such model folder; expected one written by 'train'")
    config_path = folder / "config.json"
    if not config_path.exists():
        if (folder / "gradient_norms.png").exists():
            return "experiment"
        raise UserError(
            f"{config_path}: not found; expected a folder written by 'rnnkit <app> train' "
            "or by 'rnnkit experiment'"
        )
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise UserError(f"{config_path}: expected a JSON object")
    app = app_of_folder(folder, config)
    if app is not None:
        return app
    raise UserError(f"{config_path}: not a model folder of any rnnkit application")


def model_name(folder: Path, taken: set[str]) -> str:
    """A route-safe name for ``folder``: its base name in ``[A-Za-z0-9._-]``, made unique."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip(".-") or "model"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    return name


class Served:
    """One loaded model; subclasses add the methods of their application.

    Attributes:
        app: the application (``sentiment``, ``translate``, ...).
        name: the name in the routes (``/v1/models/<name>/...``).
        runtime: ``torch`` or ``onnx`` (what actually runs the network).
    """

    app: ClassVar[str]
    # The method that takes a list of items: requests are micro-batched through it.
    batch_method: ClassVar[str | None] = None

    def __init__(self, name: str, folder: Path, settings: Settings):
        self.name, self.folder, self.settings = name, folder, settings
        self.runtime = "torch"
        self.model: Any = None

    def load(self) -> None:
        raise NotImplementedError

    def network_owner(self) -> Any:
        """The object `rnnkit.export.attach_onnx` may swap the network of (None: no ONNX)."""
        return self.model

    def info(self) -> dict:
        """What ``/v1/models`` says about this model (the page builds its panel from it)."""
        return {"name": self.name, "app": self.app, "runtime": self.runtime}

    def check_text(self, text: str, what: str, number: int | None = None) -> None:
        """Refuse a text longer than the limit (one line naming it)."""
        label = f"{what} {number}" if number is not None else what
        if len(text) > self.settings.max_text_chars:
            raise UserError(
                f"{label}: {len(text):,} characters; the limit is "
                f"{self.settings.max_text_chars:,} (--max-text-chars)"
            )

    def check_items(self, items: list, what: str) -> None:
        if not items:
            raise UserError(f"no {what}; expected a list of at least one")
        if len(items) > self.settings.max_items:
            raise UserError(
                f"{len(items)} {what}; at most {self.settings.max_items} per request (--max-items)"
            )


# ------------------------------------------------------------------------------ forecast


class ServedForecaster(Served):
    app = "forecast"

    def load(self) -> None:
        from rnnkit.apps.forecast import Forecaster

        self.model = Forecaster.load(self.folder)

    def info(self) -> dict:
        meta = self.model._meta
        return {
            **super().info(),
            "horizon": self.model.config.horizon,
            "levels": list(self.model.config.levels),
            "context_length": meta["context_length"],
            "freq": meta["freq"],
            "target": meta["target"],
            "columns": self.model.columns,
            # what a forecast needs beside the history: these covariates over the horizon
            "future_covariates": list(meta["future_covariates"]),
            "future_columns": self._columns_of_future() if meta["future_covariates"] else None,
        }

    def read_rows(self, rows: list[dict]) -> Any:
        """A `SeriesFrame` from JSON rows, with the columns the model was trained with."""
        import pandas as pd

        if not rows:
            raise UserError("rows: empty; expected the history as a list of objects")
        return self._series(pd.DataFrame(rows), "rows")

    def read_file(self, path: Path) -> Any:
        """A `SeriesFrame` from an uploaded CSV or Parquet file (as ``forecast predict --file``)."""
        return self._series(_read_table(path), path.name)

    def read_future(self, future: Any, where: str) -> Any:
        """The known-future covariates (JSON rows or an uploaded file) as the table
        `Forecaster.predict` reads: columns ``time``, ``series`` and the covariates, named
        here as in the history (the model's time and series-id columns)."""
        import pandas as pd

        names = self.model._meta["future_covariates"]
        if future is None:
            if names:
                raise UserError(
                    f"this model uses known-future covariates ({', '.join(names)}); send their "
                    f"values for the next {self.model.config.horizon} steps as {where} "
                    f"(columns {self._columns_of_future()})"
                )
            return None
        if not names:
            raise UserError(f"{where}: this model uses no known-future covariates; leave it out")
        frame = _read_table(future) if isinstance(future, Path) else pd.DataFrame(future)
        if frame.empty:
            raise UserError(f"{where}: empty; expected a row per future step")
        columns = self._columns(frame)
        renamed = {columns["time"]: "time"}
        if columns["series_id"]:
            renamed[columns["series_id"]] = SERIES
        return frame.rename(columns=renamed)

    def _columns_of_future(self) -> str:
        columns = self.model.columns or {}
        several = len(self._trained_series()) > 1
        series = [columns.get("series_id") or SERIES] if several else []
        return ", ".join(
            [columns.get("time") or "time", *series, *self.model._meta["future_covariates"]]
        )

    def _series(self, frame: Any, where: str) -> Any:
        """The checked `SeriesFrame` of a history table; a single series is named as the
        model's one trained series (its covariate statistics are then that series')."""
        from rnnkit.data.timeseries import series_from_dataframe

        columns = self._columns(frame)
        trained = self._trained_series()
        if columns["series_id"] is None and len(trained) == 1:
            frame, columns["series_id"] = frame.assign(**{SERIES: trained[0]}), SERIES
        return series_from_dataframe(frame, where=where, **columns)

    def _columns(self, frame: Any) -> dict:
        """The column names to read, from how the model was trained: a model trained on
        bundled data has no ``columns`` of its own, so its meta names the target, and a
        ``series`` column (as in `Forecaster.predict`) tells several series apart."""
        columns = self.model.columns or {}
        meta = self.model._meta
        targets = columns.get("target") or [meta["target"]]
        series_id = columns.get("series_id") or (SERIES if SERIES in frame.columns else None)
        return {
            "time": columns.get("time") or "time",
            "time_format": columns.get("time_format"),
            "target": targets if len(targets) != 1 else targets[0],
            "series_id": series_id,
            "past_covariates": columns.get("past_covariates") or meta["past_covariates"],
            "future_covariates": columns.get("future_covariates") or meta["future_covariates"],
            "freq": columns.get("freq") or meta["freq"],
        }

    def _trained_series(self) -> list[str]:
        """The ids of the series the model was trained on (its per-series statistics)."""
        return [sid for sid in self.model._covariate_stats if sid != "*"]

    def forecast(self, data: Any, horizon: int | None, future: Any = None) -> dict:
        """Forecast rows with intervals, and the end of each history (for a plot);
        ``future``: the known-future covariates from `read_future`."""
        forecast = self.model.predict(horizon=horizon, data=data, future=future)
        # Enough history to see the forecast in context: the model's window, or 4 horizons.
        keep = max(4 * (horizon or self.model.config.horizon), self.model._meta["context_length"])
        history = [
            {"series": str(sid), "time": part["time"].tail(keep), "value": part[data.target]}
            for sid, part in data.groups()
        ]
        return {
            "levels": list(self.model.config.levels),
            "forecast": _records(forecast),
            "history": [
                {
                    "series": h["series"],
                    "time": [t.isoformat() for t in h["time"]],
                    "value": [_number(v) for v in h["value"].tail(keep)],
                }
                for h in history
            ],
        }


def _read_table(path: Path) -> Any:
    """An uploaded CSV or Parquet file as a DataFrame, with the one-line errors of
    ``forecast predict --file`` (read here first: the columns to pass depend on it)."""
    from rnnkit.data.timeseries import _read_table as read_table

    return read_table(path)


def _records(frame: Any) -> list[dict]:
    """A DataFrame as JSON-ready rows (times in ISO 8601, NaN as null)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


# ------------------------------------------------------------------------------- anomaly


MAX_DETECT_MAGNITUDE = 1e100


class ServedDetector(Served):
    app = "anomaly"

    def load(self) -> None:
        from rnnkit.apps.anomaly import AnomalyDetector

        self.model = AnomalyDetector.load(self.folder)

    def info(self) -> dict:
        return {**super().info(), "context_length": self.model.forecaster._meta["context_length"]}

    def detect(self, values: list[float]) -> dict:
        """Scores, flags and anomalous windows of one series."""
        if not values:
            raise UserError("values: empty; expected a series of numbers, oldest first")
        if len(values) > 1_000_000:
            raise UserError(f"{len(values):,} values; at most 1,000,000 per request")
        series = np.asarray(values, dtype=float)
        infinite = np.flatnonzero(np.isinf(series))
        if len(infinite):
            raise UserError(f"values, position {infinite[0]}: infinite; expected a number")
        # Beyond this the detector's squared deviations overflow float64: every score would
        # be NaN (null) and nothing flagged, silently.
        huge = np.flatnonzero(np.abs(series) > MAX_DETECT_MAGNITUDE)
        if len(huge):
            raise UserError(
                f"values, position {huge[0]}: {series[huge[0]]:g}; expected magnitudes up to "
                f"{MAX_DETECT_MAGNITUDE:g} (rescale the series)"
            )
        detection = self.model.detect(series)
        frame = detection.frame
        # No point stands out: the detector's threshold is infinite, which JSON cannot carry.
        finite = bool(np.isfinite(detection.threshold))
        return {
            "threshold": float(detection.threshold) if finite else None,
            "can_flag": finite,
            "score": [_number(v) for v in frame["score"]],
            "flagged": [int(i) for i in np.flatnonzero(frame["anomaly"].to_numpy())],
            "windows": [[int(a), int(b)] for a, b in detection.windows],
        }


# ----------------------------------------------------------------------------- sentiment


class ServedClassifier(Served):
    app = "sentiment"
    batch_method = "classify"

    def load(self) -> None:
        from rnnkit.apps.sentiment import SentimentClassifier

        self.model = SentimentClassifier.load(self.folder)
        self.gradient_model = None

    def info(self) -> dict:
        return {**super().info(), "classes": self.model.classes, "task": self.model.config.task}

    def classify(self, texts: list[str]) -> list[dict]:
        """Label, probability and every class's probability of each text (one batch)."""
        predictions = self.model.predict(texts)
        scores = self.model.predict_scores(texts) if self.model.config.task == "classify" else None
        return [
            {
                "text": p.text,
                "label": p.label,
                "probability": p.probability,
                "probabilities": (
                    dict(zip(self.model.classes, map(float, s), strict=True))
                    if scores is not None
                    else None
                ),
            }
            for p, s in zip(predictions, scores if scores is not None else texts, strict=True)
        ]

    def saliency(self, text: str) -> list[dict]:
        """Each token's signed saliency (integrated gradients; needs autograd, so a model
        served by onnxruntime explains with its PyTorch twin, loaded on first use)."""
        from rnnkit.apps.sentiment import SentimentClassifier, explain

        if self.runtime != "torch" and self.gradient_model is None:
            self.gradient_model = SentimentClassifier.load(self.folder)
        model = self.model if self.runtime == "torch" else self.gradient_model
        return [{"token": t.token, "weight": t.weight} for t in explain(model, text)]


# ---------------------------------------------------------------------- language model


class ServedLanguageModel(Served):
    app = "lm"

    def load(self) -> None:
        from rnnkit.apps.lm import LanguageModel

        self.model = LanguageModel.load(self.folder)

    def info(self) -> dict:
        return {**super().info(), "tokens": self.model.config.tokens}

    def check_prompt(self, prompt: str) -> None:
        """Raise the CLI's error for a prompt the model cannot read (an unseen character)."""
        self.check_text(prompt, "prompt")
        self.model.encode(prompt, what="prompt")

    def stream(self, prompt: str, max_tokens: int, **sampling: Any) -> Iterator[str]:
        return self.model.stream(prompt, max_tokens, **sampling)


# ---------------------------------------------------------------------------- translate


class ServedTranslator(Served):
    app = "translate"
    batch_method = "translate"

    def load(self) -> None:
        from rnnkit.apps.translate import Translator

        self.model = Translator.load(self.folder)

    def info(self) -> dict:
        return {**super().info(), "source": getattr(self.model.config, "source", None)}

    def translate(self, items: list[tuple[str, int]]) -> list[str]:
        """Translations of (sentence, beam width) items, one call per beam width."""
        results: dict[int, str] = {}
        for beam in sorted({beam for _, beam in items}):
            index = [i for i, (_, b) in enumerate(items) if b == beam]
            outputs = self.model.translate([items[i][0] for i in index], beam_width=beam)
            results.update(zip(index, outputs, strict=True))
        return [results[i] for i in range(len(items))]


# ------------------------------------------------------------------------------- speech


class ServedRecognizer(Served):
    app = "speech"

    def load(self) -> None:
        from rnnkit.apps.speech import SpeechRecognizer

        self.model = SpeechRecognizer.load(self.folder)

    def info(self) -> dict:
        return {**super().info(), "language_model": self.model.language_model is not None}

    def transcribe(
        self, path: Path, beam: int, words: str | None = None, one_word: bool = False
    ) -> dict:
        """The transcript of an audio file (any rate, mono or stereo) and its warnings;
        ``words``: decode under that word grammar (`rnnkit.apps.speech.grammar.word_list`)."""
        from rnnkit.apps.speech.grammar import word_list
        from rnnkit.data.speech import SAMPLE_RATE, load_speech

        grammar = word_list(words) if words is not None else None
        self.check_duration(path)
        audio, warnings = load_speech(path)
        text = self.model.transcribe([audio], beam_width=beam, words=grammar, one_word=one_word)[0]
        # The warnings name the file as the client called it, not its temporary copy.
        warnings = [w.replace(f"{path.parent}/", "") for w in warnings]
        return {"text": text, "seconds": len(audio) / SAMPLE_RATE, "warnings": warnings}

    def check_duration(self, path: Path) -> None:
        """Refuse audio longer than the limit from its header, before it is read and
        resampled (an upload within the byte limit can still hold hours at a low rate)."""
        import soundfile as sf

        from rnnkit.data.speech import check_sample_rate

        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError):
            return  # not audio: load_audio says so in its own words
        check_sample_rate(path, info.samplerate)  # 1 Hz: a duration, but the rate is the fault
        limit = self.settings.max_audio_s
        if info.frames / info.samplerate > limit:
            seconds = info.frames / info.samplerate
            raise OverLimit(
                f"{path.name}: {seconds:,.0f} s of audio ({info.frames:,} frames at "
                f"{info.samplerate:,} Hz); the limit is {limit:,.0f} s per upload"
            )


# ------------------------------------------------------------------------------ caption


class ServedCaptioner(Served):
    app = "caption"

    def load(self) -> None:
        from rnnkit.apps.caption import Captioner

        self.model = Captioner.load(self.folder)

    def info(self) -> dict:
        config = self.model.config
        return {**super().info(), "kind": config.kind, "attention": config.decoder == "attention"}

    def caption(self, path: Path, beam: int) -> dict:
        """Caption of an image (or a video: animated GIF/PNG/WebP) and, per word, the 8x8 map
        of where the decoder looked; ``image`` is what the model saw, as a PNG data URL."""
        from rnnkit.data import vision

        config = self.model.config
        if config.kind == "video":
            inputs = vision.load_video(path, frames=config.frames)[None]
            shown = inputs[0, len(inputs[0]) // 2]
        else:
            inputs = vision.load_image(path)[None]
            shown = inputs[0]
        caption = self.model.predict(inputs, beam_width=beam)[0]
        words = caption.split()
        maps: list = []
        if config.decoder == "attention":
            alphas = self.model.attention_maps(inputs, [caption])[0]  # [words + 1, L]
            side = int(round(alphas.shape[1] ** 0.5))
            if side * side == alphas.shape[1]:
                maps = alphas[: len(words)].reshape(len(words), side, side).round(4).tolist()
            else:  # the "frames" video encoder attends over time: one row of T cells
                maps = alphas[: len(words), None, :].round(4).tolist()
        return {"caption": caption, "words": words, "attention": maps, "image": _png_url(shown)}


def _png_url(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -------------------------------------------------------------------------------- music


class ServedMusic(Served):
    app = "music"

    def load(self) -> None:
        from rnnkit.apps.music import workflow

        self.model, self.config = workflow.load(self.folder)

    def info(self) -> dict:
        return {**super().info(), "kind": self.config.get("kind"), "data": self.config.get("data")}

    def compose(
        self,
        bars: float = 4,
        temperature: float = 1.0,
        top_p: float | None = None,
        tempo_bpm: float | None = None,
        key: str | None = None,
        seed: int = 0,
    ) -> dict:
        """A new piece as MIDI and (with fluidsynth and a soundfont) WAV, both base64."""
        from rnnkit.apps.music.piano_roll import PianoRollLM
        from rnnkit.apps.music.render import render_wav
        from rnnkit.apps.music.workflow import _check_sampling
        from rnnkit.data import music

        _check_sampling(temperature, None, top_p, 1, bars)
        if bars > self.settings.max_bars:
            raise UserError(f"bars {bars:g}: at most {self.settings.max_bars:g} per request")
        default_tempo = 90.0 if isinstance(self.model, PianoRollLM) else 110.0
        tempo = default_tempo if tempo_bpm is None else tempo_bpm
        if not 20 <= tempo <= 400:
            raise UserError(f"tempo {tempo:g}: expected 20 to 400 beats per minute")
        key_sharps = music.key_to_sharps(key) if key else None
        piece = self.model.generate(
            bars=bars,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            tempo_bpm=tempo,
            key_sharps=key_sharps,
        )
        with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as tmp:
            midi = music.write_midi(piece, Path(tmp) / "piece.mid")
            wav, message = render_wav(midi, Path(tmp) / "piece.wav")
            return {
                "notes": len(piece.notes),
                "bars": bars,
                "tempo_bpm": tempo,
                "midi": base64.b64encode(midi.read_bytes()).decode("ascii"),
                "wav": base64.b64encode(wav.read_bytes()).decode("ascii") if wav else None,
                "message": message if wav is None else "",
            }


# --------------------------------------------------------------------------- experiment


class ServedExperiment(Served):
    app = "experiment"

    def load(self) -> None:
        self.model = self.folder / "gradient_norms.png"
        if not self.model.exists():
            raise UserError(f"{self.model}: not found; expected an experiment's output folder")

    def network_owner(self) -> Any:
        return None

    def info(self) -> dict:
        return {**super().info(), "plots": ["gradient_norms"]}


SERVED: dict[str, type[Served]] = {
    cls.app: cls
    for cls in (
        ServedForecaster,
        ServedDetector,
        ServedClassifier,
        ServedLanguageModel,
        ServedTranslator,
        ServedRecognizer,
        ServedCaptioner,
        ServedMusic,
        ServedExperiment,
    )
}


def load_models(
    folders: list[str | Path], settings: Settings, runtime: str = "torch"
) -> dict[str, Served]:
    """Load every folder once; ``runtime="onnx"`` swaps in exported ONNX networks where a
    folder has one (`rnnkit.export.attach_onnx`), else the model runs on PyTorch.

    Returns:
        ``{name: Served}`` in the order of ``folders``.
    """
    if runtime not in ("torch", "onnx"):
        raise UserError(f"--runtime {runtime}: expected torch or onnx")
    attach = _onnx_attacher() if runtime == "onnx" else None
    models: dict[str, Served] = {}
    for folder in map(Path, folders):
        app = detect_app(folder)
        served = SERVED[app](model_name(folder, set(models)), folder, settings)
        served.load()
        owner = served.network_owner()
        if attach is not None and owner is not None and attach(owner, folder):
            served.runtime = "onnx"
        models[served.name] = served
    if not models:
        raise UserError("no model folders given; expected folders written by 'rnnkit <app> train'")
    return models


def _onnx_attacher():
    try:
        from rnnkit.export import attach_onnx
    except ImportError as error:
        raise UserError(
            f"--runtime onnx: ONNX export is not available here ({error}); use --runtime torch"
        ) from None
    return attach_onnx
