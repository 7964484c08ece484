"""Latency of an exported network on onnxruntime relative to PyTorch, in one run.

The machine is shared and noisy, so only the ratio is meaningful: both runtimes get the same
input and thread count, their calls alternate (a slow moment slows both), each side's time is
the median of ``repeats`` samples, and time is the CPU time of this process
(``time.process_time``): the moments the process waits for a core taken by other programs do
not count, so with one thread it is the latency of an idle machine.

Example:
    A folder exported by `rnnkit.export.export_model`; the ratio (PyTorch time / onnxruntime
    time) depends on the machine:

    >>> latency_ratio("models/sentiment", batch_size=1)["ratio"]  # doctest: +SKIP
    2.7
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable

import torch

from rnnkit.engine import torch_threads
from rnnkit.errors import UserError
from rnnkit.export import exported_files
from rnnkit.export.apps import SessionRunner, exporter_for
from rnnkit.export.onnx import session

SAMPLE_SECONDS = 0.02  # each timing sample repeats the call for at least this long


def latency_ratio(
    model_dir: str | os.PathLike,
    batch_size: int,
    repeats: int = 21,
    threads: int = 1,
    seed: int = 0,
) -> dict:
    """PyTorch vs onnxruntime latency of the exported network of ``model_dir``.

    The input has the size the application serves (sentiment: 24-word texts; forecast: the
    model's context and horizon, or for an autoregressive decoder one decoder step; lm: one
    generation step with a state). The torch side is the exported graph's module under
    ``torch.inference_mode``; the onnxruntime side runs the ONNX file on the same tensors,
    conversions to and from numpy included (what `attach_onnx`'s modules do). An ensemble's
    first network is timed.

    Args:
        model_dir: a model folder exported with `rnnkit.export.export_model`.
        batch_size: inputs per call.
        repeats: timing samples per runtime (median taken).
        threads: intra-op threads of both runtimes.

    Returns:
        ``app``, ``graph`` (the part timed), ``batch_size``, ``threads``, ``repeats``,
        ``input_shapes``, median CPU seconds per
        call ``torch_s`` and ``onnxruntime_s``, and ``ratio`` = torch_s / onnxruntime_s
        (above 1: onnxruntime is faster).
    """
    exporter = exporter_for(model_dir)
    files = exported_files(exporter, model_dir)
    if files is None:
        raise UserError(f"{model_dir}: no ONNX export; run 'rnnkit export {model_dir}' first")
    model = exporter.load(model_dir)
    net = exporter.networks(model)[0]
    generator = torch.Generator().manual_seed(seed)
    part, inputs = exporter.benchmark_inputs(model, net, batch_size, generator)
    graph, runtime = exporter.graphs(net)[part], SessionRunner(session(files[0][part], threads))
    named = dict(zip(graph.spec.inputs, inputs, strict=True))
    with torch_threads(threads), torch.inference_mode():
        torch_s, onnx_s = alternating_medians(
            [
                lambda: graph.module(*inputs),
                lambda: runtime(torch.device("cpu"), **named),
            ],
            repeats,
        )
    return {
        "app": exporter.app,
        "graph": part,
        "batch_size": batch_size,
        "threads": threads,
        "repeats": repeats,
        "input_shapes": {name: list(x.shape) for name, x in named.items()},
        "torch_s": torch_s,
        "onnxruntime_s": onnx_s,
        "ratio": torch_s / onnx_s,
    }


def alternating_medians(calls: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds per call of each of ``calls``, timed in turns (call 1, call 2, call 1...).

    Each sample repeats a call enough times to last about `SAMPLE_SECONDS` of CPU time (the
    same count for every call), after a few warm-up calls.
    """
    clock = time.process_time  # CPU time: waiting for a busy core does not count
    for call in calls:
        for _ in range(3):
            call()
    start = clock()
    calls[0]()
    number = max(1, math.ceil(SAMPLE_SECONDS / max(clock() - start, 1e-6)))
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, times in zip(calls, samples, strict=True):
            start = clock()
            for _ in range(number):
                call()
            times.append((clock() - start) / number)
    return [statistics.median(times) for times in samples]
