"""``rnnkit music train | generate | evaluate``: compose music with RNNs (Python API:
`rnnkit.apps.music.workflow`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    check_resume,
    non_negative_float,
    non_negative_int,
    out_dir,
    positive_float,
    positive_int,
    probability,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.report import Section, table_to_text

NAME = "music"
HELP = "learn a corpus of music (Bach chorales, folk tunes, your MIDI files) and compose"
ORDER = 60

DESCRIPTION = """\
Learn music with an RNN and compose new pieces as standard MIDI files.

Data: 'chorales' (349 Bach chorales from music21, parsed once and cached), 'folk'
(Essen folk songs from music21) or a folder of your MIDI files (bad files are skipped
and counted). Models: 'roll' (polyphonic piano roll, pitches 21-108, quarter-note grid;
output 'made' or 'nade' models the notes of a frame jointly, 'bernoulli' independently),
'melody' (monophonic tokens) and 'events' (note-on/off, time-shift, velocity).
Default epochs: 40 for piano rolls, 10 for melody and event models.
"""
DEFAULT_EPOCHS = {"roll": 40, "melody": 10, "events": 10}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, DESCRIPTION)

    train = add_verb(
        verbs,
        "train",
        "train a music model and evaluate it on held-out pieces",
        [
            "rnnkit music train --out runs/music",
            "rnnkit music train --data folk --out runs/folk --epochs 10",
            "rnnkit music train --data my_midi/ --model-type events --out runs/mine",
            "rnnkit music train --quick --out /tmp/music",
            "rnnkit music train --out runs/music --resume   # continue a killed run from its"
            " last checkpoint (runs/music/checkpoints, written every epoch)",
        ],
    )
    add_common_flags(train)  # epochs: see DEFAULT_EPOCHS
    train.add_argument(
        "--data", default="chorales", help="chorales, folk or a folder of MIDI files"
    )
    train.add_argument(
        "--model-type",
        choices=["roll", "melody", "events"],
        default=None,
        help="default: melody for folk, roll otherwise",
    )
    train.add_argument("--cell", choices=["lstm", "gru"], default="gru")
    train.add_argument(
        "--output",
        choices=["made", "nade", "bernoulli"],
        default="made",
        help="piano-roll output layer (default: made)",
    )
    train.add_argument("--hidden-size", type=positive_int, default=256)
    train.add_argument("--lr", type=positive_float, default=2e-3)
    train.add_argument(
        "--transpose",
        type=non_negative_int,
        default=0,
        help="random transposition of up to N semitones while training",
    )
    train.add_argument(
        "--split",
        choices=["piece", "tune"],
        default="piece",
        help="train/validation/test by piece, or by tune: pieces that share a melody "
        "(re-harmonizations) stay on one side (default: piece)",
    )
    train.set_defaults(func=run_train)

    generate = add_verb(
        verbs,
        "generate",
        "compose pieces: MIDI, piano-roll PNG, WAV",
        [
            "rnnkit music generate --model runs/music --out samples --bars 16",
            "rnnkit music generate --model runs/music --primer test:0 --temperature 0.8",
            "rnnkit music generate --model runs/music --primer song.mid --key G --tempo 72",
            "rnnkit music generate --model runs/folk --top-k 10 --top-p 0.95 --seconds 30",
        ],
    )
    generate.add_argument("--model", required=True, help="a folder written by 'music train'")
    generate.add_argument(
        "--out", default=None, help="folder for the samples (default: MODEL/samples)"
    )
    generate.add_argument("--count", type=positive_int, default=2, help="pieces to compose")
    generate.add_argument(
        "--bars", type=positive_float, default=8, help="length in bars (default 8)"
    )
    generate.add_argument(
        "--seconds", type=positive_float, default=None, help="length in seconds instead"
    )
    generate.add_argument(
        "--primer", default=None, help="a MIDI file, or test:N (a held-out piece) to continue"
    )
    generate.add_argument(
        "--primer-bars",
        type=positive_float,
        default=2,
        help="bars of the primer to continue (default 2)",
    )
    generate.add_argument(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        help="sampling temperature; 0 takes the most likely choice (default 1)",
    )
    generate.add_argument(
        "--top-k", type=positive_int, default=None, help="melody/event models only"
    )
    generate.add_argument("--top-p", type=probability, default=None)
    generate.add_argument(
        "--tempo",
        type=tempo_bpm,
        default=None,
        help="quarter notes per minute, 4 to 1000 (default: the primer's, else 90 for "
        "piano rolls and 110 for melody/event models)",
    )
    generate.add_argument("--key", default=None, help="key of the output, e.g. G, Bb, F#m")
    generate.add_argument("--no-audio", action="store_true", help="skip the WAV files")
    generate.add_argument("--seed", type=non_negative_int, default=0)
    generate.add_argument("--quick", action="store_true", help="one short piece")
    generate.set_defaults(func=run_generate)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "NLL on held-out pieces beside simple baselines, with intervals",
        [
            "rnnkit music evaluate --model runs/music",
            "rnnkit music evaluate --model runs/music --model runs/music-by-tune --out results",
            "rnnkit music evaluate --model runs/mine --data chorales",
        ],
    )
    evaluate.add_argument(
        "--model",
        required=True,
        action="append",
        help="a folder written by 'music train'; repeat it to score several models (e.g. "
        "one trained --split piece and one --split tune) into one metrics.json",
    )
    evaluate.add_argument(
        "--data",
        default=None,
        help="default: the model's own data (its held-out pieces)",
    )
    evaluate.add_argument(
        "--out",
        default=None,
        help="folder for metrics.json (default: the first MODEL/evaluation)",
    )
    evaluate.set_defaults(func=run_evaluate)


def tempo_bpm(text: str) -> float:
    """A ``--tempo`` MIDI can store (`rnnkit.data.music.TEMPO_RANGE`), checked before any work."""
    from rnnkit.data.music import TEMPO_RANGE  # when parsing --tempo: `--help` stays fast

    low, high = TEMPO_RANGE
    value = positive_float(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"expected {low:g} to {high:g} quarter notes per minute, got {text}"
        )
    return value


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.music import workflow

    out = out_dir(args, "runs/music")
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    model_type = args.model_type or workflow.default_model_type(args.data)
    epochs = args.epochs or DEFAULT_EPOCHS[model_type]
    if args.quick:
        epochs = min(epochs, 10)
    result = workflow.train(
        args.data,
        out,
        model_type,
        args.cell,
        args.output,
        hidden_size=64 if args.quick else args.hidden_size,
        epochs=epochs,
        lr=args.lr,
        seed=args.seed,
        device=resolve_device(args.device),
        limit=workflow.QUICK_PIECES if args.quick else None,
        transpose_augment=args.transpose,
        resume=resume,
        split_by=args.split,
    )
    last = result.history[-1] if result.history else {}
    print(
        f"trained {len(result.history)} epochs: loss {last.get('loss', float('nan')):.3f}, "
        f"val_loss {last.get('val_loss', float('nan')):.3f}; model saved in {out}"
    )
    title = "held-out pieces of the training data:"
    if not result.held_out:
        print(f"rnnkit: warning: --data {args.data}: {_too_few_pieces()}", file=sys.stderr)
        title = "training pieces (nothing held out):"
    extra = {"history": result.history, "scored_on": _scored_on(result.held_out)}
    report_metrics(result.rows, out, title, extra=extra)
    if result.comparisons:  # does it beat its baselines? (with few steps it may not)
        print("model minus baseline, NLL per step, 95% paired-bootstrap interval over test pieces:")
        print(table_to_text(result.comparisons))
    return 0


def _scored_on(held_out: bool) -> str:
    """What metrics.json says the scores are on: a reader must not take training scores for
    held-out ones."""
    return "held-out test pieces" if held_out else "training pieces (too few to hold any out)"


def _too_few_pieces() -> str:
    from rnnkit.apps.music import workflow

    return (
        f"fewer than {workflow.SMALLEST_SPLIT} pieces, so none is held out; the "
        "scores below are on the training pieces and flatter the model"
    )


def _samples_folder(args: argparse.Namespace) -> Path:
    """``--out``, or MODEL/samples, created; a file in the way is a one-line error, not
    mkdir's FileExistsError or NotADirectoryError."""
    path = Path(args.out or f"{args.model}/samples")
    blocking = next((f for f in (path, *path.parents) if f.exists() and not f.is_dir()), None)
    if blocking is not None:
        where = f"--out {path}" if args.out else f"{path} (the default without --out)"
        raise UserError(f"{where}: {blocking} is a file; expected a folder for the samples")
    return out_dir(args, str(path))


def run_generate(args: argparse.Namespace) -> int:
    from rnnkit.apps.music import workflow

    out = _samples_folder(args)
    made = workflow.generate(
        args.model,
        out,
        count=1 if args.quick else args.count,
        bars=min(args.bars, 2) if args.quick else args.bars,
        seconds=args.seconds,
        primer=args.primer,
        primer_bars=args.primer_bars,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        tempo_bpm=args.tempo,
        key=args.key,
        seed=args.seed,
        audio=not args.no_audio,
    )
    for path in [*made.files, *made.images, *made.audio]:
        print(f"wrote {path}")
    for message in made.messages:
        print(message)
    report_metrics(made.statistics, out, "generated pieces vs the training corpus:")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.music import workflow

    rows, comparisons, seen_tunes, not_held_out, scored = [], [], [], [], []
    for model in args.model:
        result = workflow.evaluate(model, args.data)
        scored.append(result.data)
        if not result.held_out:
            print(f"rnnkit: warning: {model}: {_too_few_pieces()}", file=sys.stderr)
            not_held_out.append(model)
        tag = {"model folder": model, "split": f"by {result.split}"}
        rows += [{**tag, **row} for row in result.rows]
        comparisons += [{**tag, **row} for row in result.comparisons]
        seen_tunes += [{**tag, **row} for row in result.seen_tunes]
    if comparisons:
        print("model minus baseline, NLL per step, 95% paired-bootstrap interval over test pieces:")
        print(table_to_text(comparisons))
    if seen_tunes:
        print("split by piece: test pieces whose tune is also a training piece's, and the others:")
        print(table_to_text(seen_tunes))
    out = out_dir(args, f"{args.model[0]}/evaluation")
    extra = {
        "comparisons": comparisons,
        "seen_tunes": seen_tunes,
        "scored_on": _scored_on(not not_held_out),
        "scored_on_training_pieces": not_held_out,  # the model folders without a test split
    }
    data = ", ".join(dict.fromkeys(scored))  # in order, once each
    title = f"negative log-likelihood on {data}, " + (
        "held-out pieces:" if not not_held_out else "the test split (training pieces for some):"
    )
    report_metrics(rows, out, title, extra=extra)
    return 0


def tour(ctx: TourContext) -> Section:
    """Chorales: train a GRU + MADE piano-roll model, score it beside the baselines, compose."""
    from rnnkit.apps.music import workflow
    from rnnkit.data import music

    began = time.perf_counter()
    limit = workflow.QUICK_PIECES if ctx.quick else None
    result = workflow.train(
        "chorales",
        ctx.models,  # kept for `make serve`
        "roll",
        "gru",
        "made",
        hidden_size=64 if ctx.quick else 256,
        epochs=8 if ctx.quick else 30,
        lr=1e-2 if ctx.quick else 2e-3,
        seed=ctx.seed,
        device=ctx.device,
        limit=limit,
        warn=None,
        save_logs=False,
    )
    trained = time.perf_counter() - began
    train_set, _, test_set = workflow.split(music.load_bach_chorales(limit=limit))
    bars = 4 if ctx.quick else 8
    # Two kinds of samples: continuations of a held-out chorale, and pieces from silence.
    kinds = {
        "continued": dict(primer="test:0", primer_bars=2, temperature=1.0),
        "from_scratch": dict(temperature=0.9),
    }
    made = {
        name: workflow.generate(
            ctx.models, ctx.out / name, count=1 if ctx.quick else 2, bars=bars,
            seed=ctx.seed, corpus=train_set, **options,
        )
        for name, options in kinds.items()
    }  # fmt: skip
    pieces = [piece for m in made.values() for piece in m.pieces]
    noise = workflow.bernoulli_samples(train_set, 3, bars * 4, ctx.seed)
    # The corpus on the model's quarter-note grid: what the model could at best reproduce.
    model = result.model
    stats = workflow.compare_to_corpus(
        {
            "generated": pieces,
            "held-out chorales": [model.round_trip(p) for p in test_set],
            "Bernoulli-baseline samples": noise,
        },
        [model.round_trip(p) for p in train_set],
        "training chorales",
    )

    section = Section(title="Music: Bach chorales")
    section.text(
        f"A GRU with an autoregressive (MADE) output over the 88 pitches learned "
        f"{len(train_set)} Bach chorales from music21 as piano rolls on a quarter-note grid, "
        f"transposed to C major / A minor, split by piece ({trained:.0f} s). The first table "
        f"scores {len(test_set)} held-out chorales in nats per time step, lower is better "
        f"(Bai et al. 2018 report 8.10 for a TCN on JSB Chorales, another split and "
        f"representation; a split by piece also puts re-harmonizations of a test tune in "
        f"training: 'rnnkit music train --split tune' keeps each tune on one side). The second "
        f"compares "
        f"generated pieces with the corpus (on the same grid): means per piece, the share of "
        f"consonant intervals and the total-variation distance of pitch-class histograms "
        f"(0 = same, 1 = disjoint); "
        f"held-out chorales show what 'like the corpus' looks like."
    )
    section.table(result.rows, "negative log-likelihood per time step, held-out chorales")
    section.table(stats, "generated pieces vs the corpus")
    captions = {
        "continued": "a held-out chorale's first 2 bars (shaded) continued by the model",
        "from_scratch": "composed from silence, temperature 0.9",
    }
    for name, generated in made.items():
        for image in generated.images:
            section.image(image.relative_to(ctx.out.parent), f"{image.stem}: {captions[name]}")
        for path in generated.files:
            section.file(path.relative_to(ctx.out.parent), f"standard MIDI file, {captions[name]}")
        for wav in generated.audio:
            section.audio.append((str(wav.relative_to(ctx.out.parent)), f"{name}/{wav.name}"))
    for message in dict.fromkeys(m for generated in made.values() for m in generated.messages):
        section.leave_out(message)
    print(table_to_text(result.rows))
    return section
