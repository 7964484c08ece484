"""Polyphonic music as piano rolls: a next-frame model, its baselines and its evaluation.

`PianoRollLM` is an estimator (fit / nll_per_step / generate / save / load) around
`PianoRollNet`. `IndependentBernoulli` and `PitchMarkov` are the baselines that
`evaluate_piano_roll` reports beside it, in the same run, on the same held-out frames.

Example:
    A quick look; a real run trains on all 349 chorales, ``TrainConfig(epochs=60, lr=2e-3)``:

    >>> from rnnkit.data import music
    >>> from rnnkit.engine import TrainConfig
    >>> train, val, test = music.split_pieces(music.load_bach_chorales(limit=16))
    >>> lm = PianoRollLM(PianoRollConfig(cell="gru", output="nade", hidden_size=32, nade_size=16))
    >>> history = lm.fit(train, val, TrainConfig(epochs=1, lr=2e-3))
    >>> rows = evaluate_piano_roll({"GRU-NADE": lm}, train, test)  # NLL per time step
    >>> [row["model"] for row in rows]  # the model and two baselines
    ['independent Bernoulli', 'frame repeat (pitch Markov chain)', 'GRU-NADE']
    >>> path = music.write_midi(lm.generate(bars=2, seed=1), "sample.mid")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.apps.music.common import TaggedModel, batch_indices, in_key
from rnnkit.apps.music.models import PianoRollNet
from rnnkit.data.music import NUM_PITCHES, Piece, piano_roll, roll_to_piece
from rnnkit.engine import TrainConfig, Trainer

KIND = "rnnkit.music.piano_roll"
# Pieces longer than LONG_PIECE frames train as windows of WINDOW frames. A batch holds 16
# pieces, so a corpus of 35 long pieces (movements of 500-1,300 quarter notes) gave 3
# optimiser steps an epoch and lost to the frame-repeat baseline; windows give it the
# steps a corpus of short pieces gets. Every Bach chorale (at most 193 frames) stays whole.
LONG_PIECE = 256
WINDOW = 128


@dataclass
class PianoRollConfig:
    """What defines a piano-roll model (saved in its config.json).

    Attributes:
        cell, hidden_size, num_layers, dropout: the recurrent layer.
        output: ``"made"`` or ``"nade"`` (pitches modelled jointly), ``"bernoulli"`` (independent).
        nade_size: hidden units of the NADE output.
        steps_per_quarter: grid resolution (1 = quarter notes, as JSB Chorales).
        common_key: transpose every piece to C major / A minor before training.
        transpose_augment: random shifts of up to this many semitones while training.
    """

    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    output: str = "made"
    nade_size: int = 128
    steps_per_quarter: int = 1
    common_key: bool = True
    transpose_augment: int = 0


def training_windows(rolls: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``rolls`` with each one longer than `LONG_PIECE` frames cut into consecutive windows
    of `WINDOW` frames (the last one shorter); the others as they are, in their order."""
    windows = []
    for roll in rolls:
        if len(roll) <= LONG_PIECE:
            windows.append(roll)
        else:
            windows += [roll[start : start + WINDOW] for start in range(0, len(roll), WINDOW)]
    return windows


class RollBatches:
    """Padded batches ``(frames [B, T, 88], lengths [B])``, reshuffled on every pass.

    The order and the random transpositions come from torch's global generator, which the
    `Trainer` seeds at the start of every epoch: an epoch's batches depend only on the seed
    and the epoch, and a resumed run replays them.
    """

    def __init__(
        self,
        rolls: Sequence[np.ndarray],
        batch_size: int = 16,
        shuffle: bool = True,
        transpose_augment: int = 0,
    ):
        self.rolls, self.batch_size, self.shuffle = list(rolls), batch_size, shuffle
        self.transpose_augment = transpose_augment

    def __len__(self) -> int:
        return (len(self.rolls) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices in batch_indices(len(self.rolls), self.batch_size, self.shuffle):
            chosen = [self.rolls[i] for i in indices]
            if self.transpose_augment:
                limit = self.transpose_augment
                shifts = torch.randint(-limit, limit + 1, (len(chosen),)).tolist()
                chosen = [_shift_roll(roll, s) for roll, s in zip(chosen, shifts, strict=True)]
            yield pad_rolls(chosen)


def pad_rolls(rolls: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rolls of different lengths into ``[B, T_max, P]`` zeros-padded, plus lengths."""
    lengths = torch.tensor([len(r) for r in rolls])
    frames = torch.zeros(len(rolls), int(lengths.max()), rolls[0].shape[1])
    for i, roll in enumerate(rolls):
        frames[i, : len(roll)] = torch.from_numpy(np.asarray(roll, dtype=np.float32))
    return frames, lengths


def _shift_roll(roll: np.ndarray, semitones: int) -> np.ndarray:
    # Move every column up by `semitones`; notes pushed off either end of the keyboard vanish.
    shifted = np.zeros_like(roll)
    if semitones >= 0:
        shifted[:, semitones:] = roll[:, : roll.shape[1] - semitones]
    else:
        shifted[:, :semitones] = roll[:, -semitones:]
    return shifted


def _roll_step(model: PianoRollNet, batch) -> dict[str, torch.Tensor]:
    """Mean negative log-likelihood per frame (nats), the measure of the JSB benchmark."""
    frames, lengths = batch
    device = next(model.parameters()).device
    frames, lengths = frames.to(device), lengths.to(device)
    loss = -model(frames, lengths).sum() / lengths.sum()
    return {"loss": loss}


class PianoRollLM(TaggedModel):
    """A next-frame model of piano rolls, with the estimator interface.

    Args:
        config: the architecture and representation (`PianoRollConfig`).
    """

    KIND = KIND
    CONFIG = PianoRollConfig
    WHAT = "a piano-roll model"

    def _build(self) -> PianoRollNet:
        c = self.config
        return PianoRollNet(
            NUM_PITCHES, c.cell, c.hidden_size, c.num_layers, c.dropout, c.output, c.nade_size
        )

    # The representation -------------------------------------------------------------

    def prepare(self, piece: Piece) -> Piece:
        """The piece as the model sees it (in the common key when configured)."""
        return piece.to_common_key() if self.config.common_key else piece

    def round_trip(self, piece: Piece) -> Piece:
        """The piece as the model can write it: on its grid, in the common key.

        Compare generated pieces with these (a roll cannot tell a repeated note from a
        held one, nor keep notes between grid points, so it changes the note density).
        """
        steps = self.config.steps_per_quarter
        roll = piano_roll(self.prepare(piece), steps)
        return roll_to_piece(roll, steps, name=piece.name, quarters_per_bar=piece.quarters_per_bar)

    def rolls(self, pieces: Sequence[Piece]) -> list[np.ndarray]:
        rolls = [piano_roll(self.prepare(p), self.config.steps_per_quarter) for p in pieces]
        return [r for r in rolls if len(r) > 0]

    # Training and scoring -----------------------------------------------------------

    def fit(
        self,
        train: Sequence[Piece],
        val: Sequence[Piece] | None = None,
        train_config: TrainConfig | None = None,
        batch_size: int = 16,
    ) -> list[dict]:
        """Train on ``train`` pieces; returns the per-epoch history (loss = NLL per frame)."""
        train_config = train_config or TrainConfig()
        torch.manual_seed(train_config.seed)  # the initial weights
        self.net = self._build()
        train_batches = RollBatches(
            training_windows(self.rolls(train)),
            batch_size,
            transpose_augment=self.config.transpose_augment,
        )
        val_batches = RollBatches(self.rolls(val), 64, shuffle=False) if val else None
        trainer = Trainer(self.net, _roll_step, config=train_config)
        self.history = trainer.fit(train_batches, val_batches)
        self.net.cpu().eval()
        return self.history

    def nll_per_step(self, pieces: Sequence[Piece]) -> float:
        """Negative log-likelihood per time step (nats), over all frames of ``pieces``."""
        return per_step(self.nll_per_piece(pieces))

    @torch.no_grad()
    def nll_per_piece(self, pieces: Sequence[Piece]) -> np.ndarray:
        """``[pieces, 2]``: each piece's total NLL (nats) and its number of frames (pieces
        without a frame are left out, as in `rolls`)."""
        self.net.eval()
        rows = []
        for frames, lengths in RollBatches(self.rolls(pieces), 32, shuffle=False):
            nll = -self.net.log_prob(frames, lengths).sum(-1)  # [B]: each piece's total
            rows += [[float(n), int(k)] for n, k in zip(nll, lengths, strict=True)]
        return np.array(rows, dtype=np.float64).reshape(-1, 2)

    # Generation ----------------------------------------------------------------------

    def generate(
        self,
        bars: float = 8,
        primer: Piece | None = None,
        primer_bars: float = 2,
        temperature: float = 1.0,
        top_p: float | None = None,
        seed: int = 0,
        quarters_per_bar: float | None = None,
        tempo_bpm: float = 90.0,
        key_sharps: int | None = None,
    ) -> Piece:
        """Sample a new piece: ``bars`` bars after the first ``primer_bars`` of ``primer``.

        Args:
            bars: length of the new part in bars (of ``quarters_per_bar`` quarter notes,
                the primer's metre by default, else 4).
            primer: a piece to continue (e.g. a chorale or a user's MIDI file), or None.
            temperature, top_p: sharpen / truncate each note's on-off choice.
            seed: the sampling seed (same seed, same piece).
            tempo_bpm: tempo written to the MIDI file.
            key_sharps: transpose the result to this key signature (default: the primer's
                key, or C major).

        Returns:
            the primer's bars followed by the sampled ones, as a `Piece`.
        """
        steps = self.config.steps_per_quarter
        meter = quarters_per_bar or (primer.quarters_per_bar if primer else 4.0)
        primer_roll = None
        if primer is not None:
            prepared = self.prepare(primer)
            primer_roll = torch.from_numpy(
                piano_roll(prepared, steps)[: int(primer_bars * meter * steps)]
            )
        generator = torch.Generator().manual_seed(seed)
        self.net.eval()
        roll = self.net.sample(
            int(round(bars * meter * steps)), primer_roll, temperature, top_p, generator
        )
        piece = roll_to_piece(
            roll.numpy(), steps, name="generated", quarters_per_bar=meter, tempo_bpm=tempo_bpm
        )
        return in_key(piece, primer, key_sharps, self.config.common_key)


# --------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------


def _bernoulli_nll(prob_on: np.ndarray, frames: np.ndarray) -> float:
    """Total NLL (nats) of 0/1 ``frames`` under per-entry probabilities ``prob_on``."""
    return float(-(frames * np.log(prob_on) + (1 - frames) * np.log1p(-prob_on)).sum())


class IndependentBernoulli:
    """Every pitch on with its training frequency, independent of everything else."""

    name = "independent Bernoulli"

    def fit(self, rolls: Sequence[np.ndarray]) -> IndependentBernoulli:
        frames = np.concatenate(rolls)
        self.prob_on = (frames.sum(0) + 0.5) / (len(frames) + 1.0)  # Krichevsky-Trofimov
        return self

    def nll_per_piece(self, rolls: Sequence[np.ndarray]) -> np.ndarray:
        """``[pieces, 2]``: each roll's total NLL (nats) and its number of frames."""
        return np.array(
            [[_bernoulli_nll(np.broadcast_to(self.prob_on, r.shape), r), len(r)] for r in rolls]
        ).reshape(-1, 2)

    def nll_per_step(self, rolls: Sequence[np.ndarray]) -> float:
        return per_step(self.nll_per_piece(rolls))


class PitchMarkov:
    """Each pitch follows its own two-state Markov chain (the frame-repeat baseline).

    ``p(on at t | on at t-1)`` and ``p(on at t | off at t-1)`` per pitch, counted on the
    training rolls; it captures "notes are held and repeated" but not harmony.
    """

    name = "frame repeat (pitch Markov chain)"

    def fit(self, rolls: Sequence[np.ndarray]) -> PitchMarkov:
        on_after_on = np.full(NUM_PITCHES, 0.5)
        on_after_off = np.full(NUM_PITCHES, 0.5)
        was_on, was_off = np.ones(NUM_PITCHES), np.ones(NUM_PITCHES)
        for roll in rolls:
            previous = np.vstack([np.zeros((1, roll.shape[1])), roll[:-1]])
            on_after_on += (previous * roll).sum(0)
            on_after_off += ((1 - previous) * roll).sum(0)
            was_on += previous.sum(0)
            was_off += (1 - previous).sum(0)
        self.prob_after_on, self.prob_after_off = on_after_on / was_on, on_after_off / was_off
        return self

    def nll_per_piece(self, rolls: Sequence[np.ndarray]) -> np.ndarray:
        """``[pieces, 2]``: each roll's total NLL (nats) and its number of frames."""
        rows = []
        for roll in rolls:
            previous = np.vstack([np.zeros((1, roll.shape[1])), roll[:-1]])
            prob = np.where(previous > 0, self.prob_after_on, self.prob_after_off)
            rows.append([_bernoulli_nll(prob, roll), len(roll)])
        return np.array(rows).reshape(-1, 2)

    def nll_per_step(self, rolls: Sequence[np.ndarray]) -> float:
        return per_step(self.nll_per_piece(rolls))


def per_step(scores: np.ndarray) -> float:
    """NLL per time step of ``[pieces, 2]`` rows (total NLL, frames): all nats / all frames.

    The statistic of the JSB benchmark, and the one `compare_to_baselines` resamples.
    """
    return float(scores[:, 0].sum() / max(scores[:, 1].sum(), 1))


def piano_roll_scores(
    models: dict[str, PianoRollLM], train: Sequence[Piece], test: Sequence[Piece]
) -> dict[str, np.ndarray]:
    """Per-piece scores ``[test pieces, 2]`` (total NLL, frames) of the two baselines and of
    each model, on the same pieces in the same order.

    The baselines are fitted on ``train`` in the representation of the first model (its
    grid and key handling), so every row scores the same frames.
    """
    first = next(iter(models.values()))
    train_rolls, test_rolls = first.rolls(train), first.rolls(test)
    scores = {}
    for baseline in (IndependentBernoulli(), PitchMarkov()):
        scores[baseline.name] = baseline.fit(train_rolls).nll_per_piece(test_rolls)
    for name, model in models.items():
        scores[name] = model.nll_per_piece(test)
        if not np.array_equal(scores[name][:, 1], scores[IndependentBernoulli.name][:, 1]):
            raise ValueError(f"{name}: scores other frames than {next(iter(models))}")
    return scores


def evaluate_piano_roll(
    models: dict[str, PianoRollLM], train: Sequence[Piece], test: Sequence[Piece]
) -> list[dict]:
    """NLL per time step on ``test`` for each model and the two baselines, in one table
    (see `piano_roll_scores`; `compare_to_baselines` adds the intervals)."""
    return score_rows(piano_roll_scores(models, train, test))


def score_rows(scores: dict[str, np.ndarray]) -> list[dict]:
    """One row per model: NLL per time step, test frames and test pieces."""
    return [
        {
            "model": name,
            "nll_per_step": per_step(rows),
            "test_frames": int(rows[:, 1].sum()),
            "test_pieces": len(rows),
        }
        for name, rows in scores.items()
    ]


def compare_to_baselines(scores: dict[str, np.ndarray], model: str) -> list[dict]:
    """``model``'s NLL per step minus each baseline's, with a 95 % paired-bootstrap interval
    over the test pieces (`rnnkit.stats.paired_bootstrap`, 2,000 resamples, seed 0): lower is
    better, so the model "beats" a baseline only where the whole interval is below zero.
    With fewer than 2 test pieces there is nothing to resample: no rows."""
    from rnnkit.stats import paired_bootstrap

    if len(scores[model]) < 2:
        return []
    rows = []
    for baseline in (IndependentBernoulli.name, PitchMarkov.name):
        difference = paired_bootstrap(scores[model], scores[baseline], statistic=per_step)
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "difference": difference.estimate,
                "low": difference.low,
                "high": difference.high,
                "verdict": difference.verdict(higher_is_better=False),
            }
        )
    return rows
