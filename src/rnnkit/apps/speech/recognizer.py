"""`SpeechRecognizer`: an estimator with fit / transcribe / evaluate / save / load.

>>> from rnnkit.data.speech import generate_texts, synthetic_speech
>>> recognizer = SpeechRecognizer(RecognizerConfig(hidden_size=128))
>>> history = recognizer.fit(synthetic_speech("train", 3000), epochs=12)  # doctest: +SKIP
>>> lm = recognizer.fit_language_model(generate_texts(20000, seed=0))     # doctest: +SKIP
>>> rates = recognizer.choose_fusion(synthetic_speech("dev", 90))  # dev voices # doctest: +SKIP
>>> recognizer.transcribe([audio_at_16khz], beam_width=8)                 # doctest: +SKIP
['seven of clubs']
>>> test = synthetic_speech("test", 90)                                   # doctest: +SKIP
>>> espeak = [u for u in test if u.speaker.startswith("espeak")]          # doctest: +SKIP
>>> recognizer.evaluate(espeak, beam_width=8)[0]  # as measured      # doctest: +SKIP
{'CER': 0.036, 'WER': 0.052}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.text import char_error_rate, word_error_rate

from rnnkit.apps.common import LengthBucketedBatches
from rnnkit.apps.lm import LanguageModel, LMConfig
from rnnkit.apps.speech.features import LogMel, spec_augment, warp_frequency
from rnnkit.apps.speech.grammar import decode_words
from rnnkit.apps.speech.lm_fusion import CharLMScorer, language_model_text
from rnnkit.apps.speech.model import (
    ALPHABET,
    BLANK,
    CTCAcousticModel,
    ctc_beam_decode,
    ctc_greedy_decode,
    text_to_ids,
)
from rnnkit.data.speech import SILENT_PEAK, Utterance
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError


@dataclass
class RecognizerConfig:
    """Everything needed to rebuild a recognizer (saved as config.json)."""

    n_mels: int = 64
    f_max: float | None = None  # top of the mel filters in Hz (4000: telephone band); None: 8000
    hidden_size: int = 128
    num_layers: int = 2
    cell: str = "gru"  # or "lstm"
    channels: int = 32
    dropout: float = 0.1
    batch_size: int = 32
    spec_augment: bool = True
    freq_warp: float = 0.0  # vocal-tract-length perturbation in training: mel axis * 1 +- this
    # Shallow fusion of the character LM in beam search (0: off); chosen on validation voices.
    lm_weight: float = 0.0
    lm_bonus: float = 0.0


# Shallow-fusion settings tried on the validation voices: (LM weight, bonus per character).
FUSION_WEIGHTS = (0.5, 0.8, 1.2, 1.6, 2.0)
FUSION_BONUSES = (0.0, 1.0, 2.0)
FUSION_CHOICES = [(0.0, 0.0)] + [(w, b) for w in FUSION_WEIGHTS for b in FUSION_BONUSES]


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Character and word error rates over a corpus (edit distance / reference length)."""
    return {
        "CER": float(char_error_rate(list(hypotheses), list(references))),
        "WER": float(word_error_rate(list(hypotheses), list(references))),
    }


class FeatureBatches(LengthBucketedBatches):
    """Padded batches of log-mel features with their character targets; reshuffled per epoch.

    Yields ``(features (B, n_mels, T), lengths (B,), targets (sum of target lengths,),
    target_lengths (B,))``: the flat target form `torch.nn.functional.ctc_loss` takes.

    An example may be a list of variants (e.g. the same recording at three speeds): each epoch
    serves one of them, drawn from ``seed``, the epoch and the example's index, so a resumed
    run serves the same ones.
    """

    def __init__(
        self,
        features: Sequence[torch.Tensor | Sequence[torch.Tensor]],
        targets: list[list[int]],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.variants = [[f] if isinstance(f, torch.Tensor) else list(f) for f in features]
        frames = [v[0].shape[1] for v in self.variants]
        super().__init__(frames, batch_size, shuffle, seed, length_noise=20)
        self.targets = targets

    def _collate(self, indices: np.ndarray) -> tuple[torch.Tensor, ...]:
        # self.epoch was advanced when this epoch's batches were drawn.
        rng = np.random.default_rng([self.seed, self.epoch, int(indices[0])])
        feats = [
            self.variants[i][rng.integers(len(self.variants[i]))]
            if self.shuffle
            else self.variants[i][0]
            for i in indices
        ]
        targets = [self.targets[i] for i in indices]
        return (
            pad_features(feats),
            torch.tensor([f.shape[1] for f in feats]),
            torch.tensor([c for t in targets for c in t], dtype=torch.long),
            torch.tensor([len(t) for t in targets]),
        )


def pad_features(features: list[torch.Tensor]) -> torch.Tensor:
    """(n_mels, T_i) tensors -> (B, n_mels, max T), zero padded (zero is the mean after CMVN)."""
    out = torch.zeros(len(features), features[0].shape[0], max(f.shape[1] for f in features))
    for i, f in enumerate(features):
        out[i, :, : f.shape[1]] = f
    return out


class SpeechRecognizer:
    """Log-mel features + `CTCAcousticModel`, trained with CTC on characters."""

    def __init__(self, config: RecognizerConfig | None = None):
        self.config = config or RecognizerConfig()
        self.features = LogMel(n_mels=self.config.n_mels, f_max=self.config.f_max)
        self.model: CTCAcousticModel | None = None
        self.language_model: LanguageModel | None = None  # for shallow fusion
        self.device = "cpu"

    def featurize(self, audio: np.ndarray) -> torch.Tensor:
        """Mono 16 kHz audio -> normalized log-mel (n_mels, frames).

        Each mel band is scaled to zero mean and unit variance over the utterance (cepstral
        mean and variance normalization), which removes loudness and channel differences.
        """
        samples = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if samples.numel() < self.features.n_fft:  # shorter than one window: pad with silence
            samples = F.pad(samples, (0, self.features.n_fft - samples.numel()))
        with torch.no_grad():
            mel = self.features(samples[None])[0]
        return (mel - mel.mean(1, keepdim=True)) / (mel.std(1, keepdim=True) + 1e-5)

    # ------------------------------------------------------------------ training

    def fit(
        self,
        train: Sequence[Utterance],
        valid: Sequence[Utterance] | None = None,
        epochs: int = 30,
        lr: float = 2e-3,
        seed: int = 0,
        device: str = "cpu",
        out_dir: str | None = None,
        progress: bool = False,
        schedule: str = "cosine",
        resume: bool = False,
        checkpoint_every: int | None = 200,
    ) -> list[dict]:
        """Train on ``train`` utterances; return per-epoch losses (CTC, per utterance).

        Adam with a cosine learning-rate decay to 5% of ``lr`` (``schedule``: any of
        `rnnkit.engine.TrainConfig`'s); with ``valid``, the best epoch's weights are kept.

        ``out_dir``: where checkpoints (every ``checkpoint_every`` steps and at each epoch's
        end), logs and ``metrics.csv`` go. ``resume``: continue from the latest checkpoint
        there; the features are computed again from the same audio, so a resumed run ends
        with the weights of a run never interrupted. Pass the same ``epochs`` as the killed
        run (the cosine schedule spans them).
        """
        if not train:
            raise UserError("no training utterances; expected audio with transcripts")
        return self.fit_features(
            [self.featurize(u.audio) for u in train],
            [u.text for u in train],
            ([self.featurize(u.audio) for u in valid], [u.text for u in valid]) if valid else None,
            epochs=epochs,
            lr=lr,
            seed=seed,
            device=device,
            out_dir=out_dir,
            progress=progress,
            schedule=schedule,
            resume=resume,
            checkpoint_every=checkpoint_every,
        )

    def fit_features(
        self,
        features: Sequence[torch.Tensor | Sequence[torch.Tensor]],
        texts: Sequence[str],
        valid: tuple[Sequence[torch.Tensor], Sequence[str]] | None = None,
        epochs: int = 30,
        lr: float = 2e-3,
        seed: int = 0,
        device: str = "cpu",
        out_dir: str | None = None,
        progress: bool = False,
        schedule: str = "cosine",
        resume: bool = False,
        checkpoint_every: int | None = 200,
    ) -> list[dict]:
        """`fit` on features already computed by `featurize` (reused across trainings).

        Args:
            features: per training utterance, its (n_mels, frames) features, or a list of
                variants of them (speed-perturbed copies...), one of which each epoch serves.
            texts: the transcripts.
            valid: (features, texts) of validation utterances; the best epoch is kept.
        """
        seed_everything(seed)
        self.model = self._build_model()
        self.device = device
        self.model.to(device)
        cfg = self.config
        targets = [text_to_ids(t) for t in texts]
        train_batches = FeatureBatches(features, targets, cfg.batch_size, True, seed)
        valid_batches = None
        if valid:
            valid_targets = [text_to_ids(t) for t in valid[1]]
            valid_batches = FeatureBatches(valid[0], valid_targets, cfg.batch_size, False)
        trainer = Trainer(
            self.model,
            self._loss_step,
            TrainConfig(
                epochs=epochs,
                lr=lr,
                seed=seed,
                device=device,
                out_dir=out_dir,
                progress=progress,
                schedule=schedule,
                min_lr_ratio=0.05,
                checkpoint_every=checkpoint_every,
                resume=resume,
            ),
        )
        return trainer.fit(train_batches, valid_batches)

    def _build_model(self) -> CTCAcousticModel:
        cfg = self.config
        return CTCAcousticModel(
            cfg.n_mels,
            len(ALPHABET) + 1,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.cell,
            cfg.channels,
            cfg.dropout,
        )

    def _loss_step(self, model: CTCAcousticModel, batch: tuple) -> dict[str, torch.Tensor]:
        device = next(model.parameters()).device
        features, lengths, targets, target_lengths = (t.to(device) for t in batch)
        if model.training and self.config.freq_warp:
            features = warp_frequency(features, self.config.freq_warp)
        if model.training and self.config.spec_augment:
            features = spec_augment(features)
        log_probs, out_lengths = model(features, lengths)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            out_lengths,
            target_lengths,
            blank=BLANK,
            zero_infinity=True,
        )
        return {"loss": loss}

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def transcribe(
        self,
        audios: Sequence[np.ndarray],
        beam_width: int = 1,
        batch_size: int = 32,
        use_lm: bool = True,
        fusion: tuple[float, float] | None = None,
        words: Sequence[str] | None = None,
        one_word: bool = False,
        word_bonus: float = 0.0,
    ) -> list[str]:
        """Texts of mono 16 kHz recordings; ``beam_width > 1`` uses CTC prefix beam search.

        With ``use_lm`` and a language model (`fit_language_model`), beam search adds
        ``config.lm_weight`` times its log-probability and ``config.lm_bonus`` per character;
        ``fusion=(weight, bonus)`` overrides them.

        With ``words`` (e.g. `rnnkit.apps.speech.grammar.word_list` ``("digits")``) the text
        is a sequence of those words (`grammar.best_word_sequence`, ``word_bonus`` per word),
        or with ``one_word`` exactly one of them (`grammar.best_word`): the task knowledge a
        grammar gives, which is what a small vocabulary needs most on voices never heard.
        The beam and the language model do not apply then.
        """
        self._check_fitted()
        if words is not None:
            posteriors = self.posteriors([self.featurize(a) for a in audios], batch_size)
            texts = [decode_words(lp, words, one_word, word_bonus) for lp in posteriors]
            return self._silent_says_nothing(texts, audios)
        weight, bonus = fusion or (self.config.lm_weight, self.config.lm_bonus)
        scorer = None
        if use_lm and self.language_model is not None and weight and beam_width > 1:
            scorer = CharLMScorer(self.language_model)
        self.model.eval()
        texts = []
        for start in range(0, len(audios), batch_size):
            feats = [self.featurize(a) for a in audios[start : start + batch_size]]
            lengths = torch.tensor([f.shape[1] for f in feats], device=self.device)
            log_probs, out_lengths = self.model(pad_features(feats).to(self.device), lengths)
            if beam_width > 1:
                texts += ctc_beam_decode(
                    log_probs, out_lengths, beam_width, lm=scorer, lm_weight=weight, lm_bonus=bonus
                )
            else:
                texts += ctc_greedy_decode(log_probs, out_lengths)
        return self._silent_says_nothing(texts, audios)

    @staticmethod
    def _silent_says_nothing(texts: list[str], audios: Sequence[np.ndarray]) -> list[str]:
        """Silence has nothing to say: no speech, no text (a grammar would name a word)."""
        return [
            t if np.abs(a).max(initial=0.0) >= SILENT_PEAK else ""
            for t, a in zip(texts, audios, strict=True)
        ]

    @torch.no_grad()
    def posteriors(
        self, features: Sequence[torch.Tensor], batch_size: int = 32
    ) -> list[torch.Tensor]:
        """Per-frame character log-probabilities, one (frames', characters + blank) tensor per
        utterance, from features made by `featurize`; what every decoder reads."""
        self._check_fitted()
        self.model.eval()
        out = []
        order = sorted(range(len(features)), key=lambda i: features[i].shape[1])
        results: dict[int, torch.Tensor] = {}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            feats = [features[i] for i in chunk]
            lengths = torch.tensor([f.shape[1] for f in feats], device=self.device)
            log_probs, out_lengths = self.model(pad_features(feats).to(self.device), lengths)
            for row, i in enumerate(chunk):
                results[i] = log_probs[row, : out_lengths[row]].cpu()
        out = [results[i] for i in range(len(features))]
        return out

    def evaluate(
        self, utterances: Sequence[Utterance], beam_width: int = 1, use_lm: bool = True
    ) -> tuple[dict[str, float], list[str]]:
        """CER and WER on ``utterances``; also return the transcripts."""
        hypotheses = self.transcribe([u.audio for u in utterances], beam_width, use_lm=use_lm)
        return error_rates(hypotheses, [u.text for u in utterances]), hypotheses

    # ------------------------------------------------------------------ language model

    def fit_language_model(
        self, sentences: Sequence[str], config: LMConfig | None = None
    ) -> LanguageModel:
        """Train the character LM used in beam search on ``sentences`` (never test text).

        Sentences are normalized like transcripts and written one per line.
        """
        from rnnkit.data.speech import normalize_transcript

        text = language_model_text([normalize_transcript(s) for s in sentences])
        config = config or LMConfig(hidden_size=128, embedding_dim=32, bptt=64, epochs=2)
        self.language_model = LanguageModel(config).fit(text)
        return self.language_model

    def choose_fusion(
        self,
        valid: Sequence[Utterance],
        beam_width: int = 8,
        choices: Sequence[tuple[float, float]] = FUSION_CHOICES,
    ) -> list[dict]:
        """Set ``config.lm_weight`` and ``lm_bonus`` to the choice with the lowest WER on
        ``valid`` (ties: lower CER, then the smaller weight); return every choice's rates."""
        self._check_fitted()
        if self.language_model is None:
            raise UserError("no language model; call fit_language_model() first")
        audios, references = [u.audio for u in valid], [u.text for u in valid]
        rows = []
        for weight, bonus in choices:
            hypotheses = self.transcribe(audios, beam_width, fusion=(weight, bonus))
            rows.append(
                {"lm_weight": weight, "lm_bonus": bonus, **error_rates(hypotheses, references)}
            )
        best = min(rows, key=lambda r: (round(r["WER"], 6), round(r["CER"], 6), r["lm_weight"]))
        self.config.lm_weight, self.config.lm_bonus = best["lm_weight"], best["lm_bonus"]
        return rows

    # ------------------------------------------------------------------ files

    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.safetensors and config.json; the language model goes to ``lm/``."""
        self._check_fitted()
        directory = save_model(directory, self.model, asdict(self.config))
        if self.language_model is not None:
            self.language_model.save(Path(directory) / "lm")
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> SpeechRecognizer:
        state, config = load_model_state(directory)
        try:
            recognizer = cls(RecognizerConfig(**config))
        except TypeError:
            raise UserError(
                f"{Path(directory) / 'config.json'}: not a speech model's config"
            ) from None
        recognizer.model = recognizer._build_model()
        recognizer.model.load_state_dict(state)
        recognizer.model.to(device).eval()
        recognizer.device = device
        if (Path(directory) / "lm" / "config.json").exists():
            recognizer.language_model = LanguageModel.load(Path(directory) / "lm", device=device)
        return recognizer

    def _check_fitted(self) -> None:
        if self.model is None:
            raise UserError("the recognizer is not trained; call fit() or SpeechRecognizer.load()")
