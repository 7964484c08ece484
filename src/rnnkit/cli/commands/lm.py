"""``rnnkit lm train | generate | evaluate``: character- and subword-level LSTM language models.

Trains on the World English Bible (Debian sword-text-web), the KJV, or any UTF-8 text file;
``evaluate`` reports bits per character on the held-out end of the text next to xz and bzip2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    check_out_folder,
    check_resume,
    model_folder,
    non_negative_float,
    non_negative_int,
    out_dir,
    positive_int,
    probability,
    report_metrics,
    resolve_device,
)
from rnnkit.report import Section

NAME = "lm"
HELP = "language models of text: train on the Bible or your file, generate, bits per char"
ORDER = 51
DEFAULT_MODEL = "models/lm"
DESCRIPTION = """\
Character- and subword-level LSTM language models trained with truncated backpropagation
through time: on the World English Bible (Debian sword-text-web), the KJV (sword-text-kjv) or
any UTF-8 text file. 'generate' streams greedy, temperature, top-k or nucleus samples;
'evaluate' reports bits per character on the held-out end of the text next to xz and bzip2.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, DESCRIPTION)

    train = add_verb(
        verbs,
        "train",
        "train with truncated backpropagation through time",
        [
            "rnnkit lm train --out models/lm  # char-level, World English Bible",
            "rnnkit lm train --tokens subword --text kjv --out models/lm-kjv",
            "rnnkit lm train --text my_novel.txt --epochs 3 --hidden-size 512",
            "rnnkit lm train --out models/lm --resume  # continue a killed run from the last"
            " checkpoint (models/lm/checkpoints: every 250 steps and at each epoch's end)",
        ],
    )
    add_common_flags(
        train, epochs_default="enough to read about 4 million characters, 1 for the Bible"
    )
    train.add_argument(
        "--text",
        default="web",
        help="web (World English Bible), kjv, or a UTF-8 text file (default: web)",
    )
    train.add_argument("--tokens", choices=["char", "subword"], default="char")
    train.add_argument("--hidden-size", type=positive_int, default=256)
    train.add_argument("--layers", type=positive_int, default=1)
    train.add_argument("--bptt", type=positive_int, default=100, help="steps per backprop window")
    train.add_argument(
        "--max-batches",
        type=positive_int,
        default=None,
        help="stop each epoch after this many batches",
    )
    train.set_defaults(func=run_train)

    generate = add_verb(
        verbs,
        "generate",
        "continue a prompt, streaming the text as it comes",
        [
            'rnnkit lm generate --model models/lm "And God said"',
            'rnnkit lm generate "In the beginning" --temperature 0.7 --top-p 0.9 --length 500',
            'rnnkit lm generate "Jesus wept" --greedy',
        ],
    )
    generate.add_argument("prompt", nargs="?", default="", help="text to continue")
    generate.add_argument("--model", default=DEFAULT_MODEL, help=f"(default: {DEFAULT_MODEL})")
    generate.add_argument("--length", type=positive_int, default=300, help="tokens to generate")
    generate.add_argument(
        "--temperature", type=non_negative_float, default=0.8, help="0 is greedy (default 0.8)"
    )
    generate.add_argument(
        "--top-k", type=positive_int, default=None, help="sample among the k likeliest tokens"
    )
    generate.add_argument(
        "--top-p", type=probability, default=None, help="nucleus sampling share, in (0, 1]"
    )
    generate.add_argument("--greedy", action="store_true", help="always the most likely token")
    generate.add_argument("--seed", type=non_negative_int, default=0)
    generate.add_argument("--device", default="cpu")
    generate.set_defaults(func=run_generate)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "bits per character on held-out text vs xz and bzip2",
        [
            "rnnkit lm evaluate --model models/lm --out results/lm",
            "rnnkit lm evaluate --model models/lm --text my_novel.txt",
        ],
    )
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help=f"(default: {DEFAULT_MODEL})")
    evaluate.add_argument(
        "--text",
        default=None,
        help="web, kjv or a file; its last 5%% is scored (default: the model's training text)",
    )
    evaluate.add_argument("--out", default=None, help="folder for metrics.json")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--quick", action="store_true", help="score 20,000 characters only")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.lm import LanguageModel, LMConfig, load_corpus, split_text

    check_out_folder(args)
    out = out_dir(args, DEFAULT_MODEL)
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    split = split_text(load_corpus(args.text))
    train_text = split.train[-200_000:] if args.quick else split.train
    config = LMConfig(
        tokens=args.tokens,
        hidden_size=64 if args.quick else args.hidden_size,
        embedding_dim=64 if args.quick else 128,
        num_layers=args.layers,
        bptt=args.bptt,
        epochs=args.epochs or (1 if args.quick else None),
        seed=args.seed,
        max_batches=args.max_batches or (20 if args.quick else None),
        device=resolve_device(args.device),
    )
    lm = LanguageModel(config).fit(
        train_text, split.val[:50_000], progress=True, out_dir=out, resume=resume
    )
    lm.save(out)
    report_metrics(
        lm.history,
        out,
        title=f"trained on {len(train_text):,} characters",
        extra={"text": _text_source(args.text)},
    )
    print(f"saved the model to {out}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from rnnkit.apps.lm import LanguageModel

    lm = LanguageModel.load(model_folder(args.model), args.device)
    lm.encode(args.prompt, what="prompt")  # unseen characters: an error before any output
    sys.stdout.write(args.prompt)
    for piece in lm.stream(
        args.prompt,
        args.length,
        temperature=0.0 if args.greedy else args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    ):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from rnnkit.apps.lm import LanguageModel, compare_with_compressors, load_corpus, split_text
    from rnnkit.apps.lm.benchmark import TextSplit

    check_out_folder(args)
    folder = model_folder(args.model)
    lm = LanguageModel.load(folder, args.device)
    metrics = folder / "metrics.json"
    source = args.text or (
        json.loads(metrics.read_text()).get("text", "web") if metrics.exists() else "web"
    )
    split = split_text(load_corpus(source))
    if args.quick:
        split = TextSplit(split.train, split.val, split.test[:20_000])
    rows = compare_with_compressors(lm, split)
    out = out_dir(args, "results/lm")
    report_metrics(
        rows,
        out,
        title=f"held-out text: last {len(split.test):,} characters of {source}",
        extra={"text": source, "test_chars": len(split.test)},
    )
    return 0


def _text_source(text: str) -> str:
    """What metrics.json records as the training text: a bundled name as it is, a file as
    an absolute path, so that `evaluate` finds it from any folder."""
    from rnnkit.apps.lm.benchmark import CORPORA

    return text if text in CORPORA else str(Path(text).resolve())


def tour(ctx: TourContext) -> Section:
    from rnnkit.apps.lm.tour import lm_tour

    return lm_tour(ctx.out, quick=ctx.quick, seed=ctx.seed, device=ctx.device, keep=ctx.models)
