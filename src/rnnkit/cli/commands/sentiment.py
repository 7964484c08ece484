"""``rnnkit sentiment train | predict | evaluate``: a BiLSTM sentiment classifier of short texts.

The work is done by `rnnkit.apps.sentiment`; this module only maps flags to it.
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    check_out_folder,
    check_resume,
    dropout_rate,
    input_lines,
    model_folder,
    out_dir,
    positive_int,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.report import Section, table_to_text

NAME = "sentiment"
HELP = "sentiment of short texts: BiLSTM classifier vs TF-IDF + LR and VADER"
ORDER = 50
DEFAULT_MODEL = "models/sentiment"
DESCRIPTION = """\
Sentiment of short texts with a bidirectional LSTM over word and subword tokens.

Trains on VADER's 10,605 human-rated movie snippets (fetched once with pip) or your own
CSV/TSV/JSONL file; 'evaluate' compares it with TF-IDF + logistic regression and VADER on a
fixed held-out split, and on tweets and Amazon snippets (domain shift).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, DESCRIPTION)

    train = add_verb(
        verbs,
        "train",
        "train a classifier (default: the movie snippets)",
        [
            "rnnkit sentiment train --out models/sentiment",
            "rnnkit sentiment train --data reviews.csv --text-column review --label-column stars "
            "--out models/reviews",
            "rnnkit sentiment train --task regress --out models/rating  # predict the -4..4 rating",
            "rnnkit sentiment train --out models/sentiment --resume  # continue a killed run from"
            " the last checkpoints (models/sentiment/member-N/checkpoints, written every epoch)",
        ],
    )
    add_common_flags(train, epochs=6)
    train.set_defaults(epochs=None)  # 6, or 1 with --quick, unless --epochs is given
    _add_data_flags(train)
    train.add_argument("--task", choices=["classify", "regress"], default="classify")
    train.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    train.add_argument("--pooling", choices=["max", "attention", "max+attention"], default="max")
    train.add_argument(
        "--tokens", choices=["word", "subword", "word+subword"], default="word+subword"
    )
    train.add_argument("--hidden-size", type=positive_int, default=128)
    train.add_argument(
        "--ensemble",
        type=positive_int,
        default=None,
        help="networks trained with seeds seed, seed+1, ...; probabilities averaged "
        "(default: 3, 1 with --quick)",
    )
    train.add_argument(
        "--recurrent-dropout",
        type=dropout_rate,
        default=0.0,
        help="variational dropout on the LSTM state (slower: no fused kernel)",
    )
    train.add_argument(
        "--class-weight",
        choices=["auto", "balanced", "none"],
        default="auto",
        help="weigh each class's loss inversely to its share of the training texts; auto: "
        "when the commonest class has at least twice the texts of the rarest (default: auto)",
    )
    train.set_defaults(func=run_train)

    predict = add_verb(
        verbs,
        "predict",
        "label and probability of texts (arguments, file, stdin)",
        [
            'rnnkit sentiment predict --model models/sentiment "a gorgeous, witty film"',
            "rnnkit sentiment predict --model models/sentiment --file texts.txt",
            "echo 'dull and overlong' | rnnkit sentiment predict --model models/sentiment",
            'rnnkit sentiment predict "not bad at all" --explain why.html',
        ],
    )
    predict.add_argument("texts", nargs="*", help="texts to classify (default: --file or stdin)")
    predict.add_argument("--model", default=DEFAULT_MODEL, help=f"(default: {DEFAULT_MODEL})")
    predict.add_argument("--file", default=None, help="a UTF-8 file with one text per line")
    predict.add_argument(
        "--explain",
        default=None,
        metavar="HTML",
        help="also write the per-word saliency as highlighted HTML",
    )
    predict.add_argument("--method", choices=["saliency", "attention"], default="saliency")
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(func=run_predict)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "accuracy and macro-F1 against TF-IDF + LR and VADER, with paired-bootstrap intervals",
        [
            "rnnkit sentiment evaluate --model models/sentiment --out results/sentiment",
            "rnnkit sentiment evaluate --model models/sentiment --data test.csv",
        ],
    )
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help=f"(default: {DEFAULT_MODEL})")
    evaluate.add_argument("--out", default=None, help="folder for metrics.json")
    evaluate.add_argument("--device", default="cpu")
    _add_data_flags(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=None, help="CSV/TSV/JSONL of your own (default: VADER's movie snippets)"
    )
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.sentiment import SentimentClassifier, SentimentConfig, training_data

    check_out_folder(args)
    out = out_dir(args, DEFAULT_MODEL)
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    # its warnings (a class of one example) print as one line: `rnnkit.cli.main`
    split = training_data(args.data, args.text_column, args.label_column, args.task, args.quick)
    config = SentimentConfig(
        task=args.task,
        recurrent_dropout=args.recurrent_dropout,
        ensemble=args.ensemble or (1 if args.quick else 3),
        cell=args.cell,
        pooling=args.pooling,
        tokens=args.tokens,
        hidden_size=16 if args.quick else args.hidden_size,
        embedding_dim=16 if args.quick else 128,
        epochs=args.epochs or (1 if args.quick else 6),
        class_weight=args.class_weight,
        seed=args.seed,
        device=resolve_device(args.device),
    )
    target = "rating" if args.task == "regress" else "label"
    # The movie snippets carry mean human ratings: a classifier learns them on the side.
    with_ratings = args.task == "classify" and "rating" in split.train
    classifier = SentimentClassifier(config).fit(
        split.train["text"],
        split.train[target],
        split.val["text"],
        split.val[target],
        ratings=split.train["rating"] if with_ratings else None,
        val_ratings=split.val["rating"] if with_ratings else None,
        out_dir=out,
        resume=resume,
    )
    if classifier.class_weights is not None:
        weights = ", ".join(
            f"{name} {weight:.2f}"
            for name, weight in zip(classifier.classes, classifier.class_weights, strict=True)
        )
        print(f"classes weighted inversely to their share of the training texts: {weights}")
    classifier.save(out)
    if args.data:  # the held-out tenth of the user's file: what `evaluate` scores by default
        from rnnkit.files import write_text

        write_text(out / HELD_OUT, split.test[["text", target]].to_csv(index=False))
    report_metrics(classifier.history, out, title=f"trained on {len(split.train)} texts")
    print(f"saved the model to {out}")
    return 0


# A model trained on a user's file keeps that file's held-out test texts beside it.
HELD_OUT = "test.csv"


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.sentiment import SentimentClassifier, explain, explanation_html
    from rnnkit.apps.sentiment.explain import check_method
    from rnnkit.files import write_text

    texts = [line for line in input_lines(args.texts, args.file) if line.strip()]
    if not texts:
        raise UserError("no text to classify; give texts as arguments, --file, or on stdin")
    classifier = SentimentClassifier.load(model_folder(args.model), device=args.device)
    if args.explain:
        check_method(classifier, args.method)  # before any output, not after the labels
    predictions = classifier.predict(texts)
    for p in predictions:
        label = f"{p.label:.2f}" if isinstance(p.label, float) else p.label
        print(f"{label}\t{p.probability:.3f}\t{p.text}")
    if args.explain:
        items = [(p, explain(classifier, p.text, args.method)) for p in predictions]
        write_text(args.explain, explanation_html(items))
        print(f"wrote {args.explain}", file=sys.stderr)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.sentiment import SentimentClassifier, evaluate_on_file
    from rnnkit.apps.sentiment.benchmark import (
        accuracy_intervals,
        benchmark_predictions,
        benchmark_rows,
        movie_polarity_split,
        seed_spread,
        verdict_sentences,
    )

    check_out_folder(args)
    classifier = SentimentClassifier.load(model_folder(args.model), device=args.device)
    held_out = model_folder(args.model) / HELD_OUT
    if not args.data and held_out.exists():
        # Trained on a user's file: its held-out tenth, not the movie snippets (which a
        # model of other texts and labels was scored on, silently).
        print(f"scoring the held-out texts of the training file ({held_out})")
        target = "rating" if classifier.config.task == "regress" else "label"
        rows = evaluate_on_file(classifier, held_out, "text", target)
        report_metrics(rows, out_dir(args, "results/sentiment"), title=f"{held_out}")
        return 0
    if args.data:
        rows = evaluate_on_file(classifier, args.data, args.text_column, args.label_column)
        report_metrics(rows, out_dir(args, "results/sentiment"), title=f"{args.data}")
        return 0
    if classifier.config.task != "classify" or classifier.classes != ["negative", "positive"]:
        raise UserError(
            f"{args.model}: the movie benchmark needs a negative/positive classifier "
            f"(this one predicts {classifier.classes or 'ratings'}); pass --data"
        )
    predictions = benchmark_predictions(classifier, movie_polarity_split())
    rows = benchmark_rows(predictions)
    intervals = accuracy_intervals(predictions)
    spread = seed_spread(rows)
    print("rnnkit minus each baseline, accuracy, 95% paired-bootstrap interval over snippets:")
    print(table_to_text(intervals))
    if spread:
        print("single networks (the ensemble's members) on the held-out movie snippets:")
        print(table_to_text([spread]))
    verdicts = verdict_sentences(intervals)
    out = out_dir(args, "results/sentiment")  # created only once there is something to write
    report_metrics(
        rows,
        out,
        title="held-out movie snippets, then domain shift (binary polarity)",
        extra={"intervals": intervals, "seed_spread": spread, "verdicts": verdicts},
    )
    print("\n".join(verdicts))
    return 0


def tour(ctx: TourContext) -> Section:
    from rnnkit.apps.sentiment.tour import sentiment_tour

    return sentiment_tour(
        ctx.out, quick=ctx.quick, seed=ctx.seed, device=ctx.device, keep=ctx.models
    )
