"""``rnnkit serve MODEL_DIR...``: an HTTP API and a web page for trained models.

The work is done by `rnnkit.serve`; this module maps flags to its settings and runs uvicorn.
"""

from __future__ import annotations

import argparse
import os

from rnnkit.cli.common import non_negative_float, positive_float, positive_int
from rnnkit.errors import UserError

NAME = "serve"
HELP = "serve trained models over HTTP (JSON API under /v1, a web page at /)"
ORDER = 90
EXAMPLES = [
    "rnnkit serve models/sentiment models/en-es   # then open http://127.0.0.1:8000/",
    "rnnkit serve tour/models/*                    # every model `make tour` trained",
    "RNNKIT_TOKEN=s3cret rnnkit serve models/lm --host 0.0.0.0 --port 9000",
    "rnnkit serve models/sentiment --runtime onnx  # after: rnnkit export models/sentiment",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=HELP + ".\nEach MODEL_DIR is a folder written by 'rnnkit <app> train' "
        "(or an experiment's output\nfolder); the app is read from the folder. The routes and "
        "their schema: http://HOST:PORT/openapi.json (or /docs)",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="model folders to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' on /v1 (default: $RNNKIT_TOKEN, else none)",
    )
    parser.add_argument(
        "--runtime",
        choices=["torch", "onnx"],
        default="torch",
        help="onnx: onnxruntime for folders exported with 'rnnkit export' (others: torch)",
    )
    limits = {
        "--max-body": (1_000_000, "largest JSON request body in bytes"),
        "--max-upload": (20_000_000, "largest upload (CSV, WAV, image) in bytes"),
        "--max-text-chars": (5_000, "longest text, prompt or sentence"),
        "--max-items": (64, "most texts or sentences per request"),
        "--max-new-tokens": (1_000, "most tokens a language model writes per request"),
    }
    for flag, (default, text) in limits.items():
        parser.add_argument(
            flag, type=positive_int, default=default, help=f"{text} (default: {default:,})"
        )
    parser.add_argument(
        "--max-audio-seconds",
        type=positive_float,
        default=600.0,
        help="longest recording per upload, from its header (default: 600)",
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="inference time limit per request; past it: 503 (default: 60)",
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=32, help="micro-batch size (default: 32)"
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=non_negative_float,
        default=5.0,
        help="micro-batch wait (default: 5 ms)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace):
    """The server's `Settings` from the flags (the token from ``$RNNKIT_TOKEN`` if not given)."""
    from rnnkit.serve import Settings

    return Settings(
        token=args.token or os.environ.get("RNNKIT_TOKEN") or None,
        max_body_bytes=args.max_body,
        max_upload_bytes=args.max_upload,
        max_text_chars=args.max_text_chars,
        max_items=args.max_items,
        max_new_tokens=args.max_new_tokens,
        max_audio_s=args.max_audio_seconds,
        request_timeout_s=args.request_timeout,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from rnnkit.serve import create_app, load_models

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: expected 1 to 65535")
    settings = settings_from(args)
    models = load_models(args.models, settings, runtime=args.runtime)
    for served in models.values():
        print(f"serving {served.folder} as {served.name} ({served.app}, {served.runtime})")
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
        print("rnnkit: warning: listening beyond this machine without --token")
    print(f"open http://{args.host}:{args.port}/  (API schema: /openapi.json)", flush=True)
    uvicorn.run(create_app(models, settings), host=args.host, port=args.port, log_level="warning")
    return 0
