"""Music as token sequences: melodies (folk tunes) and performance events, softmax models.

`TokenLM` trains a `TokenNet` on pieces encoded either as Magenta-style melody tokens
(note-on / hold / rest on a sixteenth grid, for monophonic tunes) or as PerformanceRNN
events (note-on, note-off, time-shift, velocity, for polyphonic and expressive MIDI).
`evaluate_tokens` compares it with unigram and bigram baselines on held-out pieces.

Example:
    A quick look; a real run trains on all the folk songs, ``TrainConfig(epochs=10)``:

    >>> from rnnkit.data import music
    >>> from rnnkit.engine import TrainConfig
    >>> train, val, test = music.split_pieces(music.load_folk_songs(limit=30))
    >>> lm = TokenLM(TokenConfig(encoding="melody", hidden_size=32))
    >>> history = lm.fit(train, val, TrainConfig(epochs=1))
    >>> [row["model"] for row in evaluate_tokens(lm, train, test)]  # NLL, accuracy, perplexity
    ['unigram', 'bigram', 'LSTM (melody)']
    >>> tune = lm.generate(bars=8, temperature=0.9, top_p=0.95, seed=3)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.apps.music.common import TaggedModel, batch_indices, in_key
from rnnkit.apps.music.models import TokenNet
from rnnkit.data.music import (
    MELODY_VOCAB,
    NUM_PITCHES,
    EventCodec,
    Piece,
    melody_decode,
    melody_encode,
)
from rnnkit.engine import TrainConfig, Trainer
from rnnkit.errors import UserError

KIND = "rnnkit.music.tokens"


@dataclass
class TokenConfig:
    """What defines a token model (saved in its config.json).

    Attributes:
        encoding: ``"melody"`` (monophonic grid tokens) or ``"events"`` (performance events).
        steps_per_quarter: melody grid (4 = sixteenth notes).
        common_key: transpose every piece to C major / A minor first.
        window: training sequences are cut into windows of at most this many tokens.
    """

    encoding: str = "melody"
    cell: str = "lstm"
    embedding_size: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.2
    steps_per_quarter: int = 4
    common_key: bool = True
    window: int = 256

    def __post_init__(self) -> None:
        if self.encoding not in ("melody", "events"):
            raise UserError(f"encoding must be 'melody' or 'events', got {self.encoding!r}")

    @property
    def vocab_size(self) -> int:
        return MELODY_VOCAB if self.encoding == "melody" else EventCodec().vocab_size


class TokenBatches:
    """Padded ``(tokens [B, T], lengths [B])`` batches of windows, reshuffled every pass.

    The order comes from torch's global generator, which the `Trainer` seeds every epoch.
    """

    def __init__(self, windows: Sequence[list[int]], batch_size: int = 32, shuffle: bool = True):
        self.windows, self.batch_size, self.shuffle = list(windows), batch_size, shuffle

    def __len__(self) -> int:
        return (len(self.windows) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices in batch_indices(len(self.windows), self.batch_size, self.shuffle):
            chosen = [self.windows[i] for i in indices]
            lengths = torch.tensor([len(w) for w in chosen])
            tokens = torch.zeros(len(chosen), int(lengths.max()), dtype=torch.long)
            for row, window in enumerate(chosen):
                tokens[row, : len(window)] = torch.tensor(window)
            yield tokens, lengths


def _token_losses(model: TokenNet, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-position NLL, correctness and the mask of real (unpadded) positions."""
    tokens, lengths = batch
    device = next(model.parameters()).device
    tokens, lengths = tokens.to(device), lengths.to(device)
    logits = model(tokens, lengths)
    nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
    mask = torch.arange(tokens.shape[1], device=device)[None, :] < lengths[:, None]
    return nll * mask, (logits.argmax(-1) == tokens) & mask, mask


def _token_step(model: TokenNet, batch) -> dict[str, torch.Tensor]:
    nll, _, mask = _token_losses(model, batch)
    return {"loss": nll.sum() / mask.sum()}


class TokenLM(TaggedModel):
    """A softmax model of melody tokens or performance events, with the estimator interface."""

    KIND = KIND
    CONFIG = TokenConfig
    WHAT = "a melody/event model"

    def _build(self) -> TokenNet:
        c = self.config
        return TokenNet(
            c.vocab_size, c.cell, c.embedding_size, c.hidden_size, c.num_layers, c.dropout
        )

    def encode(self, piece: Piece) -> list[int]:
        piece = piece.to_common_key() if self.config.common_key else piece
        if self.config.encoding == "melody":
            return melody_encode(piece, self.config.steps_per_quarter)
        return EventCodec().encode(piece)

    def decode(self, tokens: Sequence[int], quarters_per_bar: float, tempo_bpm: float) -> Piece:
        if self.config.encoding == "melody":
            return melody_decode(
                tokens,
                self.config.steps_per_quarter,
                name="generated",
                quarters_per_bar=quarters_per_bar,
                tempo_bpm=tempo_bpm,
            )
        piece = EventCodec().decode(tokens, tempo_bpm=tempo_bpm, name="generated")
        piece.quarters_per_bar = quarters_per_bar
        return piece

    def round_trip(self, piece: Piece) -> Piece:
        """The piece as the model can write it (encoded and decoded, in the common key)."""
        return self.decode(self.encode(piece), piece.quarters_per_bar, piece.tempo_bpm)

    def windows(self, pieces: Sequence[Piece]) -> list[list[int]]:
        """Every piece's tokens cut into windows of at most ``config.window`` tokens."""
        size = self.config.window
        out = []
        for piece in pieces:
            tokens = self.encode(piece)
            out += [tokens[i : i + size] for i in range(0, len(tokens), size)]
        return [w for w in out if w]

    def fit(
        self,
        train: Sequence[Piece],
        val: Sequence[Piece] | None = None,
        train_config: TrainConfig | None = None,
        batch_size: int = 32,
    ) -> list[dict]:
        """Train on ``train`` pieces; returns the per-epoch history (loss = NLL per token)."""
        train_config = train_config or TrainConfig()
        torch.manual_seed(train_config.seed)
        self.net = self._build()
        train_batches = TokenBatches(self.windows(train), batch_size)
        val_batches = TokenBatches(self.windows(val), 64, shuffle=False) if val else None
        trainer = Trainer(self.net, _token_step, config=train_config)
        self.history = trainer.fit(train_batches, val_batches)
        self.net.cpu().eval()
        return self.history

    @torch.no_grad()
    def score(self, pieces: Sequence[Piece]) -> dict[str, float]:
        """``nll_per_token`` (nats) and next-token ``accuracy`` over all tokens of ``pieces``."""
        self.net.eval()
        nll, correct, count = 0.0, 0, 0
        for batch in TokenBatches(self.windows(pieces), 64, shuffle=False):
            losses, hits, mask = _token_losses(self.net, batch)
            nll += float(losses.sum())
            correct += int(hits.sum())
            count += int(mask.sum())
        return {"nll_per_token": nll / max(count, 1), "accuracy": correct / max(count, 1)}

    def generate(
        self,
        bars: float = 8,
        primer: Piece | None = None,
        primer_bars: float = 2,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        quarters_per_bar: float | None = None,
        tempo_bpm: float = 100.0,
        key_sharps: int | None = None,
        grammar: bool = True,
    ) -> Piece:
        """Sample ``bars`` bars (after the first ``primer_bars`` of ``primer``), as a `Piece`.

        Melody models sample one token per grid step; event models sample until the time
        shifts add up to the requested length, under `EventGrammar` (``grammar=False``:
        freely, to see what it changes).
        """
        meter = quarters_per_bar or (primer.quarters_per_bar if primer else 4.0)
        primer_tokens: list[int] = []
        if primer is not None:
            primer_piece = _first_quarters(primer, primer_bars * meter)
            primer_tokens = self.encode(primer_piece)
        generator = torch.Generator().manual_seed(seed)
        self.net.eval()
        if self.config.encoding == "melody":
            steps = int(round(bars * meter * self.config.steps_per_quarter))
            tokens = self.net.sample(steps, primer_tokens, temperature, top_k, top_p, generator)
        else:
            sampling = (temperature, top_k, top_p, generator)
            tokens = self._sample_events(bars * meter, tempo_bpm, primer_tokens, grammar, *sampling)
        piece = self.decode(tokens, meter, tempo_bpm)
        return in_key(piece, primer, key_sharps, self.config.common_key)

    def _sample_events(
        self, quarters, tempo_bpm, primer, grammar, temperature, top_k, top_p, generator
    ):
        # Sample in chunks until the sampled time shifts cover the requested duration, then
        # cut the chunk's overshoot: the piece lasts what --bars / --seconds asked for.
        codec = EventCodec()
        needed = max(1, round(quarters * 60.0 / tempo_bpm / codec.step_seconds))
        tokens = list(primer)
        start = len(tokens)
        for _ in range(50):
            rules = EventGrammar(codec) if grammar else None
            tokens = self.net.sample(64, tokens, temperature, top_k, top_p, generator, rules)
            if _elapsed_steps(tokens[start:], codec) >= needed:
                break
        return tokens[:start] + _cut_after_steps(tokens[start:], needed, codec)


class EventGrammar:
    """What may follow a stream of event tokens: a note-off only for a note that sounds.

    Sampled freely, a model spreads its note-off probability over pitches that are silent
    (events the decoder ignores), so the notes that do sound are rarely released: an event
    model trained on 59 classical MIDI files held 10 to 13 notes at once against its
    corpus' 2.5. `TokenNet.sample` reads the stream into it and masks what it rules out.

    Example:
        >>> grammar = EventGrammar(EventCodec())
        >>> grammar.advance(39)  # note_on(60)
        >>> [int(t) for t in (~grammar.allowed()).nonzero()][:3]  # note-offs of silent pitches
        [88, 89, 90]
        >>> bool(grammar.allowed()[88 + 39])  # note_off(60)
        True
    """

    def __init__(self, codec: EventCodec):
        self.codec = codec
        # allowed next: everything but the note-offs of the pitches that are silent (all, yet)
        self.mask = torch.ones(codec.vocab_size, dtype=torch.bool)
        self.mask[NUM_PITCHES : codec.first_shift] = False

    def advance(self, token: int) -> None:
        if token < NUM_PITCHES:  # a note-on: its note-off becomes possible
            self.mask[NUM_PITCHES + token] = True
        elif token < self.codec.first_shift:  # a note-off: that pitch is silent again
            self.mask[token] = False

    def allowed(self) -> torch.Tensor:
        return self.mask


def _shift_steps(token: int, codec: EventCodec) -> int:
    """The time steps a token moves on: its shift for a time-shift token, else 0."""
    return token - codec.first_shift + 1 if codec.first_shift <= token < codec.first_velocity else 0


def _elapsed_steps(tokens: Sequence[int], codec: EventCodec) -> int:
    return sum(_shift_steps(t, codec) for t in tokens)


def _cut_after_steps(tokens: Sequence[int], steps: int, codec: EventCodec) -> list[int]:
    """``tokens`` up to the moment ``steps`` time steps in; a time shift that crosses it is
    shortened to end there. Notes still sounding then end there when decoded."""
    kept, elapsed = [], 0
    for token in tokens:
        shift = _shift_steps(token, codec)
        if shift and elapsed + shift >= steps:
            kept.append(codec.first_shift + (steps - elapsed) - 1)
            return kept
        elapsed += shift
        kept.append(token)
    return kept


def _first_quarters(piece: Piece, quarters: float) -> Piece:
    """The part of ``piece`` that starts before ``quarters``, cut at that time."""
    keep = piece.notes[:, 1] < quarters
    notes = piece.notes[keep].copy()
    notes[:, 2] = np.minimum(notes[:, 2], quarters)
    return replace(piece, notes=notes, velocities=piece.velocities[keep])


class NGramBaseline:
    """Unigram (``order=1``) or bigram (``order=2``) token model with add-one smoothing."""

    def __init__(self, vocab_size: int, order: int = 2):
        self.vocab_size, self.order = vocab_size, order
        self.name = {1: "unigram", 2: "bigram"}[order]

    def fit(self, sequences: Sequence[list[int]]) -> NGramBaseline:
        counts = np.ones((self.vocab_size + 1, self.vocab_size))  # row vocab_size: the start
        for sequence in sequences:
            previous = [self.vocab_size, *sequence[:-1]]
            np.add.at(counts, (previous, sequence), 1.0)
        if self.order == 1:
            counts = np.broadcast_to(counts.sum(0), counts.shape)
        self.log_prob = np.log(counts / counts.sum(1, keepdims=True))
        return self

    def score(self, sequences: Sequence[list[int]]) -> dict[str, float]:
        nll, correct, count = 0.0, 0, 0
        for sequence in sequences:
            previous = np.array([self.vocab_size, *sequence[:-1]])
            nll -= self.log_prob[previous, sequence].sum()
            correct += int((self.log_prob[previous].argmax(1) == np.array(sequence)).sum())
            count += len(sequence)
        return {"nll_per_token": nll / max(count, 1), "accuracy": correct / max(count, 1)}


def evaluate_tokens(lm: TokenLM, train: Sequence[Piece], test: Sequence[Piece]) -> list[dict]:
    """NLL per token, perplexity and next-token accuracy: unigram, bigram and the model."""
    train_windows, test_windows = lm.windows(train), lm.windows(test)
    rows = []
    for order in (1, 2):
        baseline = NGramBaseline(lm.config.vocab_size, order).fit(train_windows)
        rows.append({"model": baseline.name, **baseline.score(test_windows)})
    rows.append({"model": f"{lm.config.cell.upper()} ({lm.config.encoding})", **lm.score(test)})
    for row in rows:
        row["perplexity"] = float(np.exp(row["nll_per_token"]))
        row["test_tokens"] = sum(len(w) for w in test_windows)
    return rows
