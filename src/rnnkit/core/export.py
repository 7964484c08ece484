"""A module that contains rnnkit layers, to ONNX: the one place that knows how.

ONNX knows neither rnnkit's C++ operator (``rnnkit::layer_norm_lstm``) nor its TorchScript
loops, so `export_onnx` traces with `rnnkit.core.fused_lstm.pure_torch_recurrence` in
effect: every rnnkit layer then runs torch operators only. What that gives per layer:

======================================  =====================================================
layer (in ``eval()``)                   in the ONNX graph
======================================  =====================================================
torch's fast path (plain LSTM/GRU/RNN,  ONNX's own LSTM/GRU/RNN operator (with ``lengths``:
LSTM with ``proj_size``... )            ``sequence_lens``): any batch size, length, lengths
layer norm, peephole, minGRU, minLSTM,  the step loop unrolled over the example's steps: any
zoneout (the cell path)                 batch size and ``lengths``, but that number of steps
                                        only; pad shorter sequences and pass ``lengths``
======================================  =====================================================

The exporter is torch's TorchScript-based one (``dynamo=False``): it maps ``aten::lstm``
(and packed sequences) to ONNX's recurrent operators, so the fast path keeps dynamic
lengths. The dynamo-based exporter (``dynamo=True``, torch 2.13) exports these modules
too, but with the time and batch sizes of the example baked into reshapes, so that a graph
fails on any other shape.

Example:
    >>> import torch, rnnkit, tempfile, pathlib
    >>> lstm = rnnkit.LSTM(4, 8, layer_norm=True)
    >>> fixed_length_layers(lstm)
    ['']
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lstm.onnx"
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lstm = lstm
    ...     def forward(self, x, lengths):
    ...         return self.lstm(x, None, lengths)[0]
    >>> export_onnx(Net(), (torch.randn(6, 2, 4), torch.tensor([6, 3])), path,
    ...             input_names=["x", "lengths"], output_names=["y"],
    ...             dynamic_axes={"x": {1: "batch"}, "lengths": {0: "batch"}})
    ['lstm']
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from rnnkit.core.fused_lstm import pure_torch_recurrence
from rnnkit.core.layer import Recurrent

#: The ONNX operator set used (ONNX's LSTM/GRU/RNN with sequence_lens, LayerNormalization).
OPSET = 17


def fixed_length_layers(module: nn.Module) -> list[str]:
    """Names of the rnnkit layers in ``module`` that export with the example's number of
    steps fixed (those off torch's fast path in ``eval()``); ``''`` is ``module`` itself."""
    names = []
    for name, layer in module.named_modules():
        if isinstance(layer, Recurrent):
            training = layer.training
            layer.eval()  # the export runs in eval(), where dropout does not count
            try:
                if not layer.uses_fast_path():
                    names.append(name)
            finally:
                layer.train(training)
    return names


def export_onnx(
    module: nn.Module,
    example: tuple[Any, ...],
    path: str | os.PathLike,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = OPSET,
) -> list[str]:
    """Write ``module`` (in ``eval()``, without gradients) traced on ``example`` to ONNX.

    Args:
        module: any module; its rnnkit layers run torch operators only while it is traced.
        example: the positional inputs to trace with.
        path: the ``.onnx`` file to write.
        input_names, output_names, dynamic_axes: as ``torch.onnx.export`` takes them. A time
            axis marked dynamic holds only for the layers not in `fixed_length_layers`.
        opset: the ONNX operator set.

    Returns:
        `fixed_length_layers` of ``module``: where the graph has the example's step count.

    Raises:
        torch.onnx.errors.OnnxExporterError: what torch's exporter refuses (e.g. an LSTM
        with ``proj_size`` on the fast path).
    """
    fixed = fixed_length_layers(module)
    training = module.training
    module.eval()
    try:
        with torch.no_grad(), pure_torch_recurrence(), warnings.catch_warnings():
            # The tracer warns about every Python-side check it records as a constant.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        module.train(training)
    return fixed
