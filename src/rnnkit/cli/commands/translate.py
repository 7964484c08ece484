"""``rnnkit translate train | predict | evaluate``: English <-> Spanish with attention.

The work is in `rnnkit.apps.translate`; this module reads flags and files and prints.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    check_out_folder,
    check_resume,
    existing_file,
    input_lines,
    model_folder,
    non_negative_float,
    out_dir,
    positive_float,
    positive_int,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.files import write_json, write_text
from rnnkit.report import Section

NAME = "translate"
HELP = "machine translation (English <-> Spanish Bible verses, or your parallel text)"
ORDER = 70
QUICK = {
    "max_words": 12,
    "train_pairs": 300,
    "test_pairs": 40,
    "hidden": 64,
    "vocab": 400,
    "epochs": 2,
}
DEFAULT_EPOCHS = 8  # the recipe behind the README's table
LANGUAGES = {"en": ("en", "es"), "es": ("es", "en")}  # --source: (source, target)


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, __doc__)

    train = add_verb(
        verbs,
        "train",
        "learn subword vocabularies and an attentional seq2seq",
        [
            "rnnkit translate train --out models/en-es   # the README's recipe: 8 epochs",
            "rnnkit translate train --source es --out models/es-en",
            "rnnkit translate train --pairs my_pairs.tsv --out models/mine",
            "rnnkit translate train --quick --out /tmp/mt",
            "rnnkit translate train --out models/en-es --resume  # continue a killed"
            " run from the last checkpoint in models/en-es/checkpoints (every 200 steps and at"
            " each epoch's end); give the same flags as the killed run",
        ],
    )
    add_common_flags(train, epochs=DEFAULT_EPOCHS)
    train.set_defaults(epochs=None)  # DEFAULT_EPOCHS, or 2 with --quick, unless --epochs
    _add_data_flags(train)
    train.add_argument(
        "--attention",
        choices=["additive", "multiplicative"],
        default="additive",
        help="attention scoring (default: additive)",
    )
    train.add_argument(
        "--hidden-size", type=positive_int, default=256, help="decoder size (default 256)"
    )
    train.add_argument(
        "--vocab-size",
        type=positive_int,
        default=4000,
        help="BPE pieces per language (default 4000)",
    )
    train.add_argument(
        "--lr", type=positive_float, default=2e-3, help="learning rate (default 2e-3)"
    )
    train.set_defaults(func=run_train)

    predict = add_verb(
        verbs,
        "predict",
        "translate sentences (arguments, --file, or stdin)",
        [
            'rnnkit translate predict --model models/en-es "And God said, Let there be light."',
            "rnnkit translate predict --model models/en-es --file sentences.txt",
            "echo 'The LORD is my shepherd.' | rnnkit translate predict --model models/en-es",
        ],
    )
    predict.add_argument("sentences", nargs="*", help="sentences to translate")
    predict.add_argument("--model", required=True, help="folder written by 'translate train'")
    predict.add_argument("--file", default=None, help="a file with one sentence per line")
    _add_decoding_flags(predict)
    predict.add_argument("--device", default="auto")
    predict.set_defaults(func=run_predict)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "BLEU and chrF vs Apertium and a word dictionary",
        [
            "rnnkit translate evaluate --model models/en-es --out results/en-es",
            "rnnkit translate evaluate --model models/mine --pairs held_out.tsv",
        ],
    )
    evaluate.add_argument("--model", required=True, help="folder written by 'translate train'")
    evaluate.add_argument(
        "--pairs",
        default=None,
        help="TSV of source<TAB>reference to score (default: the model's held-out Bible verses)",
    )
    evaluate.add_argument("--source-file", default=None, help="sources, one per line")
    evaluate.add_argument("--target-file", default=None, help="references, one per line")
    evaluate.add_argument(
        "--limit", type=positive_int, default=None, help="score only the first N pairs"
    )
    evaluate.add_argument("--out", default=None, help="folder for metrics.json and outputs")
    _add_decoding_flags(evaluate)
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(func=run_evaluate)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=["en", "es"],
        default=None,
        help="source language, en (default) or es: the Bible direction and Apertium pair; "
        "with your own pairs, naming it adds the Apertium comparison to 'evaluate'",
    )
    parser.add_argument(
        "--max-words",
        type=positive_int,
        default=25,
        help="Bible verses of at most this many words (default 25)",
    )
    parser.add_argument(
        "--split",
        choices=["chapter", "book"],
        default="chapter",
        help="hold out whole chapters (default) or whole books",
    )
    parser.add_argument("--pairs", default=None, help="your own pairs: TSV source<TAB>target")
    parser.add_argument("--source-file", default=None, help="your own sources, one per line")
    parser.add_argument("--target-file", default=None, help="their translations, line-aligned")


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam", type=positive_int, default=5, help="beam width; 1 is greedy (default 5)"
    )
    parser.add_argument(
        "--length-penalty",
        type=non_negative_float,
        default=1.0,
        help="rank beams by log-prob / length ** this (default 1.0)",
    )


# ---------------------------------------------------------------------------- data


def _user_pairs(args: argparse.Namespace) -> list | None:
    from rnnkit.data.parallel import read_parallel_files, read_parallel_tsv

    if args.pairs and (args.source_file or args.target_file):
        raise UserError(
            "--pairs and --source-file/--target-file both give the pairs; use one or the other"
        )
    if args.pairs:
        return read_parallel_tsv(existing_file(args.pairs, "TSV file"))
    if args.source_file or args.target_file:
        if not (args.source_file and args.target_file):
            raise UserError("--source-file and --target-file go together; give both")
        return read_parallel_files(existing_file(args.source_file), existing_file(args.target_file))
    return None


def bible_splits(data: dict) -> dict[str, list]:
    """The Bible splits described by a model's data.json (direction, length, split, seed)."""
    # Remembered: the tour and the tests ask for the same splits right after training.
    cached = _bible_splits(json.dumps(data, sort_keys=True))
    return {name: list(pairs) for name, pairs in cached.items()}


@functools.lru_cache(maxsize=2)
def _bible_splits(data_json: str) -> dict[str, list]:
    from rnnkit.data.parallel import load_bible_pairs, split_pairs

    data = json.loads(data_json)
    pairs = load_bible_pairs(data["source"], max_words=data["max_words"])
    splits = split_pairs(pairs, by=data["split"], seed=data["seed"])
    for name, limit in (("train", data.get("train_pairs")), ("test", data.get("test_pairs"))):
        if limit:
            splits[name] = splits[name][:limit]
    return splits


# Fewer training pairs than this get a warning: an audit's 4,000 Debian message pairs
# trained a model the word-for-word dictionary beat by 11 BLEU.
FEW_PAIRS = 20_000


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.translate import Translator, TranslatorConfig, WordForWordDictionary
    from rnnkit.data.parallel import split_pairs

    check_out_folder(args)
    out = out_dir(args, "translate_model")
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    device = resolve_device(args.device)
    user_pairs = _user_pairs(args)
    quick = args.quick
    languages = LANGUAGES[args.source or "en"]
    if user_pairs is not None:
        # Which languages the user's pairs are in is known only if they say so (--source):
        # without it, 'evaluate' names no direction and runs no Apertium.
        languages = LANGUAGES[args.source] if args.source else ("", "")
        data = {"source": "user", "split": "chapter", "seed": args.seed}
        if args.source:
            data["languages"] = list(languages)
        splits = split_pairs(user_pairs, valid_fraction=0.05, test_fraction=0.05, seed=args.seed)
        if not splits["train"]:
            raise UserError("too few pairs to train on; expected at least a few hundred")
        if len(splits["train"]) < FEW_PAIRS and not quick:
            print(
                f"rnnkit: warning: {len(splits['train']):,} training pairs are few for a "
                "network translator (4,000 pairs of software strings scored BLEU 6 where a "
                f"word-for-word dictionary scored 17); compare with it: rnnkit translate "
                f"evaluate --model {out}",
                file=sys.stderr,
            )
        write_text(out / "test.tsv", "".join(f"{p.source}\t{p.target}\n" for p in splits["test"]))
    else:
        data = {
            "source": args.source or "en",
            "max_words": QUICK["max_words"] if quick else args.max_words,
            "split": args.split,
            "seed": args.seed,
        }
        if quick:
            data.update(train_pairs=QUICK["train_pairs"], test_pairs=QUICK["test_pairs"])
        splits = bible_splits(data)
    config = TranslatorConfig(
        source_lang=languages[0],
        target_lang=languages[1],
        attention=args.attention,
        vocab_size=QUICK["vocab"] if quick else args.vocab_size,
        hidden_size=QUICK["hidden"] if quick else args.hidden_size,
    )
    epochs = args.epochs or (QUICK["epochs"] if quick else DEFAULT_EPOCHS)
    print(
        f"training on {len(splits['train'])} pairs ({len(splits['valid'])} valid, "
        f"{len(splits['test'])} held out), {epochs} epochs on {device}",
        flush=True,
    )
    translator = Translator(config)
    history = translator.fit(
        splits["train"],
        splits["valid"],
        epochs=epochs,
        lr=args.lr,
        seed=args.seed,
        device=device,
        out_dir=str(out),
        progress=not quick,
        resume=resume,
    )
    translator.save(out)
    if config.copy_names_below:
        print(f"copying source names seen < {config.copy_names_below} times (best valid chrF)")
    dictionary = WordForWordDictionary().fit(splits["train"])
    write_json(out / "dictionary.json", dictionary.table)
    write_json(out / "data.json", data)
    write_json(out / "history.json", history)
    print(f"final loss {history[-1]['loss']:.3f}, val loss {history[-1].get('val_loss', 0):.3f}")
    print(f"wrote {out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.translate import Translator

    sentences = input_lines(args.sentences, args.file)
    if not any(s.strip() for s in sentences):
        raise UserError("no sentences to translate; pass them as arguments, --file or stdin")
    translator = Translator.load(model_folder(args.model), device=resolve_device(args.device))
    for line in translator.translate(
        sentences, beam_width=args.beam, length_penalty=args.length_penalty
    ):
        print(line)
    return 0


def evaluate_model(
    model_dir: Path, pairs: list, beam: int, length_penalty: float, device: str = "cpu"
) -> tuple[list[dict], dict[str, list[str]]]:
    """Score rnnkit (greedy and beam), Apertium and the word dictionary on ``pairs``."""
    from rnnkit.apps.translate import (
        Translator,
        WordForWordDictionary,
        apertium_available,
        apertium_translate,
        compare_translations,
        score_translations,
    )

    translator = Translator.load(model_dir, device=device)
    cfg = translator.config
    languages = _stated_languages(model_dir, cfg)
    sources, references = [p.source for p in pairs], [p.target for p in pairs]
    outputs: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    decoders = (
        [(f"rnnkit (beam {beam})", beam), ("rnnkit (greedy)", 1)]
        if beam > 1
        else [("rnnkit (greedy)", 1)]
    )
    below = cfg.copy_names_below if translator.source_words is not None else 0
    for name, width in decoders:
        began = time.perf_counter()
        plain = translator.translate(
            sources, beam_width=width, length_penalty=length_penalty, copy_names=False
        )
        timings[name] = time.perf_counter() - began
        if below:  # the default output, and without copying to show what copying adds
            began = time.perf_counter()
            outputs[f"{name[:-1]}, names copied)"] = translator.copy_names(sources, plain, below)
            timings[f"{name[:-1]}, names copied)"] = timings[name] + time.perf_counter() - began
        outputs[name] = plain
    if languages is None:
        print(
            "the model's languages are not known (train with --source en|es to name them), "
            "so Apertium is left out",
            file=sys.stderr,
        )
    elif apertium_available(*languages):
        began = time.perf_counter()
        outputs["Apertium (rule-based)"] = apertium_translate(sources, *languages)
        timings["Apertium (rule-based)"] = time.perf_counter() - began
    else:
        print(
            "Apertium is not installed, so it is left out; sudo apt-get install apertium-eng-spa",
            file=sys.stderr,
        )
    table_path = model_dir / "dictionary.json"
    if table_path.exists():
        dictionary = WordForWordDictionary()
        dictionary.table = json.loads(table_path.read_text(encoding="utf-8"))
        outputs["word-for-word dictionary"] = dictionary.translate(sources)
        timings["word-for-word dictionary"] = 0.0
    rows = []
    rnnkit_default = next(iter(outputs))  # beam search with names copied, the default output
    for name, hypotheses in outputs.items():
        scores = score_translations(hypotheses, references)
        rows.append(
            {
                "system": name,
                **({"direction": "->".join(languages)} if languages else {}),
                "BLEU": round(scores["BLEU"], 2),
                "chrF": round(scores["chrF"], 2),
                "pairs": len(pairs),
                "seconds": round(timings[name], 1),
            }
        )
        if not name.startswith("rnnkit") and len(pairs) > 1:
            # how sure is "rnnkit beats this"? 95% paired bootstrap over sentences
            diffs = compare_translations(outputs[rnnkit_default], hypotheses, references)
            for metric, diff in diffs.items():
                rows[-1][f"rnnkit - this {metric}"] = str(diff)
                rows[-1][f"{metric} verdict"] = diff.verdict(higher_is_better=True)
    return rows, outputs


def run_evaluate(args: argparse.Namespace) -> int:
    check_out_folder(args)
    model_dir = model_folder(args.model)
    user_pairs = _user_pairs(args)
    if user_pairs is not None:
        pairs = user_pairs
    else:
        data_path = model_dir / "data.json"
        data = json.loads(data_path.read_text()) if data_path.exists() else None
        if data is None or data["source"] == "user":
            raise UserError(
                f"{model_dir}: trained on your own pairs; pass the held-out pairs "
                f"with --pairs (train wrote {model_dir / 'test.tsv'})"
            )
        pairs = bible_splits(data)["test"]
    if args.limit:
        pairs = pairs[: args.limit]
    rows, outputs = evaluate_model(
        model_dir, pairs, args.beam, args.length_penalty, resolve_device(args.device)
    )
    out = out_dir(args, str(model_dir / "evaluation"))
    lines = ["source\treference\t" + "\t".join(outputs)]
    for i, p in enumerate(pairs):
        lines.append("\t".join([p.source, p.target, *(o[i] for o in outputs.values())]))
    write_text(out / "translations.tsv", "\n".join(lines) + "\n")
    report_metrics(rows, out, title=f"held-out pairs: {len(pairs)}")
    return 0


def _stated_languages(model_dir: Path, cfg) -> tuple[str, str] | None:
    """The model's (source, target) languages, or None when it was trained on the user's
    pairs without naming them (data.json has no "languages"; older folders too)."""
    data_path = model_dir / "data.json"
    data = json.loads(data_path.read_text()) if data_path.exists() else {}
    if data.get("source") == "user":
        stated = data.get("languages")
        return tuple(stated) if stated else None
    if not (cfg.source_lang and cfg.target_lang):
        return None
    return cfg.source_lang, cfg.target_lang


# ---------------------------------------------------------------------------- tour


def tour(ctx: TourContext) -> Section:
    """Train en->es on short verses, translate held-out verses, compare with the baselines."""
    from argparse import Namespace

    from rnnkit.apps.translate import apertium_available
    from rnnkit.data.parallel import INSTALL_HINT, sword_available

    section = Section(title="Machine translation (English -> Spanish)")
    if not sword_available():
        return section.leave_out(
            f"the whole section: the Bible modules are not installed ({INSTALL_HINT}, "
            "and apertium-eng-spa for the rule-based comparison)"
        )
    model_dir = ctx.models  # kept for `make serve`
    args = Namespace(
        out=str(model_dir),
        seed=ctx.seed,
        epochs=8 if not ctx.quick else None,
        device=ctx.device,
        quick=ctx.quick,
        source="en",
        max_words=12,
        split="chapter",
        pairs=None,
        source_file=None,
        target_file=None,
        attention="additive",
        hidden_size=192,
        vocab_size=2000,
        lr=3e-3,
    )
    run_train(args)
    history = json.loads((model_dir / "history.json").read_text())
    data = json.loads((model_dir / "data.json").read_text())
    test = bible_splits(data)["test"][: 40 if ctx.quick else 150]
    rows, outputs = evaluate_model(
        model_dir, test, beam=1 if ctx.quick else 4, length_penalty=1.0, device=ctx.device
    )
    write_json(ctx.out / "metrics.json", {"rows": rows, "history": history})
    section.text(
        "A bidirectional LSTM encoder and an LSTM decoder with additive attention and input "
        "feeding, with BPE subwords learned on the training verses, trained here for "
        f"{len(history)} epochs on King James verses of at most 12 words and their Reina-Valera "
        "1909 translations; the test verses come from chapters never seen in training. "
        "This short run does not reach the published result (rnnkit above Apertium on BLEU), "
        "which needs a longer training on verses of up to 25 words: "
        "rnnkit translate train --out models/en-es."
    )
    if not apertium_available():
        section.leave_out(
            "the Apertium baseline: not installed (sudo apt-get install apertium-eng-spa)"
        )
    section.table(rows, "BLEU and chrF (sacrebleu) on held-out verses")
    section.table(history, "training loss per epoch")
    examples = []
    for i in range(min(6, len(test))):
        row = {"English": test[i].source, "Reina-Valera 1909": test[i].target}
        row.update({name: out[i] for name, out in outputs.items() if "dictionary" not in name})
        examples.append(row)
    section.table(examples, "examples")
    from rnnkit.apps.translate import Translator
    from rnnkit.apps.translate.plots import plot_attention

    example = min(test[:20], key=lambda p: abs(len(p.source.split()) - 8))
    pieces = Translator.load(model_dir, device=ctx.device).attention_map(example.source)
    plot_attention(*pieces, ctx.out / "attention.png")
    section.image("translate/attention.png", f"attention while translating: {example.source}")
    return section
