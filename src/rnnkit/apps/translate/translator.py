"""`Translator`: an estimator with fit / translate / evaluate / save / load.

>>> from rnnkit.data.parallel import load_bible_pairs, split_pairs
>>> splits = split_pairs(load_bible_pairs("en", max_words=20))   # doctest: +SKIP
>>> translator = Translator(TranslatorConfig(source_lang="en", target_lang="es"))
>>> history = translator.fit(splits["train"], splits["valid"], epochs=10)  # doctest: +SKIP
>>> translator.translate(["And God said, Let there be light."])     # doctest: +SKIP
['Y dijo Dios: Sea la luz.']
>>> translator = Translator.load(translator.save("models/en-es"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.apps.common import LengthBucketedBatches
from rnnkit.apps.translate.baselines import score_translations
from rnnkit.apps.translate.model import Seq2SeqAttention
from rnnkit.apps.translate.names import SourceWords, copy_rare_names
from rnnkit.apps.translate.placeholders import mask, mask_pair, unmask
from rnnkit.apps.translate.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SubwordTokenizer,
    train_subword_tokenizer,
)
from rnnkit.checks import check_fields
from rnnkit.core.decoding import beam_search, greedy_search
from rnnkit.data.parallel import SentencePair
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError
from rnnkit.files import write_text


@dataclass
class TranslatorConfig:
    """Everything needed to rebuild a translator (saved as config.json)."""

    source_lang: str = "en"
    target_lang: str = "es"
    vocab_size: int = 4000  # per language, BPE pieces learned on the training split
    embedding_size: int = 128
    hidden_size: int = 256
    attention: str = "additive"  # or "multiplicative"
    dropout: float = 0.2
    label_smoothing: float = 0.1
    batch_size: int = 64
    max_subwords: int = 100  # training pairs longer than this (either side) are skipped
    # Copy source names seen fewer than this many times in training into the translation
    # (see `rnnkit.apps.translate.names`); 0 is off. `fit` chooses it on the validation pairs.
    copy_names_below: int = 0
    # Placeholders (%s, {name}) travel as numbered markers and come back unchanged
    # (`rnnkit.apps.translate.placeholders`); False translates them as text.
    placeholders: bool = True

    def __post_init__(self) -> None:
        check_fields(
            self,
            choices={"attention": ("additive", "multiplicative")},
            positive_ints=("embedding_size", "hidden_size", "batch_size", "max_subwords"),
            fractions=("dropout", "label_smoothing"),
        )
        _check_int("TranslatorConfig copy_names_below", self.copy_names_below, minimum=0)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer of at least {minimum}, got {value!r}")


def as_pairs(pairs: Sequence, name: str = "pairs") -> list[SentencePair]:
    """SentencePairs, or (source, target) tuples of two strings, as SentencePairs."""
    if isinstance(pairs, (str, bytes)):
        raise TypeError(f"{name}: expected a list of (source, target) pairs, got a string")
    result = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, SentencePair):
            result.append(pair)
        elif (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and all(isinstance(text, str) for text in pair)
        ):
            result.append(SentencePair(pair[0], pair[1], group=f"pair{index}"))
        else:
            raise TypeError(
                f"{name}[{index}]: expected a SentencePair or a (source, target) tuple of two "
                f"strings, got {pair!r}"
            )
    return result


# Rarity thresholds tried on the validation pairs; 0 (no copying) competes too.
NAME_COPY_CHOICES = (0, 2, 5, 20, 100, 1_000_000)


class PairBatches(LengthBucketedBatches):
    """Padded batches of similar length, reshuffled every epoch (reproducibly).

    Yields ``(source (B, S), source_lengths (B,), target_in (B, T), target_out (B, T))``
    where ``target_in`` starts with ``<s>`` and ``target_out`` ends with ``</s>``.
    """

    def __init__(
        self,
        sources: list[list[int]],
        targets: list[list[int]],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ):
        super().__init__([len(s) for s in sources], batch_size, shuffle, seed, length_noise=2)
        self.sources, self.targets = sources, targets

    def _collate(self, indices: np.ndarray) -> tuple[torch.Tensor, ...]:
        sources = [self.sources[i] for i in indices]
        targets = [self.targets[i] for i in indices]
        source = _pad(sources)
        lengths = torch.tensor([len(s) for s in sources])
        target_in = _pad([[BOS_ID, *t] for t in targets])
        target_out = _pad([[*t, EOS_ID] for t in targets])
        return source, lengths, target_in, target_out


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


class Translator:
    """Subword tokenizers plus a `Seq2SeqAttention` model, for one direction."""

    def __init__(self, config: TranslatorConfig | None = None):
        self.config = config or TranslatorConfig()
        self.source_tokenizer: SubwordTokenizer | None = None
        self.target_tokenizer: SubwordTokenizer | None = None
        self.model: Seq2SeqAttention | None = None
        self.source_words: SourceWords | None = None  # for copying rare names
        self.device = "cpu"

    # ------------------------------------------------------------------ training

    def fit(
        self,
        train: Sequence[SentencePair],
        valid: Sequence[SentencePair] | None = None,
        epochs: int = 10,
        lr: float = 2e-3,
        seed: int = 0,
        device: str = "cpu",
        out_dir: str | None = None,
        progress: bool = False,
        schedule: str = "cosine",
        resume: bool = False,
        checkpoint_every: int | None = 200,
    ) -> list[dict]:
        """Learn the vocabularies and the model on ``train``; return per-epoch losses.

        Adam with a cosine learning-rate decay to 5% of ``lr`` (``schedule``: any of
        `rnnkit.engine.TrainConfig`'s); with ``valid``, the weights of the epoch with the
        lowest validation loss are kept, and the name-copying threshold
        (``config.copy_names_below``) with the best validation chrF is chosen (greedy decoding).

        ``out_dir``: where checkpoints (every ``checkpoint_every`` steps and at each epoch's
        end), logs and ``metrics.csv`` go. ``resume``: continue from the latest checkpoint
        there. The subword vocabularies are learned again from the same pairs (the same
        ones), so a resumed run ends with the weights of a run never interrupted; pass the
        same ``epochs`` as the killed run (the cosine schedule spans them).

        ``train`` and ``valid`` hold SentencePairs or (source, target) tuples of strings.
        """
        train = as_pairs(train, "train")
        valid = as_pairs(valid, "valid") if valid is not None else None
        _check_int("epochs", epochs, minimum=1)
        _check_int("TranslatorConfig vocab_size", self.config.vocab_size, minimum=1)
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        if not train:
            raise UserError("no training pairs; expected at least one source/target pair")
        seed_everything(seed)
        cfg = self.config
        # The model learns placeholders (%s, {name}) as numbered markers (`placeholders`).
        masked = self._masked(train)
        self.source_tokenizer = train_subword_tokenizer([p.source for p in masked], cfg.vocab_size)
        self.target_tokenizer = train_subword_tokenizer([p.target for p in masked], cfg.vocab_size)
        self.source_words = SourceWords.from_sentences(p.source for p in masked)
        self.model = self._build_model()
        self.device = device
        self.model.to(device)
        train_batches = self._batches(masked, shuffle=True, seed=seed)
        valid_batches = None
        if valid:
            valid_batches = self._batches(self._masked(valid), shuffle=False)
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
        history = trainer.fit(train_batches, valid_batches)
        if valid:
            self.choose_name_copying(valid)
        return history

    def choose_name_copying(
        self, valid: Sequence[SentencePair], choices: Sequence[int] = NAME_COPY_CHOICES
    ) -> dict[int, float]:
        """Set ``config.copy_names_below`` to the choice with the best chrF on ``valid``.

        Decodes ``valid`` once (greedy) and post-processes it with each threshold; returns
        the validation chrF of every choice. Never pass the test pairs here.
        """
        self._check_fitted()
        sources, placeholders = self._prepared([p.source for p in valid])
        plain = self._decode(sources, beam_width=1, length_penalty=1.0, batch_size=64)
        attention = self._word_attention(sources, plain)  # once for every choice
        scores = {}
        for below in choices:
            hypotheses = self._copy(plain, attention, below) if below else plain
            hypotheses = [unmask(h, f) for h, f in zip(hypotheses, placeholders, strict=True)]
            scores[below] = score_translations(hypotheses, [p.target for p in valid])["chrF"]
        self.config.copy_names_below = max(scores, key=lambda b: (scores[b], -b))
        return scores

    def _build_model(self) -> Seq2SeqAttention:
        cfg = self.config
        return Seq2SeqAttention(
            self.source_tokenizer.vocab_size,
            self.target_tokenizer.vocab_size,
            embedding_size=cfg.embedding_size,
            hidden_size=cfg.hidden_size,
            attention=cfg.attention,
            dropout=cfg.dropout,
        )

    def _masked(self, pairs: Sequence[SentencePair]) -> list[SentencePair]:
        """``pairs`` with their placeholders as numbered markers (`placeholders.mask_pair`)."""
        if not self.config.placeholders:
            return list(pairs)
        return [SentencePair(*mask_pair(p.source, p.target), p.group) for p in pairs]

    def _batches(self, pairs: Sequence[SentencePair], shuffle: bool, seed: int = 0) -> PairBatches:
        sources = self.source_tokenizer.encode_batch([p.source for p in pairs])
        targets = self.target_tokenizer.encode_batch([p.target for p in pairs])
        limit = self.config.max_subwords
        kept = [
            (s, t)
            for s, t in zip(sources, targets, strict=True)
            if 0 < len(s) <= limit and len(t) <= limit
        ]
        if not kept:
            raise UserError(f"every pair is empty or longer than {limit} subwords")
        return PairBatches(
            [s for s, _ in kept],
            [t for _, t in kept],
            self.config.batch_size,
            shuffle=shuffle,
            seed=seed,
        )

    def _loss_step(self, model: Seq2SeqAttention, batch: tuple) -> dict[str, torch.Tensor]:
        device = next(model.parameters()).device
        source, lengths, target_in, target_out = (t.to(device) for t in batch)
        logits = model(source, lengths, target_in)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target_out.reshape(-1),
            ignore_index=PAD_ID,
            label_smoothing=self.config.label_smoothing if model.training else 0.0,
        )
        return {"loss": loss}

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def translate(
        self,
        sentences: Sequence[str] | str,
        beam_width: int = 5,
        length_penalty: float = 1.0,
        batch_size: int = 64,
        copy_names: bool = True,
    ) -> list[str] | str:
        """Translate sentences; ``beam_width=1`` is greedy decoding.

        A single string gives a single translation (not one per character), as Hugging
        Face pipelines do; a list gives a list. Beams are ranked by log-probability /
        length ** ``length_penalty``. An empty sentence, or one of only spaces and tabs,
        translates to an empty string; a sentence longer than ``config.max_subwords``
        subwords is cut to that length (split long text into sentences first). With
        ``copy_names`` (and ``config.copy_names_below`` > 0), rare source names the decoder
        attended to replace the names it wrote (see `copy_names`). Placeholders (``%s``,
        ``{name}``) are translated as the markers the model learned and put back
        (`rnnkit.apps.translate.placeholders`).
        """
        if isinstance(sentences, str):
            return self.translate([sentences], beam_width, length_penalty, batch_size, copy_names)[
                0
            ]
        _check_int("beam_width", beam_width, minimum=1)
        _check_int("batch_size", batch_size, minimum=1)
        if not length_penalty >= 0:
            raise ValueError(
                f"length_penalty: expected 0 or a positive number, got {length_penalty!r}"
            )
        self._check_fitted()
        sentences, placeholders = self._prepared(sentences)
        translations = self._decode(sentences, beam_width, length_penalty, batch_size)
        below = self.config.copy_names_below
        if copy_names and below > 0 and self.source_words is not None:
            translations = self.copy_names(sentences, translations, below)
        return [unmask(t, found) for t, found in zip(translations, placeholders, strict=True)]

    def _prepared(self, sentences: Sequence[str]) -> tuple[list[str], list[list[str]]]:
        """The sentences as the model reads them, and the placeholders of each."""
        # Runs of spaces, tabs and no-break spaces become one space: the tokenizer counts
        # words between every two spaces, `str.split` does not, and the name copying
        # indexed past the sentence's words ("Open  the file" was an IndexError).
        sentences = [" ".join(s.split()) for s in sentences]
        # Placeholders become the numbered markers the model learned (`placeholders`).
        masked = [mask(s) if self.config.placeholders else (s, []) for s in sentences]
        return [text for text, _ in masked], [found for _, found in masked]

    def _decode(
        self, sentences: list[str], beam_width: int, length_penalty: float, batch_size: int
    ) -> list[str]:
        """Translations of prepared sentences (`_prepared`), markers and names as written."""
        self.model.eval()
        # Blank lines encode to nothing: the tokenizer would make a piece of the spaces alone,
        # and the decoder would invent a translation of it.
        encoded = [
            self.source_tokenizer.encode(s)[: self.config.max_subwords] if s.strip() else []
            for s in sentences
        ]
        # Translate in length order for little padding, then restore the input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            rows = [encoded[i] or [EOS_ID] for i in index]  # an empty line still decodes
            source = _pad(rows).to(self.device)
            lengths = torch.tensor([len(r) for r in rows], device=self.device)
            state = self.model.start_state(source, lengths)
            bos = torch.full((len(rows),), BOS_ID, dtype=torch.long, device=self.device)
            max_len = 2 * int(lengths.max()) + 10
            if beam_width <= 1:
                ids = greedy_search(self.model.step, state, bos, EOS_ID, max_len)
            else:
                beams = beam_search(
                    self.model.step,
                    state,
                    bos,
                    EOS_ID,
                    beam_width=beam_width,
                    max_len=max_len,
                    length_penalty=length_penalty,
                )
                ids = [b[0].tokens if b else [] for b in beams]
            for i, tokens in zip(index, ids, strict=True):
                results[i] = self.target_tokenizer.decode(tokens) if encoded[i] else ""
        return [results[i] for i in range(len(sentences))]

    def copy_names(
        self, sentences: Sequence[str], translations: Sequence[str], below: int
    ) -> list[str]:
        """Put rare source names (seen < ``below`` times in training) into the translations.

        The translations are fed back through the decoder (teacher forcing) to read where it
        attended while writing each word; see `rnnkit.apps.translate.names`.
        """
        return self._copy(translations, self._word_attention(sentences, translations), below)

    def _copy(self, translations: Sequence[str], attention: list, below: int) -> list[str]:
        if self.source_words is None:
            raise UserError("this translator has no source word counts; train it again")
        return [
            copy_rare_names(*found, self.source_words, below) if found else text
            for text, found in zip(translations, attention, strict=True)
        ]

    @torch.no_grad()
    def _word_attention(self, sentences: Sequence[str], translations: Sequence[str]) -> list:
        """Per pair: the arguments of `copy_rare_names` up to ``words`` (None: nothing to do)."""
        self._check_fitted()
        self.model.eval()
        limit = self.config.max_subwords
        sources = self.source_tokenizer.tokenizer.encode_batch(list(sentences))
        outputs = self.target_tokenizer.tokenizer.encode_batch(list(translations))
        found = []
        for i, (source, output) in enumerate(zip(sources, outputs, strict=True)):
            source_ids, output_ids = source.ids[:limit], output.ids[: 2 * limit + 10]
            if not source_ids or not output_ids:
                found.append(None)
                continue
            weights = self.model.attention_weights(
                torch.tensor([source_ids], device=self.device),
                torch.tensor([len(source_ids)], device=self.device),
                torch.tensor([[BOS_ID, *output_ids]], device=self.device),
            )[0].cpu()  # row t: attention while writing output subword t
            found.append(
                (
                    sentences[i].split(),
                    source.word_ids[:limit],
                    translations[i],
                    output.word_ids[: len(output_ids)],
                    weights,
                )
            )
        return found

    @torch.no_grad()
    def attention_map(self, sentence: str) -> tuple[list[str], list[str], torch.Tensor]:
        """Greedy translation of one sentence with its attention weights.

        Returns the source subwords, the output subwords and a (target, source) weight matrix
        whose rows sum to 1: where the decoder looked while writing each subword. The
        subwords are what the model reads and writes: placeholders appear as their markers.
        """
        self._check_fitted()
        self.model.eval()
        [sentence], _ = self._prepared([sentence])
        ids = self.source_tokenizer.encode(sentence)[: self.config.max_subwords] or [EOS_ID]
        source = torch.tensor([ids], device=self.device)
        encoded, state = self.model.encode(source, torch.tensor([len(ids)], device=self.device))
        token = torch.tensor([BOS_ID], device=self.device)
        output, rows = [], []
        for _ in range(2 * len(ids) + 10):  # the same limit as `translate`
            logits, state, weights = self.model.decode_step(token, state, encoded)
            token = logits.argmax(dim=1)
            if int(token) == EOS_ID:
                break
            output.append(int(token))
            rows.append(weights[0].cpu())
        source_pieces = [self.source_tokenizer.tokenizer.id_to_token(i) for i in ids]
        target_pieces = [self.target_tokenizer.tokenizer.id_to_token(i) for i in output]
        weights = torch.stack(rows) if rows else torch.zeros(0, len(ids))
        return source_pieces, target_pieces, weights

    def evaluate(
        self, pairs: Sequence[SentencePair], beam_width: int = 5, length_penalty: float = 1.0
    ) -> tuple[dict[str, float], list[str]]:
        """BLEU and chrF of the translations of ``pairs``; also return the translations."""
        pairs = as_pairs(pairs)
        hypotheses = self.translate([p.source for p in pairs], beam_width, length_penalty)
        return score_translations(hypotheses, [p.target for p in pairs]), hypotheses

    # ------------------------------------------------------------------ files

    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.safetensors, config.json and the two tokenizers into ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        save_model(directory, self.model, asdict(self.config))
        write_text(directory / "source_tokenizer.json", self.source_tokenizer.to_str())
        write_text(directory / "target_tokenizer.json", self.target_tokenizer.to_str())
        if self.source_words is not None:
            words = json.dumps(self.source_words.to_dict(), ensure_ascii=False)
            write_text(directory / "source_words.json", words + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> Translator:
        """Read a folder written by `save`."""
        directory = Path(directory)
        state, config = load_model_state(directory)
        # a model saved before placeholders had markers learned them as text
        config.setdefault("placeholders", False)
        try:
            translator = cls(TranslatorConfig(**config))
        except TypeError:
            raise UserError(f"{directory / 'config.json'}: not a translator's config") from None
        for name in ("source_tokenizer.json", "target_tokenizer.json"):
            if not (directory / name).exists():
                raise UserError(f"{directory / name}: not found; expected a translator folder")
        translator.source_tokenizer = SubwordTokenizer.from_str(
            (directory / "source_tokenizer.json").read_text(encoding="utf-8")
        )
        translator.target_tokenizer = SubwordTokenizer.from_str(
            (directory / "target_tokenizer.json").read_text(encoding="utf-8")
        )
        words_path = directory / "source_words.json"  # absent in older folders: no copying
        if words_path.exists():
            data = json.loads(words_path.read_text(encoding="utf-8"))
            translator.source_words = SourceWords.from_dict(data)
        translator.model = translator._build_model()
        translator.model.load_state_dict(state)
        translator.model.to(device).eval()
        translator.device = device
        return translator

    def _check_fitted(self) -> None:
        if self.model is None:
            raise UserError("the translator is not trained; call fit() or Translator.load()")
