"""`LanguageModel`: train on a long text with truncated BPTT, measure bits per character, generate.

Example:
    >>> text = "In the beginning, God created the heavens and the earth. " * 50
    >>> config = LMConfig(tokens="char", hidden_size=32, bptt=20, batch_size=4, epochs=3, lr=1e-2)
    >>> lm = LanguageModel(config).fit(text)
    >>> lm.bits_per_char(text) < 0.2  # it has learnt the sentence by heart
    True
    >>> for piece in lm.stream("In the beginning", max_tokens=40, temperature=0.8, top_p=0.5):
    ...     print(piece, end="", flush=True)
    , God created the heavens and the earth.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.apps.lm.carried_state import CarriedStateSaver, restore_carried_state
from rnnkit.apps.lm.model import LanguageModelNet
from rnnkit.checks import check_fields
from rnnkit.core.decoding import sample_logits
from rnnkit.data.text import CharVocab, train_tokenizer
from rnnkit.engine import TrainConfig, Trainer, load_model_state, save_model, seed_everything
from rnnkit.errors import UserError

# A default training reads about this many characters (the WEB Bible's training part in one
# pass): one pass over a 600 KB manual scored 2.50 bits per character, five 2.09, and bzip2
# given the training text first 1.68.
CHARACTERS_TO_READ = 4_000_000
MOST_EPOCHS = 20


def default_epochs(characters: int) -> int:
    """Passes over a text of ``characters`` that read about `CHARACTERS_TO_READ`.

    Example:
        >>> default_epochs(4_400_000), default_epochs(640_000), default_epochs(5_000)
        (1, 6, 20)
    """
    return int(min(max(round(CHARACTERS_TO_READ / max(characters, 1)), 1), MOST_EPOCHS))


@dataclass
class LMConfig:
    """A language model and its training (saved in config.json).

    ``tokens``: ``char`` (one token per character) or ``subword`` (byte-level BPE of
    ``subword_vocab_size`` tokens, lossless, never unknown). ``bptt``: steps per truncated
    backpropagation window; the state is carried from one window to the next.
    ``epochs``: passes over the training text; None: enough passes to read about
    `CHARACTERS_TO_READ` characters (1 for the 4.4-million-character Bible, 6 for a
    600 KB manual, at most 20). ``max_batches``: stop an epoch early (a quick run).
    ``checkpoint_every``: optimizer
    steps between checkpoints within an epoch (an epoch of the Bible is ~1,300 steps), when
    `LanguageModel.fit` gets an ``out_dir``; there is one at each epoch's end too.
    """

    tokens: str = "char"
    subword_vocab_size: int = 1000
    embedding_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    embedding_dropout: float = 0.02
    weight_drop: float = 0.1
    bptt: int = 100
    batch_size: int = 32
    epochs: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-6
    grad_clip: float = 0.25
    max_batches: int | None = None
    checkpoint_every: int | None = 250
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        # Checked here, not deep in torch: `num_layers=0` would even train a model that
        # ignores its input, and `bptt=0` fails with a division by zero.
        if self.tokens not in ("char", "subword"):
            raise ValueError(f"LMConfig tokens: expected 'char' or 'subword', got {self.tokens!r}")
        check_fields(
            self,
            positive_ints=(
                "subword_vocab_size",
                "embedding_dim",
                "hidden_size",
                "num_layers",
                "bptt",
                "batch_size",
            ),
            optional_positive_ints=("epochs", "max_batches", "checkpoint_every"),
            fractions=("dropout", "embedding_dropout", "weight_drop"),
            positive_numbers=("lr",),
        )


class TBPTTBatches:
    """A token stream cut into ``batch_size`` parallel rows, served in ``bptt``-long windows.

    Row ``b`` continues in window ``i + 1`` where it stopped in window ``i``, so the state of
    row ``b`` can be carried over (stateful training). Each batch is a dict with ``inputs``
    and ``targets`` [N, T] and ``first`` (True on the first window: reset the state).
    """

    def __init__(self, ids: Tensor, batch_size: int, bptt: int, max_batches: int | None = None):
        rows = min(batch_size, max((len(ids) - 1) // 2, 1))
        length = (len(ids) - 1) // rows
        if length < 1:
            raise UserError("the text is too short to train on; expected at least a few lines")
        self.inputs = ids[: rows * length].view(rows, length)
        self.targets = ids[1 : rows * length + 1].view(rows, length)
        self.bptt, self.max_batches = bptt, max_batches

    def __len__(self) -> int:
        windows = math.ceil(self.inputs.shape[1] / self.bptt)
        return min(windows, self.max_batches) if self.max_batches else windows

    def __iter__(self) -> Iterator[dict]:
        for index in range(len(self)):
            window = slice(index * self.bptt, (index + 1) * self.bptt)
            yield {
                "inputs": self.inputs[:, window],
                "targets": self.targets[:, window],
                "first": index == 0,
            }


class LanguageModel:
    """A character- or subword-level LSTM language model with AWD-LSTM regularization."""

    def __init__(self, config: LMConfig | None = None):
        self.config = config or LMConfig()
        self.vocab: CharVocab | None = None
        self.tokenizer = None
        self.model: LanguageModelNet | None = None
        self.history: list[dict] = []
        self._carried_state_saver: CarriedStateSaver | None = None
        self._bytes_of_tokens: list[bytes] | None = None  # see `_token_bytes`

    # ---------------------------------------------------------------- tokens
    def encode(self, text: str, strict: bool = True, what: str = "text") -> Tensor:
        """Token ids of ``text``. Characters never seen in training: an error when ``strict``
        (a prompt), else mapped to a space (the documented fallback when scoring a text)."""
        if self.config.tokens == "char":
            return torch.tensor(self.vocab.encode(text, strict=strict, what=what), dtype=torch.long)
        return torch.tensor(self.tokenizer.encode(text).ids, dtype=torch.long)

    def _warn_of_unseen_characters(self, text: str) -> None:
        """Say how much of a scored text a character model never saw (scored as spaces):
        a German text scored by an English model is not the same measurement."""
        if self.config.tokens != "char":
            return  # subwords fall back to bytes: nothing is unknown
        counts = Counter(text)
        kinds = sorted(c for c in counts if c not in self.vocab.index)
        unseen = sum(counts[c] for c in kinds)
        if unseen:
            kinds = "".join(kinds)[:10]
            warnings.warn(
                f"{unseen} of {len(text)} characters ({unseen / len(text):.1%}) never seen in "
                f"training ({kinds!r}...) are scored as spaces",
                stacklevel=2,  # in rnnkit: the command line shows it as one line
            )

    def decode(self, ids: list[int]) -> str:
        if self.config.tokens == "char":
            return self.vocab.decode(ids)
        return self.tokenizer.decode(ids)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) if self.config.tokens == "char" else self.tokenizer.get_vocab_size()

    # ---------------------------------------------------------------- training
    def fit(
        self,
        text: str,
        val_text: str | None = None,
        progress: bool = False,
        out_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> LanguageModel:
        """Build the vocabulary from ``text`` and train; per-epoch losses go to ``history``.

        Args:
            out_dir: where the engine writes checkpoints (``out_dir/checkpoints``), logs and
                ``metrics.csv``; None: nowhere.
            resume: continue from the latest checkpoint in ``out_dir``. The vocabulary is
                rebuilt from the same text (the same one) and the state carried between
                windows is saved with each checkpoint (see `rnnkit.apps.lm.carried_state`),
                so a resumed run ends with the weights of a run never interrupted.
        """
        if not text.strip():
            raise UserError("empty training text; expected a UTF-8 text with some lines")
        if self.config.epochs is None:  # saved with the model as the number it was
            self.config = dataclasses.replace(self.config, epochs=default_epochs(len(text)))
        config = self.config
        seed_everything(config.seed)
        if config.tokens == "char":
            self.vocab = CharVocab.from_text(text)
        elif config.tokens == "subword":
            lines = text.splitlines(keepends=True)
            self.tokenizer = train_tokenizer(lines, "bytes", config.subword_vocab_size)
            self._bytes_of_tokens = None
        else:
            raise UserError(f"tokens must be 'char' or 'subword', got {config.tokens!r}")
        self.model = self._build_model().to(config.device)
        self._carried_state_saver = None
        if out_dir is not None and config.checkpoint_every:
            steps_done = restore_carried_state(self.model, out_dir) if resume else 0
            self._carried_state_saver = CarriedStateSaver(
                self.model, out_dir, config.checkpoint_every, steps_done
            )
        train = TBPTTBatches(self.encode(text), config.batch_size, config.bptt, config.max_batches)
        val = None
        if val_text:
            val = TBPTTBatches(self.encode(val_text, strict=False), 8, config.bptt)
        trainer = Trainer(
            self.model,
            self._step,
            TrainConfig(
                epochs=config.epochs,
                lr=config.lr,
                weight_decay=config.weight_decay,
                grad_clip=config.grad_clip,
                seed=config.seed,
                device=config.device,
                progress=progress,
                out_dir=str(out_dir) if out_dir is not None else None,
                checkpoint_every=config.checkpoint_every,
                resume=resume,
            ),
        )
        self.history = trainer.fit(train, val)
        self.model.eval()
        return self

    def _build_model(self) -> LanguageModelNet:
        c = self.config
        return LanguageModelNet(
            self.vocab_size,
            c.embedding_dim,
            c.hidden_size,
            c.num_layers,
            c.dropout,
            c.embedding_dropout,
            c.weight_drop,
        )

    def _step(self, model: LanguageModelNet, batch: dict) -> dict:
        """One TBPTT window: the stateful layers start from the previous window's state."""
        device = next(model.parameters()).device
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        if batch["first"]:
            getattr(model, "module", model).reset_state()  # `module`: under DDP
        logits, _ = model(inputs)
        if model.training and self._carried_state_saver is not None:
            self._carried_state_saver.after_training_step()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return {"loss": loss, "bits_per_token": loss.detach() / math.log(2)}

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def bits_per_char(self, text: str, streams: int = 16) -> float:
        """Bits per character of ``text``: total negative log2-likelihood / characters.

        The text is cut into ``streams`` rows scored in parallel, each row starting from the
        token before it (the first from a newline), so every token is predicted exactly once.
        """
        model = self._require_model()
        model.eval()
        if not text:
            raise UserError("empty text: nothing to score")
        self._warn_of_unseen_characters(text)
        ids = self.encode(text, strict=False)
        start = self.encode("\n", strict=False)[:1]
        inputs, targets = torch.cat([start, ids[:-1]]), ids
        device = next(model.parameters()).device
        total_nats = 0.0
        rows = max(min(streams, len(ids) // 64), 1)
        length = len(ids) // rows
        parts = [
            (
                inputs[: rows * length].view(rows, length),
                targets[: rows * length].view(rows, length),
            )
        ]
        if rows * length < len(ids):  # the remainder, as one more row
            parts.append((inputs[rows * length :][None], targets[rows * length :][None]))
        for part_inputs, part_targets in parts:
            model.reset_state()
            state = None
            for begin in range(0, part_inputs.shape[1], 256):
                x = part_inputs[:, begin : begin + 256].to(device)
                y = part_targets[:, begin : begin + 256].to(device)
                logits, state = model(x, state)
                total_nats += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                ).item()
        return total_nats / math.log(2) / len(text)

    # ---------------------------------------------------------------- generation
    @torch.no_grad()
    def stream(
        self,
        prompt: str = "",
        max_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = 0,
    ) -> Iterator[str]:
        """Yield the generated text piece by piece (after the prompt) as it is sampled.

        ``temperature=0`` is greedy decoding; ``top_k`` and ``top_p`` (nucleus) filter the
        distribution first (see `rnnkit.core.decoding.sample_logits`).
        """
        model = self._require_model()
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator(device=device)
        if seed is not None:
            generator.manual_seed(seed)
        context = (
            self.encode("\n", strict=False)[:1].tolist()
            + self.encode(prompt, what="prompt").tolist()
        )
        model.reset_state()
        logits, state = model(torch.tensor([context], device=device))
        # Byte-level tokens are decoded as a stream of UTF-8 bytes: a character split over
        # tokens waits for its last byte, and bytes that make no character (an undertrained
        # model samples some) are dropped instead of printed as U+FFFD.
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        token_bytes = self._token_bytes() if self.config.tokens != "char" else None
        for _ in range(max_tokens):
            token = sample_logits(
                logits[0, -1],
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            if token_bytes is None:
                piece = self.vocab.decode([int(token)])
            else:
                piece = utf8.decode(token_bytes[int(token)])
            if piece:
                yield piece
            logits, state = model(token.view(1, 1), state)

    def _token_bytes(self) -> list[bytes]:
        """The bytes of every byte-level BPE token (special tokens: none)."""
        if self._bytes_of_tokens is None:
            byte_of = byte_level_alphabet()
            self._bytes_of_tokens = [
                bytes(byte_of[c] for c in token) if all(c in byte_of for c in token) else b""
                for token in (self.tokenizer.id_to_token(i) or "" for i in range(self.vocab_size))
            ]
        return self._bytes_of_tokens

    def generate(self, prompt: str = "", max_tokens: int = 200, **sampling) -> str:
        """The generated continuation of ``prompt`` as one string (see `stream`)."""
        return "".join(self.stream(prompt, max_tokens, **sampling))

    def _require_model(self) -> LanguageModelNet:
        if self.model is None:
            raise UserError("the language model is not trained; call fit() or load() first")
        return self.model

    # ---------------------------------------------------------------- saving
    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.safetensors, config.json (with the characters) and the tokenizer."""
        directory = Path(directory)
        extra = {"chars": self.vocab.to_json()} if self.vocab is not None else {}
        save_model(
            directory, self._require_model(), {"lm": dataclasses.asdict(self.config), **extra}
        )
        if self.tokenizer is not None:
            self.tokenizer.save(str(directory / "tokenizer.json"))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> LanguageModel:
        """Rebuild a model saved by `save`."""
        from tokenizers import Tokenizer

        directory = Path(directory)
        state, saved = load_model_state(directory)
        if "lm" not in saved:
            raise UserError(f"{directory}: not a language model folder (config.json)")
        lm = cls(LMConfig(**{**saved["lm"], "device": device}))
        if lm.config.tokens == "char":
            lm.vocab = CharVocab(saved["chars"])
        else:
            lm.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        lm.model = lm._build_model()
        lm.model.load_state_dict(state)
        lm.model.to(device).eval()
        return lm


def byte_level_alphabet() -> dict[str, int]:
    """The byte each character of a byte-level BPE token stands for: GPT-2's reversible map
    (printable bytes stand for themselves; the others are shifted past 255), which the
    `tokenizers` ByteLevel pre-tokenizer uses."""
    kept = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    shifted = [b for b in range(256) if b not in kept]
    table = {chr(b): b for b in kept}
    table.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return table
