"""``rnnkit caption train | predict | evaluate``: sentences from images and videos.

Trains on scenes composed of real Fashion-MNIST items and MNIST digits (or moving-item clips
with --video, or your COCO-format captions), and tests on a compositional split: scenes
holding pairs of items never seen together in training. The work is in `rnnkit.apps.caption`.
"""

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
    non_negative_int,
    out_dir,
    positive_int,
    report_metrics,
    resolve_device,
    share,
)
from rnnkit.errors import UserError
from rnnkit.files import write_json, write_text
from rnnkit.report import Section, some_of

NAME = "caption"
HELP = "image and video captioning (composed scenes, moving items, or your COCO captions)"
ORDER = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(subparsers, NAME, HELP, __doc__)

    train = add_verb(
        verbs,
        "train",
        "train a CNN encoder and an LSTM decoder",
        [
            "rnnkit caption train --out models/caption",
            "rnnkit caption train --video --out models/caption-video",
            "rnnkit caption train --decoder plain --out models/caption-plain",
            "rnnkit caption train --coco captions.json --images photos/ --out models/mine",
            "rnnkit caption train --quick --out /tmp/caption",
            "rnnkit caption train --out models/caption --resume   # after a killed run",
        ],
    )
    add_common_flags(train)  # epochs: 12 images, 20 videos, 1 with --quick
    _add_data_flags(train)
    train.add_argument(
        "--decoder",
        choices=["attention", "plain"],
        default="attention",
        help="LSTM with soft attention (default) or without",
    )
    train.add_argument(
        "--backbone", default="", help="a torchvision model name as encoder (needs torchvision)"
    )
    train.add_argument(
        "--scheduled-sampling",
        type=share,
        default=0.2,
        help="final probability of feeding the model's own word (default 0.2)",
    )
    train.set_defaults(func=run_train)

    predict = add_verb(
        verbs,
        "predict",
        "caption an image, a folder of images, or a video",
        [
            "rnnkit caption predict --model models/caption photo.png",
            "rnnkit caption predict --model models/caption photos/ --attention maps/",
            "rnnkit caption predict --model models/caption-video clip.gif",
            "rnnkit caption predict --model models/caption-video frames_folder/",
        ],
    )
    predict.add_argument(
        "input",
        help="image file, folder of images, or video (frame folder, "
        "animated GIF/PNG/WebP) for a video model",
    )
    predict.add_argument("--model", required=True, help="folder written by 'caption train'")
    predict.add_argument(
        "--beam", type=positive_int, default=3, help="beam width; 1 is greedy (default 3)"
    )
    _add_no_repeat_flag(predict)
    predict.add_argument(
        "--attention", default=None, help="folder for a PNG of the attention of each word"
    )
    predict.add_argument("--device", default="auto")
    predict.set_defaults(func=run_predict)

    evaluate = add_verb(
        verbs,
        "evaluate",
        "BLEU-1..4, CIDEr and object/relation accuracy of the attention decoder, the decoder "
        "without attention and a nearest-neighbour baseline, on the compositional split",
        [
            "rnnkit caption evaluate --out results/caption",
            "rnnkit caption evaluate --video --out results/caption-video",
            "rnnkit caption evaluate --model models/caption --out results/mine",
            "rnnkit caption evaluate --model models/mine --coco val.json --images photos/",
            "rnnkit caption evaluate --quick --out /tmp/caption-eval",
        ],
    )
    add_common_flags(evaluate)
    _add_data_flags(evaluate)
    evaluate.add_argument(
        "--model", default=None, help="score this trained model instead of training both decoders"
    )
    evaluate.add_argument("--beam", type=positive_int, default=3, help="beam width (default 3)")
    _add_no_repeat_flag(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    choose = add_verb(
        verbs,
        "choose",
        "compare the video encoders on the validation pairs (disjoint from the test pairs): "
        "the run that chose the default",
        [
            "rnnkit caption choose --out results/caption-choice",
            "rnnkit caption choose --quick --out /tmp/choice",
        ],
    )
    add_common_flags(choose)
    choose.set_defaults(func=run_choose)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--video", action="store_true", help="moving-item clips instead of still scenes"
    )
    parser.add_argument(
        "--video-encoder",
        choices=["motion", "recurrent", "frames"],
        default="motion",
        help="with --video: frames + differences in one CNN (default), a GRU per grid cell, "
        "or an LSTM over per-frame vectors",
    )
    parser.add_argument(
        "--train-size",
        type=positive_int,
        default=None,
        help="composed training items (default 4000 images / 3000 clips)",
    )
    parser.add_argument(
        "--test-size",
        type=positive_int,
        default=None,
        help="compositional test items (default 300 / 300)",
    )
    parser.add_argument("--coco", default=None, help="your captions: a COCO annotations JSON")
    parser.add_argument("--images", default=None, help="the image folder of --coco")
    parser.add_argument(
        "--videos", default=None, help="your videos: a folder with captions.csv (video,caption)"
    )


# ---------------------------------------------------------------------------- data


def _sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    from rnnkit.apps.caption.experiment import FULL_SIZES, QUICK_SIZES

    kind = "video" if args.video else "image"
    train, test, epochs = (QUICK_SIZES if args.quick else FULL_SIZES)[kind]
    return args.train_size or train, args.test_size or test, args.epochs or epochs


def run_choose(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption.captioner import CaptionConfig
    from rnnkit.apps.caption.experiment import (
        ENCODER_CHOICE_SIZES,
        QUICK_SIZES,
        choose_video_encoder,
    )

    if args.resume:
        raise UserError("--resume: the choice trains three small models without checkpoints")
    out = out_dir(args, "results/caption-choice")
    sizes = QUICK_SIZES["video"] if args.quick else ENCODER_CHOICE_SIZES
    if args.epochs:
        sizes = (sizes[0], sizes[1], args.epochs)
    print(f"video encoders on the validation pairs: {sizes[0]} clips x {sizes[2]} epochs")
    best, rows = choose_video_encoder(
        seed=args.seed, sizes=sizes, device=resolve_device(args.device), progress=not args.quick
    )
    default = CaptionConfig().video_encoder
    report_metrics(
        rows,
        out,
        title=f"validation pairs, attention decoder, beam 3: best {best} (default {default})",
        extra={"chosen": best, "default": default, "sizes": list(sizes), "seed": args.seed},
    )
    return 0


def _user_data(args: argparse.Namespace):
    """(inputs, captions, names) from --coco/--images or --videos, or None."""
    import numpy as np

    from rnnkit.data import vision

    if args.coco or args.images:
        if not (args.coco and args.images):
            raise UserError("--coco and --images go together; give both")
        items = vision.read_coco_captions(args.coco, args.images)
        inputs = np.stack([vision.load_image(path) for path, _ in items])
    elif args.videos:
        items = vision.read_video_folder(args.videos)
        inputs = np.stack([vision.load_video(path) for path, _ in items])
    else:
        return None
    return inputs, [captions for _, captions in items], [path.name for path, _ in items]


def _config(args: argparse.Namespace, epochs: int):
    from rnnkit.apps.caption import CaptionConfig

    return CaptionConfig(
        kind="video" if (args.video or args.videos) else "image",
        decoder=getattr(args, "decoder", "attention"),
        backbone=getattr(args, "backbone", ""),
        video_encoder=args.video_encoder,
        scheduled_sampling=getattr(args, "scheduled_sampling", 0.2),
        epochs=epochs,
        seed=args.seed,
        device=resolve_device(args.device),
        batch_size=32 if args.quick else 64,
    )


# Below this many captioned images (or videos) of a user's, training warns (a judgement, not
# a measured threshold: 4,000 synthetic scenes learn; an audit's 40 photos did not).
FEW_ITEMS = 1_000


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption import Captioner, synthetic_data

    out = out_dir(args, "caption_model")
    resume = check_resume(args, out)  # before any work: no checkpoint is a one-line error
    train_size, test_size, epochs = _sizes(args)
    config = _config(args, epochs)
    user = _user_data(args)
    if user is not None:
        inputs, captions, _ = user
        if len(inputs) < FEW_ITEMS and not args.quick:
            print(
                f"rnnkit: warning: {len(inputs):,} captioned {config.kind}s are few for a "
                "captioner trained from scratch (no pretrained encoder): the README's scenes "
                "train on 4,000, and 40 photos trained a model that wrote 'a picture of a of "
                "a of a'; expect generic captions",
                file=sys.stderr,
            )
    else:
        data = synthetic_data(config.kind, train_size, test_size, args.seed)
        inputs, captions = data.train_inputs, data.train_captions
    print(
        f"training a {config.decoder} captioner on {len(inputs)} {config.kind}s "
        f"for {epochs} epochs",
        flush=True,
    )
    began = time.perf_counter()
    # The trainer keeps metrics.csv, TensorBoard logs and checkpoints in the model folder.
    captioner = Captioner(config).fit(
        inputs, captions, progress=not args.quick, out_dir=str(out), resume=resume
    )
    captioner.save(out)
    write_json(out / "history.json", captioner.history)
    for row in captioner.history:
        print(f"epoch {row['epoch']}: loss {row['loss']:.3f}")
    print(
        f"wrote {out} in {time.perf_counter() - began:.0f} s "
        f"(next: rnnkit caption evaluate --model {out})"
    )
    return 0


def _predict_inputs(path: Path, kind: str, frames: int = 8):
    """(names, inputs) for an image file, an image folder or a video; skips unreadable files
    in a folder with a message."""
    import numpy as np

    from rnnkit.data import vision

    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if kind == "video":
        if vision.is_still_image(path):
            print(
                f"rnnkit: note: {path.name} is a still image; the video model sees it "
                f"repeated as {frames} identical frames (no motion to describe)",
                file=sys.stderr,
            )
        return [path.name], vision.load_video(path, frames=frames)[None]
    if path.is_file():
        if path.suffix.lower() in vision.IMAGE_SUFFIXES and not vision.is_still_image(path):
            print(
                f"rnnkit: note: {path.name} is animated; an image model captions its first "
                "frame (a video model reads them all)",
                file=sys.stderr,
            )
        return [path.name], vision.load_image(path)[None]
    entries = sorted(p for p in path.iterdir() if p.is_file())
    files = [p for p in entries if p.suffix.lower() in vision.IMAGE_SUFFIXES]
    others = [p.name for p in entries if p.suffix.lower() not in vision.IMAGE_SUFFIXES]
    if others:  # said, not skipped silently
        print(
            f"rnnkit: note: {len(others)} file(s) that are not images left out ({some_of(others)})",
            file=sys.stderr,
        )
    names, images = [], []
    for file in files:
        try:
            images.append(vision.load_image(file))
            names.append(file.name)
        except UserError as error:
            print(f"rnnkit: skipped {error}", file=sys.stderr)
    if not images:
        raise UserError(f"{path}: no readable images (expected PNG, JPEG, ...)")
    return names, np.stack(images)


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption import Captioner
    from rnnkit.apps.caption.plots import attention_grid, video_strip

    captioner = Captioner.load(args.model, device=resolve_device(args.device))
    config = captioner.config
    if args.attention:  # before any work: a bad --attention must not cost a prediction
        _check_attention_folder(Path(args.attention))
        if config.decoder != "attention":
            raise UserError(
                "--attention: this model has no attention (trained with --decoder plain)"
            )
    names, inputs = _predict_inputs(Path(args.input), config.kind, config.frames)
    captions = captioner.predict(inputs, beam_width=args.beam, no_repeat_ngram=args.no_repeat_ngram)
    for name, caption in zip(names, captions, strict=True):
        print(f"{name}\t{caption}")
    if args.attention:
        folder = Path(args.attention)
        maps = captioner.attention_maps(inputs, captions)
        written = set()
        for name, item, caption, alphas in zip(names, inputs, captions, maps, strict=True):
            target = folder / attention_map_name(name)
            if config.kind == "video":
                written.add(video_strip(item, caption, target, alphas=alphas))
            else:
                written.add(attention_grid(item, caption, alphas, target))
        print(f"wrote {len(written)} attention maps to {folder}")
    return 0


def _add_no_repeat_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-repeat-ngram",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="no caption repeats N words in a row (e.g. 3 for a model that loops; default 0: off)",
    )


def _decoding(args: argparse.Namespace) -> str:
    """How ``--beam`` and ``--no-repeat-ngram`` decode, in words (a report's column)."""
    blocked = f", no repeated {args.no_repeat_ngram}-grams" if args.no_repeat_ngram else ""
    return f"beam {args.beam}{blocked}"


def attention_map_name(name: str) -> str:
    """The PNG of an input's attention: the extension is kept in the name, so photo.jpg and
    photo.png in one folder get two maps (photo_jpg_attention.png, photo_png_attention.png)
    rather than one overwriting the other."""
    path = Path(name)
    if not path.suffix:  # a frame folder
        return f"{name}_attention.png"
    return f"{path.stem}_{path.suffix[1:]}_attention.png"


def _check_attention_folder(folder: Path) -> None:
    """--attention names a folder (new or existing): a file on its path is a one-line error,
    not mkdir's FileExistsError after the predictions."""
    blocking = next((f for f in (folder, *folder.parents) if f.exists() and not f.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--attention {folder}: {blocking} is a file; expected a folder")


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption import (
        Captioner,
        NearestNeighbourCaptioner,
        baseline_comparisons,
        caption_metrics,
        compare_captioners,
        evaluate_predictions,
        synthetic_data,
    )

    out = out_dir(args, "caption_eval")
    train_size, test_size, epochs = _sizes(args)
    user = _user_data(args)
    if args.model:
        captioner = Captioner.load(args.model, device=resolve_device(args.device))
        if user is not None:
            inputs, captions, _ = user
            predictions = captioner.predict(
                inputs, beam_width=args.beam, no_repeat_ngram=args.no_repeat_ngram
            )
            rows = [
                {
                    "model": f"{args.model}",
                    "decoding": _decoding(args),
                    **caption_metrics(predictions, captions),
                }
            ]
        else:
            kind = captioner.config.kind
            data = synthetic_data(kind, train_size, test_size, args.seed)
            predictions = captioner.predict(
                data.test_inputs, beam_width=args.beam, no_repeat_ngram=args.no_repeat_ngram
            )
            nearest = NearestNeighbourCaptioner(captioner.features)
            nearest.fit(data.train_inputs, data.train_captions)
            rows = [
                {
                    "model": f"{args.model}",
                    "decoding": _decoding(args),
                    **evaluate_predictions(data, predictions),
                },
                {
                    "model": "nearest neighbour",
                    "decoding": "-",
                    **evaluate_predictions(data, nearest.predict(data.test_inputs)),
                },
            ]
        report_metrics(rows, out, title="captioning on the held-out split")
        return 0
    if user is not None:
        raise UserError("--coco/--videos with evaluate needs --model (a trained model to score)")
    if args.no_repeat_ngram:
        raise UserError("--no-repeat-ngram with evaluate needs --model (a trained model to score)")
    kind = "video" if args.video else "image"
    data = synthetic_data(kind, train_size, test_size, args.seed)
    print(
        f"training both decoders on {train_size} {kind}s, testing on {test_size} holding "
        "pairs of items never seen together",
        flush=True,
    )
    rows, models, predictions = compare_captioners(
        data, _config(args, epochs), beam_width=args.beam, progress=not args.quick
    )
    comparisons = baseline_comparisons(data, predictions, args.beam, seed=args.seed)
    report_metrics(
        rows,
        out,
        title=f"{kind} captioning, compositional test split",
        extra={
            "train_size": train_size,
            "test_size": test_size,
            "epochs": epochs,
            "seed": args.seed,
            "comparisons": comparisons,
        },
    )
    for row in comparisons:
        d = row["bleu4_difference"]
        print(
            f"BLEU-4 {row['system']} - {row['baseline']}: {d['estimate']:+.3f} "
            f"[{d['low']:+.3f}, {d['high']:+.3f}] {row['verdict']}"
        )
    lines = [f"{key}\t{i}\t{p}" for key, preds in predictions.items() for i, p in enumerate(preds)]
    write_text(out / "predictions.tsv", "model\titem\tcaption\n" + "\n".join(lines) + "\n")
    _draw_examples(models["attention"], data, out, count=4)
    print(f"wrote {out / 'predictions.tsv'} and attention maps in {out}")
    return 0


def _draw_examples(captioner, data, out: Path, count: int) -> list[tuple[Path, str]]:
    """Attention maps (images) or strips (videos) of a few test items; returns (png, caption)."""
    from rnnkit.apps.caption.plots import attention_grid, video_strip

    inputs = data.test_inputs[:count]
    captions = captioner.predict(inputs, beam_width=3)
    maps = captioner.attention_maps(inputs, captions)
    drawn = []
    for i, (item, caption, alphas) in enumerate(zip(inputs, captions, maps, strict=True)):
        reference = data.test_captions[i][0]
        if data.kind == "video":
            path = video_strip(
                item, caption, out / f"video_{i}.png", alphas=alphas, reference=reference
            )
        else:
            path = attention_grid(item, caption, alphas, out / f"attention_{i}.png")
        drawn.append((path, f"generated: {caption}  |  reference: {reference}"))
    return drawn


# ---------------------------------------------------------------------------- tour


def tour(ctx: TourContext) -> Section:
    """Train an image and a video captioner briefly; show captions and attention maps."""
    from rnnkit.apps.caption import CaptionConfig, Captioner, NearestNeighbourCaptioner
    from rnnkit.apps.caption.experiment import evaluate_predictions, synthetic_data
    from rnnkit.apps.caption.plots import caption_gallery
    from rnnkit.data.vision import INSTALL_FASHION, fashion_available

    section = Section(title="Image and video captioning")
    if not fashion_available():
        section.leave_out(f"Fashion-MNIST items: not installed ({INSTALL_FASHION}), digits only")
    # (train items, test items, epochs). Measured on 2 cores: 69 s in all (image training
    # 52 s: BLEU-4 0.63 vs 0.53 for the nearest neighbour; video 5 s), 4 s with --quick.
    # Fewer images (1200 x 4 epochs) left the attention decoder below the nearest neighbour.
    # Video needs ~3000 clips x 20 epochs (10 min) to beat it clearly: `caption evaluate`.
    sizes = (
        {"image": (64, 16, 1), "video": (32, 8, 1)}
        if ctx.quick
        else {"image": (3000, 150, 6), "video": (300, 60, 4)}
    )
    # --quick only shows that everything runs: a smaller network.
    small = {"feature_size": 48, "summary_size": 64, "hidden_size": 64} if ctx.quick else {}
    rows = []
    for kind in ("image", "video"):
        train_size, test_size, epochs = sizes[kind]
        data = synthetic_data(kind, train_size, test_size, ctx.seed)
        config = CaptionConfig(
            kind=kind, epochs=epochs, seed=ctx.seed, device=ctx.device, batch_size=32, **small
        )
        began = time.perf_counter()
        captioner = Captioner(config).fit(data.train_inputs, data.train_captions)
        seconds = time.perf_counter() - began
        captioner.save(ctx.models.with_name(f"caption-{kind}"))  # kept for `make serve`
        nearest = NearestNeighbourCaptioner(captioner.features)
        nearest.fit(data.train_inputs, data.train_captions)
        for name, predictions in (
            ("attention LSTM, beam 3", captioner.predict(data.test_inputs, beam_width=3)),
            ("nearest neighbour", nearest.predict(data.test_inputs)),
        ):
            metrics = evaluate_predictions(data, predictions)
            rounded = {k: round(v, 3) for k, v in metrics.items()}
            rows.append(
                {
                    "data": kind,
                    "model": name,
                    **rounded,
                    "train_seconds": round(seconds, 1) if "LSTM" in name else 0.0,
                }
            )
        shown = _draw_examples(captioner, data, ctx.out, count=1 if ctx.quick else 2)
        if kind == "image":
            count = 4 if ctx.quick else 8
            gallery = caption_gallery(
                data.test_inputs[:count],
                captioner.predict(data.test_inputs[:count], 3),
                ctx.out / "gallery.png",
                references=[c[0] for c in data.test_captions[:count]],
            )
            section.image(
                gallery,
                "test scenes (pairs of items never seen together) with generated "
                "captions (beam 3) and a reference",
            )
        for path, caption in shown:
            section.image(path, caption)
    write_json(ctx.out / "metrics.json", {"rows": rows})
    section.text(
        "Scenes of 1-4 real Fashion-MNIST items and MNIST digits, tinted and sized on a 64x64 "
        "canvas, with captions written from the layout; videos of 1-2 moving items. The test "
        "split holds pairs of items never seen together in training. A small CNN encoder (for "
        "video, one CNN over the frames and their differences, an 8x8 grid of space-time "
        "features) and an LSTM decoder with soft attention "
        "(Show, Attend and Tell) trained briefly here; `rnnkit caption evaluate` trains longer "
        "and adds the decoder without attention."
    )
    section.table(rows, "compositional test split (BLEU-n cumulative, CIDEr-D, exact facts)")
    section.text("Attention maps: each panel shows where the decoder looked to write that word.")
    return section
