"""Throughput of rnnkit's recurrent layers against torch's, measured side by side.

One run prints one table: training (forward + backward) and inference tokens/s of

1. the fast path, ``rnnkit.LSTM`` / ``rnnkit.GRU``, against ``torch.nn.LSTM`` / ``nn.GRU``
   at (B, T, H) = (32, 128, 128), (64, 256, 256), (8, 1024, 128), (256, 64, 512);
2. the layer-norm LSTM cell path, ``rnnkit.LSTM(..., layer_norm=True)``, against
   ``nn.LSTM`` at the same sizes;
3. minGRU, ``rnnkit.GRU(..., cell="mingru")`` (parallel scan), against ``nn.GRU`` at
   T = 512, 2048, 8192.

Both models of a row get the same weights where they have the same parameters, the same
input, and are timed call by call alternately (a warm-up call, then at least ``--repeats``
calls each, median), so that a load from other processes hits both alike: the *ratio* is
the number to read. On a busy machine, ``--threads 1`` gives steadier ratios. Targets:
fast path >= 0.95x torch, layer-norm LSTM >= 0.5x nn.LSTM in training, minGRU >= 1.5x
nn.GRU in training at T = 2048.

Usage:
    python benchmarks/layers.py                 # the full table (a few minutes on 2 cores)
    python benchmarks/layers.py --quick         # small sizes, seconds: checks that it runs
    python benchmarks/layers.py --only mingru --json results.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import rnnkit
from rnnkit.files import write_json
from rnnkit.report import table_to_text

FAST_PATH_SIZES = [(32, 128, 128), (64, 256, 256), (8, 1024, 128), (256, 64, 512)]
MINGRU_SIZES = [(16, 512, 128), (16, 2048, 128), (16, 8192, 128)]
QUICK_SIZES = [(16, 64, 64)]
QUICK_MINGRU_SIZES = [(8, 1024, 64)]


@dataclass
class Comparison:
    """One row: an rnnkit layer against its torch reference at one size."""

    group: str  # "fast path", "layer-norm LSTM", "minGRU"
    name: str  # e.g. "LSTM"
    make_reference: Callable[[int], nn.Module]
    make_rnnkit: Callable[[int], nn.Module]
    train_target: float | None = None
    infer_target: float | None = None


def comparisons() -> list[Comparison]:
    """What the table compares; each factory takes the hidden size (input size = hidden)."""
    return [
        Comparison(
            "fast path", "LSTM", lambda h: nn.LSTM(h, h), lambda h: rnnkit.LSTM(h, h), 0.95, 0.95
        ),
        Comparison(
            "fast path", "GRU", lambda h: nn.GRU(h, h), lambda h: rnnkit.GRU(h, h), 0.95, 0.95
        ),
        Comparison(
            "layer-norm LSTM",
            "LSTM(layer_norm=True)",
            lambda h: nn.LSTM(h, h),
            lambda h: rnnkit.LSTM(h, h, layer_norm=True),
            0.5,
        ),
        Comparison(
            "minGRU",
            "GRU(cell='mingru')",
            lambda h: nn.GRU(h, h),
            lambda h: rnnkit.GRU(h, h, cell="mingru"),
            1.5,
        ),
    ]


def copy_shared_weights(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` the values of the parameters it shares (same name and shape)."""
    mine = target.state_dict()
    shared = {
        k: v for k, v in source.state_dict().items() if k in mine and mine[k].shape == v.shape
    }
    target.load_state_dict(shared, strict=False)


def seconds_per_call(
    functions: list[Callable[[], None]], repeats: int, min_seconds: float = 0.2
) -> list[float]:
    """Median seconds per call of each function.

    After one warm-up call each, the calls alternate (A, B, A, B, ...), so that a burst of
    load from other processes hits both alike; there are at least ``repeats`` calls of
    each, more for short calls (about ``min_seconds`` of calls each, at most 200).
    """
    warm_up = []
    for function in functions:
        start = time.perf_counter()
        function()
        _synchronize()
        warm_up.append(time.perf_counter() - start)
    rounds = max(repeats, min(200, math.ceil(min_seconds / max(min(warm_up), 1e-6))))
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(rounds):
        for function, record in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            _synchronize()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def training_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        for parameter in model.parameters():
            parameter.grad = None
        output = model(x)[0]
        output.square().mean().backward()

    return run


def inference_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def measure(
    comparison: Comparison,
    size: tuple[int, int, int],
    repeats: int,
    device: str,
    min_seconds: float = 0.2,
) -> list[dict]:
    """The training and inference rows of one comparison at one (B, T, H)."""
    batch, steps, hidden = size
    torch.manual_seed(0)
    reference = comparison.make_reference(hidden).to(device)
    model = comparison.make_rnnkit(hidden).to(device)
    copy_shared_weights(reference, model)
    x = torch.randn(steps, batch, hidden, device=device)
    rows = []
    for mode, make_step, target in (
        ("train", training_step, comparison.train_target),
        ("infer", inference_step, comparison.infer_target),
    ):
        torch_s, rnnkit_s = seconds_per_call(
            [make_step(reference, x), make_step(model, x)], repeats, min_seconds
        )
        ratio = torch_s / rnnkit_s
        rows.append(
            {
                "layer": comparison.name,
                "B": batch,
                "T": steps,
                "H": hidden,
                "mode": mode,
                "torch tok/s": round(batch * steps / torch_s),
                "rnnkit tok/s": round(batch * steps / rnnkit_s),
                "ratio": round(ratio, 2),
                "target": f">= {target}" if target else "",
                "met": ("yes" if ratio >= target else "NO") if target else "",
            }
        )
        print(f"  {comparison.name} {size} {mode}: {ratio:.2f}x torch", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a few seconds: checks that it runs"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls of each, at least (default 5)"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated groups: fast,layernorm,mingru"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--mingru-steps",
        type=lambda text: {int(part) for part in text.split(",")},
        default=None,
        help="only these of the minGRU lengths T, e.g. 2048 (default: 512,2048,8192)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or 5
    groups = {"fast": "fast path", "layernorm": "layer-norm LSTM", "mingru": "minGRU"}
    wanted = set(groups.values())
    if args.only:
        unknown = set(args.only.split(",")) - set(groups)
        if unknown:
            parser.error(f"--only: unknown group(s) {', '.join(sorted(unknown))}")
        wanted = {groups[name] for name in args.only.split(",")}

    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"median of >= {repeats} calls; ratio = rnnkit tok/s / torch tok/s",
        flush=True,
    )
    rows = []
    for comparison in comparisons():
        if comparison.group not in wanted:
            continue
        if comparison.group == "minGRU":
            sizes = QUICK_MINGRU_SIZES if args.quick else MINGRU_SIZES
        else:
            sizes = QUICK_SIZES if args.quick else FAST_PATH_SIZES
        if comparison.group == "minGRU" and args.mingru_steps:
            sizes = [(b, t, h) for b, t, h in sizes if t in args.mingru_steps]
        for size in sizes:
            rows += measure(comparison, size, repeats, args.device, 0.1 if args.quick else 0.5)
            if args.json:  # after every size: a long run cut short keeps what it measured
                write_json(args.json, {"device": args.device, "repeats": repeats, "rows": rows})
    print()
    print(table_to_text(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
