"""The music application end to end: corpus -> model -> evaluation -> MIDI, PNG and WAV.

These functions are what ``rnnkit music train | generate | evaluate`` and the tour call;
they are as usable from Python:

    >>> from rnnkit.apps.music import workflow
    >>> result = workflow.train("chorales", out="runs/music", epochs=1, limit=16, hidden_size=32,
    ...                         warn=None)  # a quick look; the default: 40 epochs, all pieces
    >>> evaluation = workflow.evaluate("runs/music", warn=None)  # NLL/step vs two baselines
    >>> [row["model"] for row in evaluation.rows]
    ['independent Bernoulli', 'frame repeat (pitch Markov chain)', 'GRU + MADE output']
    >>> generated = workflow.generate("runs/music", "samples", count=1, bars=2, audio=False)
    >>> [path.name for path in generated.files + generated.images]  # audio=True: WAV files too
    ['sample_1.mid', 'sample_1.png']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.apps.music.common import what_folder_holds
from rnnkit.apps.music.piano_roll import (
    IndependentBernoulli,
    PianoRollConfig,
    PianoRollLM,
    compare_to_baselines,
    per_step,
    piano_roll_scores,
    score_rows,
)
from rnnkit.apps.music.render import plot_piano_roll, render_wav
from rnnkit.apps.music.stats import compare_to_corpus
from rnnkit.apps.music.tokens import TokenConfig, TokenLM, evaluate_tokens
from rnnkit.data import music
from rnnkit.data.music import Piece
from rnnkit.engine import TrainConfig, load_model_state
from rnnkit.errors import UserError

BUILTIN_CORPORA = ("chorales", "folk")
MODEL_TYPES = ("roll", "melody", "events")
QUICK_PIECES = 16  # pieces read in --quick mode (parsing is the slow part)
SPLITS = ("piece", "tune")  # see `split`
SMALLEST_SPLIT = 5  # fewer pieces: no split, training = validation = test (`split`)

Model = PianoRollLM | TokenLM


def load_corpus(
    data: str, limit: int | None = None, warn: Callable[[str], None] | None = music.to_stderr
) -> list[Piece]:
    """``chorales``, ``folk``, a folder of MIDI files or one MIDI file, as pieces.

    Bad MIDI files in a folder are skipped, each with a one-line message through ``warn``,
    and counted in a closing line.
    """
    if data == "chorales":
        return music.load_bach_chorales(limit=limit, progress=warn is not None)
    if data == "folk":
        return music.load_folk_songs(limit=limit, progress=warn is not None)
    path = Path(data)
    if path.is_dir():
        report = music.load_midi_folder(path, warn=warn)
        if warn:
            warn(f"{path}: {report.summary()}")
        return report.pieces[:limit]
    if path.is_file():
        return [music.read_midi(path)]
    raise UserError(
        f"--data {data}: expected 'chorales', 'folk', a folder of MIDI files or a .mid file"
    )


def default_model_type(data: str) -> str:
    """Piano rolls for polyphonic data, melody tokens for the (monophonic) folk songs."""
    return "melody" if data == "folk" else "roll"


def split(
    pieces: Sequence[Piece], seed: int = 0, by: str = "piece"
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """Train / validation / test, 60 / 20 / 20, by piece or by tune.

    ``by="piece"`` shuffles pieces (`music.split_pieces`); ``by="tune"`` keeps every group of
    pieces that share a melody on one side (`music.split_by_tune`): the honest test for the
    chorales, of which many are re-harmonizations of one tune. A corpus too small to split
    (fewer than `SMALLEST_SPLIT` pieces) trains on everything: see `is_held_out`.
    """
    if by not in SPLITS:
        raise UserError(f"--split {by}: expected one of {', '.join(SPLITS)}")
    if not is_held_out(len(pieces)):
        return list(pieces), list(pieces), list(pieces)
    if by == "tune":
        parts = music.split_by_tune(pieces, seed=seed)
        if not all(parts):
            raise UserError(
                f"--split tune: the {len(pieces)} pieces share too few distinct melodies to "
                "fill training, validation and test; use --split piece"
            )
        return parts
    return music.split_pieces(pieces, seed=seed)


def is_held_out(pieces: int) -> bool:
    """Whether `split` holds test pieces out of training for a corpus of ``pieces`` pieces;
    if not, test scores are training scores and must not be called held-out."""
    return pieces >= SMALLEST_SPLIT


@dataclass
class TrainResult:
    """``held_out``: False when the corpus was too small to split (`is_held_out`): ``rows``
    and ``comparisons`` then score the training pieces."""

    model: Model
    history: list[dict]
    rows: list[dict] = field(default_factory=list)  # evaluation on the test split
    comparisons: list[dict] = field(default_factory=list)  # vs the baselines, with intervals
    held_out: bool = True


def train(
    data: str = "chorales",
    out: str | os.PathLike | None = None,
    model_type: str | None = None,
    cell: str = "gru",
    output: str = "made",
    hidden_size: int = 256,
    epochs: int = 40,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    limit: int | None = None,
    transpose_augment: int = 0,
    warn: Callable[[str], None] | None = music.to_stderr,
    save_logs: bool = True,
    resume: bool = False,
    split_by: str = "piece",
) -> TrainResult:
    """Train a model on ``data``, evaluate it on the test split, save it.

    Args:
        data: ``chorales``, ``folk`` or a folder of MIDI files.
        model_type: ``roll`` (piano roll), ``melody`` or ``events``; default from ``data``.
        cell, output, hidden_size: the network (``output`` only for piano rolls).
        limit: use only the first ``limit`` pieces (quick runs).
        warn: where progress and skipped-file messages go (None: silent).
        save_logs: let the engine write ``metrics.csv``, TensorBoard logs and checkpoints
            (one per epoch) into ``out``.
        resume: continue from the latest checkpoint in ``out``; the split is seeded and the
            initial weights are replaced by the checkpoint's, so the run ends with the same
            weights as one never interrupted.
        split_by: ``piece`` or ``tune`` (see `split`); saved with the model, so that
            `evaluate` and ``--primer test:N`` use the same test pieces.
    """
    model_type = model_type or default_model_type(data)
    if model_type not in MODEL_TYPES:
        raise UserError(f"--model-type {model_type}: expected one of {', '.join(MODEL_TYPES)}")
    pieces = load_corpus(data, limit, warn)
    train_set, val_set, test_set = split(pieces, seed=0, by=split_by)
    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        seed=seed,
        device=device,
        out_dir=str(out) if out is not None and save_logs else None,
        progress=warn is not None,
        resume=resume,
    )
    model: Model
    if model_type == "roll":
        model = PianoRollLM(
            PianoRollConfig(
                cell=cell,
                output=output,
                hidden_size=hidden_size,
                transpose_augment=transpose_augment,
            )
        )
    else:
        model = TokenLM(TokenConfig(encoding=model_type, cell=cell, hidden_size=hidden_size))
    history = model.fit(train_set, val_set, config)
    evaluation = _evaluate_model(model, train_set, test_set, split_by)
    if out is not None:
        data_spec = data if data in BUILTIN_CORPORA else str(Path(data).resolve())
        metadata = {"data": data_spec, "limit": limit, "split_seed": 0, "split_by": split_by}
        model.save(out, {**metadata, "history": history})
    return TrainResult(
        model, history, evaluation.rows, evaluation.comparisons, is_held_out(len(pieces))
    )


def load(directory: str | os.PathLike) -> tuple[Model, dict]:
    """A model saved by `train` (piano roll or token model) and its config."""
    _, config = load_model_state(directory)
    if config.get("kind") == "rnnkit.music.piano_roll":
        return PianoRollLM.load(directory)
    if config.get("kind") == "rnnkit.music.tokens":
        return TokenLM.load(directory)
    raise UserError(f"{directory}: {what_folder_holds(directory, config)}, not a music model")


@dataclass
class Evaluation:
    """What `evaluate` measured on one model's test split.

    Attributes:
        split: ``piece`` or ``tune``: how the model's pieces were split (`split`).
        rows: the model and its baselines: NLL per time step (piano rolls) or per token.
        comparisons: piano rolls: the model minus each baseline, NLL per step, with its 95 %
            paired-bootstrap interval over test pieces and the verdict (`compare_to_baselines`).
        seen_tunes: piano rolls split by piece: NLL per step on the test pieces whose tune
            is also in the training split and on the others (empty otherwise).
    """

    split: str
    rows: list[dict]
    comparisons: list[dict] = field(default_factory=list)
    seen_tunes: list[dict] = field(default_factory=list)
    held_out: bool = True  # False: too few pieces to split, the rows score training pieces
    data: str = ""  # what was scored: chorales, folk, or the folder or file


def _model_name(model: PianoRollLM) -> str:
    return f"{model.config.cell.upper()} + {model.config.output.upper()} output"


def _evaluate_model(
    model: Model,
    train_set: Sequence[Piece],
    test_set: Sequence[Piece],
    by: str = "piece",
    seen_tunes: bool = False,
) -> Evaluation:
    """The model beside its baselines on ``test_set`` (``seen_tunes``: see `Evaluation`)."""
    if not isinstance(model, PianoRollLM):
        return Evaluation(by, evaluate_tokens(model, train_set, test_set))
    name = _model_name(model)
    scores = piano_roll_scores({name: model}, train_set, test_set)
    result = Evaluation(by, score_rows(scores), compare_to_baselines(scores, name))
    if seen_tunes and by == "piece" and len(test_set) >= 2:
        result.seen_tunes = seen_tune_rows(scores, train_set, test_set)
    return result


def seen_tune_rows(
    scores: dict[str, np.ndarray], train_set: Sequence[Piece], test_set: Sequence[Piece]
) -> list[dict]:
    """NLL per step of each model on the test pieces that share a tune (`music.tune_groups`)
    with a training piece, and on the rest: how much a by-piece split flatters a model."""
    pieces = [p for p in test_set if len(p.notes)] + list(train_set)
    groups = music.tune_groups(pieces)
    training_groups = set(groups[len(pieces) - len(train_set) :])
    seen = np.array([g in training_groups for g in groups[: len(pieces) - len(train_set)]])
    rows = []
    for subset, mask in (("tune also in training", seen), ("new tune", ~seen)):
        if not mask.any():  # an empty group has no NLL (it printed 0 for every model)
            continue
        row = {"test pieces": subset, "pieces": int(mask.sum())}
        row.update({name: per_step(s[mask]) for name, s in scores.items()})
        rows.append(row)
    return rows


def evaluate(
    directory: str | os.PathLike,
    data: str | None = None,
    warn: Callable[[str], None] | None = music.to_stderr,
) -> Evaluation:
    """Score a saved model on the test split of its corpus (or of ``data``), with baselines.

    The split is the model's own (by piece or by tune, seed as saved), and so is the default
    data (until 2026-12-01 piano-roll models were scored on the Bach chorales whatever they
    had learned). Piano rolls (the chorales at quarter notes: the JSB measure): negative
    log-likelihood per time step in nats, the model minus each baseline with a
    paired-bootstrap interval over test pieces, and, for a split by piece, the NLL on test
    pieces whose tune is also in training beside the others.
    """
    model, config = load(directory)
    if data is None:  # the model's own corpus (a model trained on a folder: that folder)
        default = "chorales" if isinstance(model, PianoRollLM) else "folk"
        data = config.get("data", default)
        limit = config.get("limit") if data == config.get("data") else None
    else:
        limit = None
    by = config.get("split_by", "piece")
    pieces = load_corpus(data, limit, warn)
    train_set, _, test_set = split(pieces, seed=config.get("split_seed", 0), by=by)
    result = _evaluate_model(model, train_set, test_set, by, seen_tunes=True)
    result.held_out = is_held_out(len(pieces))
    result.data = data
    return result


@dataclass
class Generated:
    """What `generate` wrote: the pieces, their files, and how they compare to the corpus."""

    pieces: list[Piece]
    files: list[Path]
    images: list[Path]
    audio: list[Path]
    statistics: list[dict]
    messages: list[str]


def resolve_primer(primer: str | None, config: dict) -> Piece | None:
    """``None``, a MIDI file, or ``test:N``: the N-th held-out piece of the model's corpus."""
    if not primer:
        return None
    if primer.startswith("test:"):
        try:
            index = int(primer.split(":", 1)[1])
        except ValueError:
            raise UserError(f"--primer {primer}: expected test:N with a number N") from None
        data = config.get("data", "chorales")
        _, _, test_set = split(
            load_corpus(data, config.get("limit"), warn=None),
            config.get("split_seed", 0),
            config.get("split_by", "piece"),
        )
        if not 0 <= index < len(test_set):
            raise UserError(
                f"--primer {primer}: expected N from 0 to {len(test_set) - 1} "
                f"(the test split has {len(test_set)} pieces)"
            )
        return test_set[index]
    if Path(primer).is_dir():
        raise UserError(f"--primer {primer}: is a folder; expected a MIDI file or test:N")
    return music.read_midi(primer)


def generate(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    count: int = 2,
    bars: float = 8,
    seconds: float | None = None,
    primer: str | None = None,
    primer_bars: float = 2,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    tempo_bpm: float | None = None,
    key: str | None = None,
    seed: int = 0,
    audio: bool = True,
    corpus: Sequence[Piece] | None = None,
) -> Generated:
    """Sample ``count`` pieces from a saved model; write MIDI, piano-roll PNG and WAV files.

    Args:
        bars / seconds: the length of the new music (``seconds`` wins when given).
        primer: a MIDI file or ``test:N`` (a held-out piece) whose first bars are continued.
        temperature, top_k, top_p: sampling (top_k only for melody/event models).
        tempo_bpm, key: tempo and key (e.g. ``"G"``, ``"F#m"``) of the output.
        corpus: the pieces to compare statistics with (default: the model's training split);
            they are first put through the model's representation (`round_trip`).
    """
    _check_sampling(temperature, top_k, top_p, count, bars if seconds is None else seconds)
    _check_primer_and_tempo(primer_bars, tempo_bpm)
    model, config = load(directory)
    out = Path(out)
    if top_k is not None and isinstance(model, PianoRollLM):
        raise UserError("--top-k: piano-roll models choose each note on or off; use --top-p")
    primer_piece = resolve_primer(primer, config)
    # `is not None`: a tempo of 0 is refused above, never silently replaced.
    tempo = (
        tempo_bpm
        if tempo_bpm is not None
        else (
            primer_piece.tempo_bpm
            if primer_piece
            else (90.0 if isinstance(model, PianoRollLM) else 110.0)
        )
    )
    meter = primer_piece.quarters_per_bar if primer_piece else 4.0
    if seconds is not None:
        bars = seconds * tempo / 60.0 / meter
    key_sharps = music.key_to_sharps(key) if key else None
    options = {
        "bars": bars,
        "primer": primer_piece,
        "primer_bars": primer_bars,
        "temperature": temperature,
        "top_p": top_p,
        "tempo_bpm": tempo,
        "key_sharps": key_sharps,
    }
    if isinstance(model, TokenLM):
        options["top_k"] = top_k
    result = Generated([], [], [], [], [], [])
    primer_quarters = primer_bars * meter if primer_piece else 0.0
    for index in range(count):
        piece = model.generate(seed=seed + index, **options)
        piece.name = f"sample_{index + 1}"
        midi_path = music.write_midi(piece, out / f"{piece.name}.mid")
        if len(piece.notes) == 0:
            result.messages.append(f"{midi_path.name} is silent: try a higher --temperature")
        elif len(music.read_midi(midi_path).notes) != len(piece.notes):  # must parse back
            raise RuntimeError(f"{midi_path}: the written MIDI file does not read back")
        result.pieces.append(piece)
        result.files.append(midi_path)
        title = f"{piece.name}: {bars:g} bars, temperature {temperature:g}" + (
            f", primer {primer}" if primer else ""
        )
        result.images.append(
            plot_piano_roll(
                piece, out / f"{piece.name}.png", title, primer_quarters=primer_quarters
            )
        )
        if audio:
            wav, message = render_wav(midi_path, out / f"{piece.name}.wav")
            if wav is not None:
                result.audio.append(wav)
            elif message not in result.messages:
                result.messages.append(message)
    if corpus is None:
        pieces = load_corpus(config.get("data", "chorales"), config.get("limit"), warn=None)
        corpus = split(pieces, config.get("split_seed", 0), config.get("split_by", "piece"))[0]
    # Compare with the corpus as the model can write it (same grid), so density compares.
    reference = [model.round_trip(piece) for piece in corpus]
    result.statistics = compare_to_corpus(
        {"generated": result.pieces}, reference, "training corpus (model's grid)"
    )
    return result


def _check_sampling(
    temperature: float, top_k: int | None, top_p: float | None, count: int, length: float
) -> None:
    if temperature < 0:
        raise UserError(f"--temperature {temperature}: expected a number >= 0 (0: most likely)")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k {top_k}: expected a positive integer")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"--top-p {top_p}: expected a number in (0, 1]")
    if count < 1 or not 0 < length <= 10_000:
        raise UserError(f"length {length:g} and count {count}: expected positive, sane values")


def _check_primer_and_tempo(primer_bars: float, tempo_bpm: float | None) -> None:
    if not primer_bars > 0:
        raise UserError(f"--primer-bars {primer_bars:g}: expected a positive number of bars")
    low, high = music.TEMPO_RANGE
    if tempo_bpm is not None and not low <= tempo_bpm <= high:
        raise UserError(
            f"--tempo {tempo_bpm:g}: expected {low:g} to {high:g} quarter notes per minute"
        )


def bernoulli_samples(
    corpus: Sequence[Piece], count: int, quarters: float, seed: int = 0
) -> list[Piece]:
    """Pieces drawn from the independent-Bernoulli baseline: a reference for 'unlike the corpus'."""
    baseline = IndependentBernoulli().fit([music.piano_roll(p.to_common_key()) for p in corpus])
    rng = np.random.default_rng(seed)
    return [
        music.roll_to_piece(
            rng.random((int(quarters), music.NUM_PITCHES)) < baseline.prob_on, 1, name="bernoulli"
        )
        for _ in range(count)
    ]
