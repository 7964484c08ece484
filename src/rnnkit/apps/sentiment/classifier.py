"""`SentimentClassifier`: a scikit-learn-style estimator (fit / predict / save / load) over text.

Example:
    >>> texts = ["a gem", "a joy", "a mess", "a bore"] * 16
    >>> labels = ["positive", "positive", "negative", "negative"] * 16
    >>> clf = SentimentClassifier(SentimentConfig(epochs=6)).fit(texts, labels)
    >>> clf.predict(["an unexpected gem", "what a bore"])  # doctest: +ELLIPSIS
    [Prediction(text='an unexpected gem', label='positive', probability=...),
     Prediction(text='what a bore', label='negative', probability=...)]
    >>> folder = clf.save("models/sentiment")
    >>> clf = SentimentClassifier.load("models/sentiment")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from rnnkit.apps.sentiment.model import SentimentNet
from rnnkit.checks import check_fields
from rnnkit.data.text import train_tokenizer
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError

MAX_WORDS = 100  # longer texts are cut: sentences and short reviews fit
MAX_PIECES = 6  # subword pieces kept per word


@dataclass
class SentimentConfig:
    """Everything that defines a sentiment model and its training (saved in config.json).

    ``tokens``: ``word``, ``subword`` or ``word+subword`` (each word's vector plus the mean of
    its BPE pieces). ``task``: ``classify`` (labels) or ``regress`` (a numeric rating).
    ``rating_head``: set by `fit` when a classifier also gets ratings: a second output learns
    the rating (weighted by ``rating_weight``), which makes a better classifier of polarity.
    ``ensemble``: networks trained with seeds ``seed, seed + 1, ...``; their probabilities
    are averaged (3 gain about 2 points of accuracy on the movie snippets).
    ``class_weight``: ``balanced`` weighs each class's loss inversely to its share of the
    training labels (n / (classes * n_class), as scikit-learn's) and keeps the epoch of the
    best class-weighted validation accuracy; ``none`` weighs every text alike; ``auto``
    (default) is ``balanced`` when the commonest class has at least `IMBALANCE` times the
    examples of the rarest, else ``none`` (a 91/9 file otherwise trains a model that only
    ever answers the commonest class).
    """

    tokens: str = "word+subword"
    vocab_size: int = 20000
    subword_vocab_size: int = 4000
    embedding_dim: int = 128
    hidden_size: int = 128
    cell: str = "lstm"
    pooling: str = "max"
    dropout: float = 0.5
    embedding_dropout: float = 0.2
    recurrent_dropout: float = 0.0
    task: str = "classify"
    rating_head: bool = False
    rating_weight: float = 1.0
    ensemble: int = 1
    epochs: int = 6
    lr: float = 2e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    class_weight: str = "auto"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        # A bad choice fails here with the choices listed, not as a KeyError deep in the model.
        check_fields(
            self,
            choices={
                "tokens": ("word", "subword", "word+subword"),
                "cell": ("lstm", "gru"),
                "pooling": ("max", "attention", "max+attention"),
                "task": ("classify", "regress"),
                "class_weight": ("auto", "balanced", "none"),
            },
            positive_ints=(
                "vocab_size",
                "subword_vocab_size",
                "embedding_dim",
                "hidden_size",
                "ensemble",
                "epochs",
                "batch_size",
            ),
            fractions=("dropout", "embedding_dropout", "recurrent_dropout"),
            positive_numbers=("lr",),
        )


@dataclass
class Prediction:
    """One prediction: the label and its probability (for regression: the rating, 1.0)."""

    text: str
    label: str | int | float
    probability: float


class SentimentClassifier:
    """Train on texts and labels (or ratings), predict labels with probabilities, explain.

    Tokenizers are trained on the training texts only and saved beside the model.
    """

    def __init__(self, config: SentimentConfig | None = None):
        self.config = config or SentimentConfig()
        self.classes: list[str] | list[int] = []  # bools or ints when every label was one
        self.word_tokenizer = None
        self.subword_tokenizer = None
        self.model: nn.ModuleList | None = None  # the ensemble's networks (usually one)
        self.history: list[dict] = []
        # per class, in ``classes`` order, when the loss weighs classes (``class_weight``)
        self.class_weights: list[float] | None = None

    # ---------------------------------------------------------------- training
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence,
        val_texts: Sequence[str] | None = None,
        val_labels: Sequence | None = None,
        progress: bool = False,
        ratings: Sequence[float] | None = None,
        val_ratings: Sequence[float] | None = None,
        out_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> SentimentClassifier:
        """Train tokenizers and the network. Labels are class names (or ratings to regress).

        Class names are strings, or ints when every label is an int (`predict` then gives
        ints back); anything else is turned into a string. ``val_texts`` and ``val_labels``
        go together; each list must be as long as its texts.

        ``ratings`` (optional, with ``task="classify"``): a numeric rating per text (e.g. the
        mean human rating -4..4) learned by an auxiliary output besides the labels.

        ``out_dir``: each member of the ensemble writes its checkpoints (every epoch), logs
        and ``metrics.csv`` into ``out_dir/member-N``. ``resume``: continue each member from
        its latest checkpoint there (members already finished are only reloaded). The
        tokenizers are trained again on the same texts, which gives the same vocabularies,
        so a resumed run ends with the weights of a run never interrupted.
        """
        config = self.config
        texts, labels = _as_list(texts, "texts"), _as_list(labels, "labels")
        if (val_texts is None) != (val_labels is None):
            raise ValueError(
                "val_texts and val_labels go together: give both (validation) or neither"
            )
        _check_lengths(texts, labels=labels, ratings=ratings)
        if val_texts is not None:
            val_texts, val_labels = _as_list(val_texts, "val_texts"), list(val_labels)
            _check_lengths(val_texts, "val_texts", val_labels=val_labels, val_ratings=val_ratings)
        config.rating_head = ratings is not None and config.task == "classify"
        seed_everything(config.seed)
        texts = [str(t) for t in texts]
        if not texts:
            raise UserError("no training texts")
        if config.task == "classify":
            self.classes = _class_names(labels)
            if len(self.classes) < 2:
                raise UserError(f"need at least two classes to classify, got {self.classes}")
            self.class_weights = class_weights(self._targets(labels), len(self.classes), config)
        uses_words = config.tokens in ("word", "word+subword")
        uses_pieces = config.tokens in ("subword", "word+subword")
        # A word-level tokenizer always fixes the word boundaries; with tokens=subword the
        # word ids are all [UNK] and the pieces carry the meaning.
        self.word_tokenizer = train_tokenizer(
            texts if uses_words else [""], "word", config.vocab_size
        )
        self.subword_tokenizer = (
            train_tokenizer(texts, "subword", config.subword_vocab_size) if uses_pieces else None
        )
        train = self._loader(texts, labels, shuffle=True, ratings=ratings)
        val = None
        if val_texts is not None:
            val = self._loader(
                val_texts, val_labels, ratings=val_ratings if config.rating_head else None
            )
        classify = config.task == "classify"
        members, self.history = [], []
        for member in range(config.ensemble):
            # Members differ only by seed: initial weights, data order, dropout masks.
            seed = config.seed + member
            seed_everything(seed)
            trainer = Trainer(
                self._build_model(),
                self._step,
                TrainConfig(
                    epochs=config.epochs,
                    lr=config.lr,
                    weight_decay=config.weight_decay,
                    grad_clip=1.0,
                    seed=seed,
                    device=config.device,
                    progress=progress,
                    # Short sentences overfit within a few epochs: keep the best epoch.
                    monitor=self._monitor(),
                    mode="max" if classify else "min",
                    restore_best=True,
                    out_dir=str(Path(out_dir) / f"member-{member + 1}") if out_dir else None,
                    resume=resume,
                ),
            )
            history = trainer.fit(train, val)
            self.history += [{"member": member + 1, **row} for row in history]
            members.append(trainer.model.eval())
        self.model = nn.ModuleList(members).eval()
        return self

    def _build_model(self) -> SentimentNet:
        config = self.config
        outputs = len(self.classes) + int(config.rating_head) if config.task == "classify" else 1
        pieces = self.subword_tokenizer.get_vocab_size() if self.subword_tokenizer else 0
        return SentimentNet(
            vocab_size=self.word_tokenizer.get_vocab_size(),
            num_outputs=outputs,
            subword_vocab_size=pieces,
            embedding_dim=config.embedding_dim,
            hidden_size=config.hidden_size,
            cell=config.cell,
            pooling=config.pooling,
            dropout=config.dropout,
            embedding_dropout=config.embedding_dropout,
            recurrent_dropout=config.recurrent_dropout,
        )

    def _step(self, model: SentimentNet, batch: dict) -> dict:
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        scores, _ = model(batch["tokens"], batch["lengths"], batch["pieces"])
        if self.config.task == "regress":
            loss = torch.nn.functional.mse_loss(scores.squeeze(-1), batch["targets"].float())
            return {"loss": loss}
        logits = self._class_logits(scores)
        weights = None
        if self.class_weights is not None:
            weights = torch.tensor(self.class_weights, dtype=logits.dtype, device=device)
        loss = torch.nn.functional.cross_entropy(logits, batch["targets"], weight=weights)
        right = (logits.argmax(-1) == batch["targets"]).float()
        metrics = {"accuracy": right.mean()}
        if weights is not None:
            # each text counted with its class's weight: the mean recall of the classes
            # when classes are balanced by the weights (what the best epoch is chosen by)
            counted = weights[batch["targets"]]
            metrics["balanced_accuracy"] = (right * counted).sum() / counted.sum()
        if self.config.rating_head:
            # Ratings (-4..4) halved: an error of 1 on the scale costs about what CE does.
            rating_loss = torch.nn.functional.mse_loss(scores[:, -1], batch["ratings"] / 2)
            return {
                "loss": loss + self.config.rating_weight * rating_loss,
                **metrics,
                "rating_mse": rating_loss.detach() * 4,
            }
        return {"loss": loss, **metrics}

    def _monitor(self) -> str:
        """The validation metric whose best epoch each network keeps."""
        if self.config.task == "regress":
            return "val_loss"
        return "val_balanced_accuracy" if self.class_weights is not None else "val_accuracy"

    def _class_logits(self, scores: torch.Tensor) -> torch.Tensor:
        """The class scores [N, classes] (without the rating output, if there is one)."""
        return scores[:, : len(self.classes)]

    # ---------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str]) -> list[tuple[list[int], list[list[int]], list[str]]]:
        """Each text as (word ids, piece ids per word, word strings), at most MAX_WORDS words."""
        words = self.word_tokenizer.encode_batch([str(t) for t in texts])
        if self.subword_tokenizer is not None:
            pieces = self.subword_tokenizer.encode_batch([str(t) for t in texts])
        encoded = []
        for index, word_encoding in enumerate(words):
            ids = word_encoding.ids[:MAX_WORDS] or [1]  # an empty text is one unknown word
            tokens = word_encoding.tokens[:MAX_WORDS] or [""]
            per_word: list[list[int]] = [[] for _ in ids]
            if self.subword_tokenizer is not None:
                encoding = pieces[index]
                for piece, word in zip(encoding.ids, encoding.word_ids, strict=True):
                    if word is not None and word < len(ids) and len(per_word[word]) < MAX_PIECES:
                        per_word[word].append(piece)
            encoded.append((ids, per_word, tokens))
        return encoded

    def _targets(self, labels: Sequence) -> list:
        if self.config.task == "regress":
            try:
                return [float(label) for label in labels]
            except ValueError as error:
                raise UserError(f"regression needs numeric ratings: {error}") from None
        # Matched by their text: a model of int classes reads "1" from a CSV file as 1, one
        # of bool classes "true" (JSON's spelling) or "True" as True.
        index = {str(c): i for i, c in enumerate(self.classes)}
        index.update({str(c).lower(): i for i, c in enumerate(self.classes) if isinstance(c, bool)})
        unknown = sorted({str(label) for label in labels} - set(index))
        if unknown:
            raise UserError(
                f"label(s) {', '.join(map(repr, unknown[:5]))} are not one of the classes "
                f"{', '.join(map(repr, self.classes))}"
            )
        return [index[str(label)] for label in labels]

    def _loader(self, texts, labels=None, shuffle: bool = False, ratings=None) -> DataLoader:
        encoded = self.encode(texts)
        targets = self._targets(labels) if labels is not None else [0] * len(encoded)
        ratings = [float(r) for r in ratings] if ratings is not None else [0.0] * len(encoded)
        items = [
            (ids, pieces, target, rating)
            for (ids, pieces, _), target, rating in zip(encoded, targets, ratings, strict=True)
        ]
        return DataLoader(
            items, batch_size=self.config.batch_size, shuffle=shuffle, collate_fn=_collate
        )

    # ---------------------------------------------------------------- prediction
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [N, classes] (or ratings [N] for regression), averaged over
        the ensemble's networks."""
        return self.member_scores(texts).mean(0)

    @torch.no_grad()
    def member_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Each network's class probabilities [members, N, classes] (or ratings
        [members, N]): the ensemble's members one by one, e.g. for their seed-to-seed spread."""
        members = self._require_model().eval()
        device = next(members.parameters()).device
        outputs = []
        for batch in self._loader(list(texts)):
            tokens, pieces = batch["tokens"].to(device), batch["pieces"].to(device)
            member_scores = []
            for net in members:
                scores, _ = net(tokens, batch["lengths"], pieces)
                if self.config.task == "regress":
                    member_scores.append(scores.squeeze(-1))
                else:
                    member_scores.append(self._class_logits(scores).softmax(-1))
            outputs.append(torch.stack(member_scores).cpu())
        if not outputs:
            return np.zeros((len(members), 0, len(self.classes)))
        return torch.cat(outputs, dim=1).numpy()

    def predict(self, texts: Sequence[str] | str) -> list[Prediction] | Prediction:
        """The label and its probability for each text.

        A single string gives a single `Prediction` (not one per character), as Hugging
        Face pipelines do; a list of texts gives a list.
        """
        if isinstance(texts, str):
            return self.predict([texts])[0]
        texts = [str(t) for t in texts]
        for number, text in enumerate(texts, start=1):
            if not text.strip():
                raise UserError(f"text {number}: empty text; expected some words to classify")
        scores = self.predict_scores(texts)
        if self.config.task == "regress":
            return [Prediction(t, float(s), 1.0) for t, s in zip(texts, scores, strict=True)]
        best = scores.argmax(-1)
        return [
            Prediction(t, self.classes[b], float(p[b]))
            for t, b, p in zip(texts, best, scores, strict=True)
        ]

    def _require_model(self) -> nn.ModuleList:
        if self.model is None:
            raise UserError("the classifier is not trained; call fit() or load() first")
        return self.model

    # ---------------------------------------------------------------- saving
    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.safetensors, config.json and the tokenizers' vocabularies."""
        directory = Path(directory)
        config = {
            "sentiment": dataclasses.asdict(self.config),
            "classes": self.classes,
            "class_weights": self.class_weights,  # how it was trained (None: alike)
        }
        save_model(directory, self._require_model(), config)
        self.word_tokenizer.save(str(directory / "words.tokenizer.json"))
        if self.subword_tokenizer is not None:
            self.subword_tokenizer.save(str(directory / "subwords.tokenizer.json"))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> SentimentClassifier:
        """Rebuild a classifier saved by `save`."""
        from tokenizers import Tokenizer

        directory = Path(directory)
        state, saved = load_model_state(directory)
        if "sentiment" not in saved:
            raise UserError(f"{directory}: not a sentiment model folder (config.json)")
        classifier = cls(SentimentConfig(**{**saved["sentiment"], "device": device}))
        classifier.classes = saved["classes"]
        classifier.class_weights = saved.get("class_weights")
        classifier.word_tokenizer = Tokenizer.from_file(str(directory / "words.tokenizer.json"))
        # By the config, not by the file: a word model saved over a folder that held a
        # subword model leaves that model's (stale) subword vocabulary behind.
        if classifier.config.tokens in ("subword", "word+subword"):
            subwords = directory / "subwords.tokenizer.json"
            classifier.subword_tokenizer = Tokenizer.from_file(str(subwords))
        members = [classifier._build_model() for _ in range(classifier.config.ensemble)]
        classifier.model = nn.ModuleList(members)
        classifier.model.load_state_dict(state)
        classifier.model.to(device).eval()
        return classifier


# `SentimentConfig.class_weight` ``auto``: classes are weighted from this ratio of the
# commonest class's examples to the rarest's (2: a 67/33 split of two classes).
IMBALANCE = 2.0


def class_weights(targets: list[int], num_classes: int, config: SentimentConfig):
    """Per class: n / (num_classes * n_class) (scikit-learn's ``balanced``), or None when
    ``config.class_weight`` says classes count alike (``none``, or ``auto`` on classes
    within `IMBALANCE` of each other).

    Example:
        >>> class_weights([0, 0, 0, 1], 2, SentimentConfig())
        [0.6666666666666666, 2.0]
        >>> class_weights([0, 1, 0, 1], 2, SentimentConfig()) is None
        True
    """
    if config.class_weight == "none" or config.task != "classify":
        return None
    # every class has training texts: the classes are the training labels
    counts = np.bincount(np.asarray(targets), minlength=num_classes).astype(float)
    if config.class_weight == "auto" and counts.max() < IMBALANCE * counts.min():
        return None
    return [float(w) for w in counts.sum() / (num_classes * counts)]


def _as_list(values, name: str) -> list:
    if isinstance(values, str):
        raise TypeError(f"{name}: expected a list of texts or labels, got the string {values!r}")
    return list(values)


def _check_lengths(texts: list, texts_name: str = "texts", **others: Sequence | None) -> None:
    """Each of ``others`` (labels, ratings, ...) must have one entry per text."""
    for name, values in others.items():
        if values is not None and len(values) != len(texts):
            raise ValueError(
                f"{len(texts)} {texts_name} but {len(values)} {name}; expected one per text"
            )


def _class_names(labels: list) -> list[str] | list[int]:
    """The sorted classes: bools or ints when every label is one, else the labels as strings."""
    for number, label in enumerate(labels):
        if isinstance(label, (list, dict, set, tuple)):
            raise ValueError(
                f"labels[{number}]: {type(label).__name__} {label!r}; expected a class name "
                "(a string or an int)"
            )
        if pd.isna(label) or (isinstance(label, str) and not label.strip()):
            # str(nan) would make a class 'nan' of the texts whose label is missing.
            raise ValueError(f"labels[{number}]: missing label {label!r}; expected a class name")
    if all(isinstance(x, (bool, np.bool_)) for x in labels):
        return sorted({bool(x) for x in labels})  # JSON's true/false stay booleans
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in labels):
        return sorted({int(x) for x in labels})
    return sorted({str(label) for label in labels})


def _collate(
    items: list[tuple[list[int], list[list[int]], float, float]],
) -> dict[str, torch.Tensor]:
    """Pad word ids to [N, T] and piece ids to [N, T, P] with zeros."""
    longest = max(len(ids) for ids, *_ in items)
    most_pieces = max((len(p) for _, pieces, *_ in items for p in pieces), default=0) or 1
    tokens = torch.zeros(len(items), longest, dtype=torch.long)
    pieces = torch.zeros(len(items), longest, most_pieces, dtype=torch.long)
    for row, (ids, word_pieces, *_) in enumerate(items):
        tokens[row, : len(ids)] = torch.tensor(ids)
        for column, piece_ids in enumerate(word_pieces):
            pieces[row, column, : len(piece_ids)] = torch.tensor(piece_ids, dtype=torch.long)
    targets = torch.tensor([item[2] for item in items])
    ratings = torch.tensor([item[3] for item in items], dtype=torch.float)
    lengths = torch.tensor([len(ids) for ids, *_ in items])
    return {
        "tokens": tokens,
        "pieces": pieces,
        "lengths": lengths,
        "targets": targets,
        "ratings": ratings,
    }
