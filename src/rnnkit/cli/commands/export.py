"""``rnnkit export MODEL_DIR --format onnx``: a trained network as an ONNX file.

The work is done by `rnnkit.export`; this module only maps flags to it and prints how the
export compared with PyTorch.
"""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a trained model's network to ONNX, checked against PyTorch with onnxruntime"
ORDER = 90
DESCRIPTION = """\
Export the network of a model folder written by 'rnnkit <app> train' (sentiment, forecast,
anomaly, lm) to ONNX. The graph takes any batch size and length; before the file is written,
onnxruntime runs it on random inputs of several batch sizes and lengths and must match PyTorch
to 1e-5 (relative for outputs above 1 in magnitude). 'rnnkit serve --runtime onnx' then runs
it with onnxruntime.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=DESCRIPTION,
        epilog="examples:\n"
        "  rnnkit export models/sentiment  # writes models/sentiment/model.onnx\n"
        "  rnnkit export models/lm --format onnx --out lm-step.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by 'train'")
    parser.add_argument("--format", default="onnx", help="onnx (the only format; default)")
    parser.add_argument(
        "--out",
        default=None,
        help="the ONNX file (default: MODEL_DIR/model.onnx; ensemble members go beside it as "
        "model.2.onnx, ..., an autoregressive forecaster as model.encoder.onnx and "
        "model.decoder.onnx; the manifest as model.onnx.json). 'rnnkit serve --runtime onnx' "
        "uses the default name only",
    )
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from rnnkit.export import export_model
    from rnnkit.export.onnx import TOLERANCE

    exported = export_model(args.model_dir, args.out, args.format)
    written = 0
    for files, checks in zip(exported.files, exported.checks, strict=True):
        for part, path in files.items():
            check = checks[part]
            shapes = ", ".join(f"{batch}x{steps}" for batch, steps in check.shapes)
            print(
                f"{path}: max |onnxruntime - PyTorch| = {check.max_difference:.2g} "
                f"(relative where |output| > 1; tolerance {TOLERANCE:g}) on random inputs of "
                f"batch x steps {shapes}"
            )
            written += 1
    print(f"wrote {written} ONNX file(s) of the {exported.app} model and {exported.manifest}")
    return 0
