"""``rnnkit speech train | transcribe | evaluate``: speech recognition with CTC.

Training speech is synthesized (espeak-ng, many voices, noise and reverberation); the test
set uses voices never heard in training and a second synthesizer (flite). Real voices:
``rnnkit speech evaluate --data FSDD_FOLDER`` runs the Free Spoken Digit Dataset protocol
(`rnnkit.apps.speech.fsdd`: leave one speaker out, the speaker-dependent split, synthetic +
real vs synthetic only, PocketSphinx in the same run). The work is in `rnnkit.apps.speech`
and `rnnkit.data.speech`; this module reads flags and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    check_resume,
    dropout_rate,
    finite_float,
    model_folder,
    non_negative_int,
    out_dir,
    positive_float,
    positive_int,
    report_metrics,
    resolve_device,
)
from rnnkit.files import write_json, write_text
from rnnkit.report import Section

NAME = "speech"
HELP = "speech recognition (synthesized voices, or your WAV files with transcripts)"
ORDER = 80
QUICK = {"train": 64, "test": 24, "hidden": 48, "epochs": 2}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, __doc__)

    train = add_verb(
        verbs,
        "train",
        "train a conv + BiGRU acoustic model with CTC",
        [
            "rnnkit speech train --out models/speech --epochs 15",
            "rnnkit speech train --data my_recordings/ --out models/mine",
            "rnnkit speech train --quick --out /tmp/asr",
            "rnnkit speech train --out models/speech --epochs 15 --resume  # continue a killed"
            " run from the last checkpoint in models/speech/checkpoints (every 200 steps and at"
            " each epoch's end); give the same flags as the killed run",
        ],
    )
    add_common_flags(train, epochs=15)
    train.set_defaults(epochs=None)  # 15, or 2 with --quick, unless --epochs is given
    train.add_argument(
        "--data",
        default=None,
        help="your folder of WAVs with transcripts "
        "(LibriSpeech *.trans.txt, or NAME.txt beside NAME.wav)",
    )
    train.add_argument(
        "--utterances",
        type=positive_int,
        default=3000,
        help="synthesized training utterances (default 3000)",
    )
    train.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    train.add_argument("--hidden-size", type=positive_int, default=128)
    train.add_argument("--lr", type=positive_float, default=2e-3)
    train.add_argument("--no-spec-augment", action="store_true", help="train without masking")
    train.add_argument(
        "--freq-warp",
        type=dropout_rate,  # a share in [0, 1): a stretch of 1 +- 1 or more is no voice
        default=0.0,
        help="vocal-tract-length perturbation: stretch the mel axis by 1 +- this (default 0)",
    )
    train.add_argument(
        "--no-lm",
        action="store_true",
        help="no character language model for beam search (with synthesized speech, one is "
        "trained on 20,000 sentences of the training text generator and weighted on "
        "validation voices; not in --quick)",
    )
    train.set_defaults(func=run_train)

    transcribe = add_verb(
        verbs,
        "transcribe",
        "print the text of WAV files (any sample rate)",
        [
            "rnnkit speech transcribe --model models/speech recording.wav other.wav",
            "rnnkit speech transcribe --model results/fsdd/model --words digits phone_number.wav",
        ],
    )
    transcribe.add_argument("files", nargs="+", help="WAV files")
    transcribe.add_argument("--model", required=True, help="folder written by 'speech train'")
    transcribe.add_argument(
        "--beam", type=positive_int, default=8, help="CTC beam width; 1 is greedy"
    )
    transcribe.add_argument(
        "--no-lm", action="store_true", help="beam search without the model's character LM"
    )
    transcribe.add_argument(
        "--words",
        help="decode under a word grammar: 'digits' (zero..nine) or a comma-separated list; "
        "the text is a sequence of them (no beam or LM then)",
    )
    transcribe.add_argument(
        "--one-word", action="store_true", help="with --words: exactly one word per file"
    )
    transcribe.add_argument(
        "--word-bonus",
        type=finite_float,
        default=0.0,
        help="with --words: log-score added per word; above 0 favours more words (default 0)",
    )
    transcribe.add_argument("--device", default="auto")
    transcribe.set_defaults(func=run_transcribe)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "CER and WER vs PocketSphinx on held-out voices, or the FSDD real-voice protocol",
        [
            "rnnkit speech evaluate --model models/speech --out results/speech",
            "rnnkit speech evaluate --model models/mine --data my_test_recordings/",
            "rnnkit speech evaluate --data ../shared/data/fsdd --out results/fsdd  # trains and"
            " tests the whole real-voice protocol (about an hour on one core)",
            "rnnkit speech evaluate --data ../shared/data/fsdd --quick --out /tmp/fsdd",
        ],
    )
    evaluate.add_argument(
        "--model",
        default=None,
        help="folder written by 'speech train' (not with an FSDD folder: the protocol trains)",
    )
    evaluate.add_argument(
        "--data",
        default=None,
        help="your folder of WAVs with transcripts, or a Free Spoken Digit Dataset folder "
        "({digit}_{speaker}_{take}.wav), which runs the real-voice protocol "
        "(default: synthesized held-out voices and the real test recordings)",
    )
    evaluate.add_argument(
        "--quick", action="store_true", help="FSDD: a seconds-long run on a few files"
    )
    evaluate.add_argument(
        "--part",
        choices=["all", "loso", "speaker-dependent"],
        default="all",
        help="FSDD: run only the leave-one-speaker-out folds, or only the speaker-dependent split "
        "and the synthetic comparison (the same numbers as in the whole run; default all)",
    )
    evaluate.add_argument(
        "--folds",
        default=None,
        help="FSDD: comma-separated held-out speakers to run (default all six; each fold gives "
        "the same numbers alone)",
    )
    evaluate.add_argument(
        "--utterances",
        type=positive_int,
        default=300,
        help="synthesized held-out utterances (default 300)",
    )
    evaluate.add_argument("--beam", type=positive_int, default=8, help="CTC beam width (default 8)")
    evaluate.add_argument("--no-pocketsphinx", action="store_true", help="skip the comparison")
    evaluate.add_argument("--out", default=None)
    evaluate.add_argument("--seed", type=non_negative_int, default=0)
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.speech import RecognizerConfig, SpeechRecognizer
    from rnnkit.data.speech import read_transcribed_folder, synthetic_speech

    out = out_dir(args, "speech_model")
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    device = resolve_device(args.device)
    quick = args.quick
    if args.data:
        utterances = read_transcribed_folder(args.data)
        n_valid = max(1, len(utterances) // 20) if len(utterances) > 20 else 0
        train, valid = utterances[n_valid:], utterances[:n_valid]
    else:
        n = QUICK["train"] if quick else args.utterances
        print(f"synthesizing {n} training utterances (cached after the first time)", flush=True)
        train = synthetic_speech("train", n, seed=args.seed)
        valid = synthetic_speech("valid", max(8, n // 20), seed=args.seed)
    config = RecognizerConfig(
        hidden_size=QUICK["hidden"] if quick else args.hidden_size,
        cell=args.cell,
        spec_augment=not args.no_spec_augment,
        freq_warp=getattr(args, "freq_warp", 0.0),
    )
    epochs = args.epochs or (QUICK["epochs"] if quick else 15)
    print(f"training on {len(train)} utterances, {epochs} epochs on {device}", flush=True)
    recognizer = SpeechRecognizer(config)
    history = recognizer.fit(
        train,
        valid or None,
        epochs=epochs,
        lr=args.lr,
        seed=args.seed,
        device=device,
        out_dir=str(out),
        progress=not quick,
        resume=resume,
    )
    if not (args.data or quick or getattr(args, "no_lm", False)):
        add_language_model(recognizer, seed=args.seed)
    recognizer.save(out)
    write_json(out / "history.json", history)
    print(f"final CTC loss {history[-1]['loss']:.3f}")
    print(f"wrote {out}")
    return 0


LM_SENTENCES = 20000  # generated sentences the character LM reads
DEV_UTTERANCES = 90  # validation-voice utterances that choose the LM's weight


def add_language_model(recognizer, seed: int = 0) -> list[dict]:
    """Train the beam search's character LM and choose its weight on validation voices.

    The LM reads `LM_SENTENCES` sentences from the training split's text generator (the
    test transcripts come from another seed); the weight and bonus are the best of
    `rnnkit.apps.speech.recognizer.FUSION_CHOICES` on the ``dev`` voices (neither training
    nor test voices).
    """
    from rnnkit.data.speech import generate_texts, synthetic_speech

    print(f"training a character LM on {LM_SENTENCES} generated sentences", flush=True)
    recognizer.fit_language_model(generate_texts(LM_SENTENCES, seed=10 * seed))
    dev = synthetic_speech("dev", DEV_UTTERANCES, seed=seed)
    rows = recognizer.choose_fusion(dev)
    cfg = recognizer.config
    print(f"LM weight {cfg.lm_weight}, bonus {cfg.lm_bonus} (best WER on validation voices)")
    return rows


def run_transcribe(args: argparse.Namespace) -> int:
    from rnnkit.apps.speech import SpeechRecognizer
    from rnnkit.apps.speech.grammar import word_list
    from rnnkit.data.speech import load_speech
    from rnnkit.errors import UserError

    if args.words is None and (args.one_word or args.word_bonus):
        raise UserError("--one-word and --word-bonus need --words (a word grammar)")
    words = word_list(args.words) if args.words is not None else None
    recognizer = SpeechRecognizer.load(model_folder(args.model), device=resolve_device(args.device))
    # A file that cannot be read is named and skipped; the others are still transcribed
    # (one bad file in a batch printed nothing at all), and the exit status says it.
    names, audios, failed = [], [], 0
    for name in args.files:
        try:
            audio, warnings = load_speech(name)
        except UserError as error:
            print(f"rnnkit: error: {error}", file=sys.stderr)
            failed += 1
            continue
        for warning in warnings:
            print(f"rnnkit: warning: {warning}", file=sys.stderr)
        names.append(name)
        audios.append(audio)
    texts = recognizer.transcribe(
        audios,
        beam_width=args.beam,
        use_lm=not args.no_lm,
        words=words,
        one_word=args.one_word,
        word_bonus=args.word_bonus,
    )
    for name, text in zip(names, texts, strict=True):
        print(f"{name}\t{text}")
    return 2 if failed else 0


def evaluate_sets(
    model_dir: Path, sets: dict[str, list], beam: int, pocketsphinx: bool, device: str = "cpu"
) -> tuple[list[dict], dict[str, list[dict]]]:
    """CER/WER of rnnkit (greedy and beam) and PocketSphinx on each named set of utterances."""
    from rnnkit.apps.speech import (
        SpeechRecognizer,
        error_rates,
        pocketsphinx_available,
        pocketsphinx_transcribe,
    )

    recognizer = SpeechRecognizer.load(model_dir, device=device)
    rows, transcripts = [], {}
    for set_name, utterances in sets.items():
        if not utterances:
            continue
        audios, references = [u.audio for u in utterances], [u.text for u in utterances]
        systems = {}
        decoders = [("rnnkit (greedy)", 1, False)]
        if beam > 1:
            decoders.insert(0, (f"rnnkit (beam {beam})", beam, False))
            if recognizer.language_model is not None and recognizer.config.lm_weight:
                decoders.insert(0, (f"rnnkit (beam {beam} + char LM)", beam, True))
        for name, width, use_lm in decoders:
            began = time.perf_counter()
            hypotheses = recognizer.transcribe(audios, beam_width=width, use_lm=use_lm)
            systems[name] = (hypotheses, time.perf_counter() - began)
        if pocketsphinx and pocketsphinx_available():
            began = time.perf_counter()
            systems["PocketSphinx (en-us)"] = (
                pocketsphinx_transcribe(audios),
                time.perf_counter() - began,
            )
        for name, (hypotheses, seconds) in systems.items():
            rates = error_rates(hypotheses, references)
            rows.append(
                {
                    "test set": set_name,
                    "system": name,
                    "CER": round(rates["CER"], 4),
                    "WER": round(rates["WER"], 4),
                    "utterances": len(utterances),
                    "seconds": round(seconds, 1),
                }
            )
        transcripts[set_name] = [
            {
                "reference": u.text,
                "speaker": u.speaker,
                **{n: h[i] for n, (h, _) in systems.items()},
            }
            for i, u in enumerate(utterances)
        ]
    return rows, transcripts


def default_test_sets(n: int, seed: int = 0) -> dict[str, list]:
    """Held-out espeak-ng voices, flite voices, and the real pocketsphinx-testdata recordings."""
    from rnnkit.data.speech import pocketsphinx_recordings, synthetic_speech

    test = synthetic_speech("test", n, seed=seed)
    real = pocketsphinx_recordings()
    return {
        "held-out espeak-ng voices": [u for u in test if u.speaker.startswith("espeak")],
        "flite (unseen synthesizer)": [u for u in test if u.speaker.startswith("flite")],
        "real: cards, commands, digits": [u for u in real if u.speaker != "librivox"],
        "real: LibriVox audiobook": [u for u in real if u.speaker == "librivox"],
    }


def is_fsdd(folder: str) -> bool:
    """Whether ``folder`` (or its ``recordings/``) holds ``{digit}_{speaker}_{take}.wav`` files."""
    from rnnkit.data.speech import fsdd_name

    root = Path(folder)
    root = root / "recordings" if (root / "recordings").is_dir() else root
    return any(p.suffix.lower() == ".wav" and fsdd_name(p) for p in root.iterdir())


def recipe_rows(recipes: dict) -> list[dict]:
    """One row per (split, candidate recipe) of `rnnkit.apps.speech.fsdd.choose`'s choices."""
    return [
        {
            "split": split,
            "recipe": name,
            "chosen": "yes" if name == choice["chosen"] else "",
            "isolated": c["valid WER isolated"],
            "strings": c["valid WER strings"],
            "word bonus": c["word bonus"],
            "train seconds": c.get("train seconds", ""),  # an ensemble trains nothing more
        }
        for split, choice in recipes.items()
        for name, c in choice["candidates"].items()
    ]


def run_fsdd(args: argparse.Namespace) -> int:
    """The real-voice protocol of `rnnkit.apps.speech.fsdd` on an FSDD folder."""
    from rnnkit.apps.speech.fsdd import PARTS, QUICK, Protocol, run_protocol
    from rnnkit.cli.common import table_to_text

    protocol = QUICK if args.quick else Protocol()
    parts = PARTS if args.part == "all" else (args.part,)
    # Created by the first write (after the folder's recordings passed the protocol's
    # checks): a folder that fails them leaves nothing behind.
    out = Path(args.out or "results/speech_fsdd")
    header = {
        "command": " ".join(["rnnkit", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
    }

    def partial(result: dict) -> None:  # what finished so far, should the run be cut short
        write_json(out / "metrics.json", {**header, "complete": False, **result})

    result = run_protocol(
        args.data,
        protocol,
        seed=args.seed,
        pocketsphinx=not args.no_pocketsphinx,
        log=lambda line: print(line, flush=True),
        model_dir=out / "model",
        progress=partial,
        parts=parts,
        folds=args.folds.split(",") if args.folds else None,
    )
    if result.get("recipes"):
        print("\nrecipe chosen in each split on validation takes and strings (validation WER)")
        print(table_to_text(recipe_rows(result["recipes"])))
    if "loso" in result:
        print("\nleave one speaker out: WER per held-out speaker (lower is better)")
        print(table_to_text(result["loso"]))
    if "speaker_dependent" in result:
        print("\nspeaker-dependent split (takes 0-4 of every speaker): WER")
        print(table_to_text(result["speaker_dependent"]))
        print(
            f"\nsynthetic and real test sets ({result['synthetic_removed']} test sentences that "
            "occur in the training transcripts or the LM text removed)"
        )
        print(table_to_text(result["synthetic"]))
    write_json(out / "metrics.json", {**header, "complete": True, **result})
    print(f"wrote {out / 'metrics.json'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.data.speech import read_transcribed_folder
    from rnnkit.errors import UserError

    if args.data and Path(args.data).is_dir() and is_fsdd(args.data):
        if args.model:
            raise UserError("an FSDD folder runs the whole protocol, which trains: drop --model")
        return run_fsdd(args)
    if args.quick:
        raise UserError("--quick is for the FSDD protocol: give --data with an FSDD folder")
    if not args.model:
        raise UserError("--model is needed (a folder written by 'rnnkit speech train')")
    model_dir = model_folder(args.model)
    if args.data:
        sets = {str(args.data): read_transcribed_folder(args.data)}
    else:
        sets = default_test_sets(args.utterances, args.seed)
    rows, transcripts = evaluate_sets(
        model_dir, sets, args.beam, not args.no_pocketsphinx, resolve_device(args.device)
    )
    out = out_dir(args, str(model_dir / "evaluation"))
    write_text(out / "transcripts.json", json.dumps(transcripts, indent=1) + "\n")
    report_metrics(rows, out, title="character and word error rates (lower is better)")
    return 0


# ---------------------------------------------------------------------------- tour


def tour(ctx: TourContext) -> Section:
    """Synthesize speech, train a small CTC model, compare with PocketSphinx."""
    from argparse import Namespace

    from rnnkit.data.speech import INSTALL_HINT, speech_tools_available

    section = Section(title="Speech recognition (CTC)")
    if not speech_tools_available():
        return section.leave_out(
            f"the whole section: espeak-ng and flite are not installed ({INSTALL_HINT}, "
            "and pocketsphinx-testdata for the real recordings)"
        )
    model_dir = ctx.models  # kept for `make serve`
    args = Namespace(
        out=str(model_dir),
        seed=ctx.seed,
        epochs=None if ctx.quick else 8,
        device=ctx.device,
        quick=ctx.quick,
        data=None,
        utterances=500,
        cell="gru",
        hidden_size=96,
        lr=3e-3,
        no_spec_augment=False,
        no_lm=True,  # the LM and its weight search take minutes: see "speech train"
    )
    run_train(args)
    history = json.loads((model_dir / "history.json").read_text())
    sets = default_test_sets(QUICK["test"] if ctx.quick else 30, ctx.seed)
    # PocketSphinx takes about half a second per utterance: the full tour compares on a
    # subset, the quick tour leaves it out (run 'rnnkit speech evaluate' for all of it).
    sets.pop("real: LibriVox audiobook")  # long and out of vocabulary: see 'speech evaluate'
    if not ctx.quick:
        sets = {name: utterances[:10] for name, utterances in sets.items()}
    rows, transcripts = evaluate_sets(
        model_dir,
        sets,
        beam=1 if ctx.quick else 8,
        pocketsphinx=not ctx.quick,
        device=ctx.device,
    )
    write_json(ctx.out / "metrics.json", {"rows": rows, "history": history})
    section.text(
        "Log-mel features, two strided convolutions, two bidirectional GRU layers and CTC over "
        f"characters, trained here for {len(history)} epochs on digit strings, commands, "
        "playing cards and short sentences spoken by espeak-ng voices with noise and "
        "reverberation. The test voices were never heard in training; flite is a different "
        "synthesizer. The real recordings (Debian pocketsphinx-testdata) are a reality check: "
        "the LibriVox sentences use words rnnkit never heard. A longer training (rnnkit speech "
        "train --out models/speech) reaches lower error rates."
    )
    if ctx.quick:
        section.text("Quick mode leaves PocketSphinx out; the full tour compares with it.")
    section.table(rows, "character and word error rates (lower is better)")
    section.table(history, "CTC loss per epoch")
    examples = [{"set": name, **row} for name, rows_ in transcripts.items() for row in rows_[:3]]
    section.table(examples, "examples")
    section.image(
        "speech/ctc.png", "a held-out utterance and the model's character probabilities per frame"
    )
    _plot_example(model_dir, sets["held-out espeak-ng voices"][0], ctx)
    return section


def _plot_example(model_dir: Path, utterance, ctx: TourContext) -> None:
    import torch

    from rnnkit.apps.speech import SpeechRecognizer
    from rnnkit.apps.speech.plots import plot_ctc_posteriors

    recognizer = SpeechRecognizer.load(model_dir, device=ctx.device)
    features = recognizer.featurize(utterance.audio)
    with torch.no_grad():
        log_probs, _ = recognizer.model(
            features[None].to(ctx.device), torch.tensor([features.shape[1]], device=ctx.device)
        )
    heard = recognizer.transcribe([utterance.audio])[0]
    title = f"said: {utterance.text!r} ({utterance.speaker})   heard: {heard!r}"
    plot_ctc_posteriors(features, log_probs[0].cpu(), title, ctx.out / "ctc.png")
