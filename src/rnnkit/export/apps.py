"""What exporting means for each application whose network is plain tensors in and out.

An `AppExport` knows, for one application:

- how to load its model folder and which networks it holds (an ensemble holds several);
- each network as one or more *graphs*: modules whose inputs and outputs are tensors only, in a
  fixed order with names, with dynamic axes (batch, steps), and random inputs of any batch
  size and length to check the export against PyTorch. Most networks are one graph; an
  autoregressive forecaster is two, its encoder and decoder layers, because it samples its
  paths step by step in Python;
- the *runtime* module that replaces the network in the loaded application model: it has the
  network's forward signature, runs the ONNX graphs with onnxruntime and returns torch tensors,
  so the application's own predict code runs unchanged.

The exportable applications are sentiment, forecast, anomaly (its detector is a forecaster) and
lm (one step: tokens + state in, logits + state out).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.apps.common import app_of_folder
from rnnkit.errors import UserError

EXPORTABLE = ("sentiment", "forecast", "anomaly", "lm")


@dataclass
class GraphSpec:
    """Names of a graph's inputs and outputs (in order) and its dynamic axes."""

    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]


RandomInputs = Callable[[int, int, torch.Generator], tuple[Tensor, ...]]


@dataclass
class Graph:
    """One exported graph: the module traced, its names, and ``random_inputs(batch, steps,
    generator)`` to trace and check it with."""

    module: nn.Module
    spec: GraphSpec
    random_inputs: RandomInputs


WHOLE = "network"  # the part name of a network exported as one graph


class OnnxNetwork(nn.Module):
    """Base of the runtime modules: an onnxruntime session in place of a torch network.

    The torch network is kept as ``torch_net``: attributes the application reads from its
    network (``pooling``, ``autoregressive``...) come from it, and calls that ONNX cannot serve
    (gradients for saliency) run on it.

    Args:
        net: the torch network the session was exported from.
        session: an ``onnxruntime.InferenceSession`` of its graph.
    """

    def __init__(self, net: nn.Module, session: Any):
        super().__init__()
        self.torch_net = net
        self.run = SessionRunner(session)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "torch_net":  # not set yet: no network to ask
                raise
            return getattr(self.torch_net, name)


class SessionRunner:
    """Runs an onnxruntime session on torch tensors.

    ``runner(device, **inputs)``: inputs by name (cast to the graph's types); the outputs by
    name, as tensors on ``device``.
    """

    def __init__(self, session: Any):
        self.session = session
        self.types = {i.name: _NUMPY_TYPES[i.type] for i in session.get_inputs()}
        self.names = [o.name for o in session.get_outputs()]

    def __call__(self, device: torch.device, **inputs: Tensor) -> dict[str, Tensor]:
        feeds = {
            name: value.detach().cpu().numpy().astype(self.types[name], copy=False)
            for name, value in inputs.items()
        }
        outputs = self.session.run(None, feeds)
        return {
            name: torch.from_numpy(value).to(device)
            for name, value in zip(self.names, outputs, strict=True)
        }


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


class AppExport:
    """How one application is exported (see the module docstring). Subclasses per app."""

    app: str = ""

    def reads(self, exported_app: str) -> bool:
        """Whether an export made from an ``exported_app`` folder fits this app's networks."""
        return exported_app == self.app

    def load(self, directory: Path) -> Any:
        """The application model saved in ``directory``."""
        raise NotImplementedError

    def networks(self, model: Any) -> list[nn.Module]:
        """The model's networks (one per ensemble member), in eval mode."""
        raise NotImplementedError

    def set_networks(self, model: Any, nets: list[nn.Module]) -> None:
        """Put ``nets`` (runtime modules) in place of the model's networks."""
        raise NotImplementedError

    def graphs(self, net: nn.Module) -> dict[str, Graph]:
        """The graphs ``net`` exports as, by part name (usually one: `WHOLE`)."""
        raise NotImplementedError

    def benchmark_inputs(
        self, model: Any, net: nn.Module, batch: int, generator: torch.Generator
    ) -> tuple[str, tuple[Tensor, ...]]:
        """The part timed by the benchmark and inputs of the size the application serves it
        (a review, a forecast, a generation step)."""
        raise NotImplementedError

    def runtime(self, net: nn.Module, sessions: dict[str, Any]) -> nn.Module:
        """The onnxruntime-backed module that replaces ``net`` (sessions by part name)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------
# Sentiment: tokens [N, T], lengths [N], pieces [N, T, P] -> scores [N, K], weights [N, T]
# ------------------------------------------------------------------------------------------


class _SentimentGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, tokens: Tensor, lengths: Tensor, pieces: Tensor | None = None):
        return self.net(tokens, lengths, pieces)


class OnnxSentimentNet(OnnxNetwork):
    """`SentimentNet`'s forward on onnxruntime; with ``embedded`` (saliency) on torch."""

    def forward(
        self,
        tokens: Tensor,
        lengths: Tensor,
        pieces: Tensor | None = None,
        embedded: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if embedded is not None:  # integrated gradients differentiate by the embeddings
            return self.torch_net(tokens, lengths, pieces, embedded)
        inputs = {"tokens": tokens, "lengths": torch.as_tensor(lengths)}
        if self.torch_net.pieces is not None:
            # No pieces means words alone, which is what all-padding pieces compute.
            inputs["pieces"] = pieces if pieces is not None else tokens.new_zeros(*tokens.shape, 1)
        out = self.run(tokens.device, **inputs)
        return out["scores"], out["weights"]


class SentimentExport(AppExport):
    app = "sentiment"

    def load(self, directory: Path) -> Any:
        from rnnkit.apps.sentiment import SentimentClassifier

        return SentimentClassifier.load(directory)

    def networks(self, model: Any) -> list[nn.Module]:
        return [net.eval() for net in model.model]

    def set_networks(self, model: Any, nets: list[nn.Module]) -> None:
        model.model = nn.ModuleList(nets).eval()

    def graphs(self, net: nn.Module) -> dict[str, Graph]:
        inputs = ["tokens", "lengths"] + (["pieces"] if net.pieces is not None else [])
        outputs = ["scores", "weights"]
        axes = {
            "tokens": {0: "batch", 1: "steps"},
            "lengths": {0: "batch"},
            "pieces": {0: "batch", 1: "steps", 2: "pieces"},
            "scores": {0: "batch"},
            "weights": {0: "batch", 1: "steps"},
        }
        spec = GraphSpec(inputs, outputs, {name: axes[name] for name in inputs + outputs})
        return {WHOLE: Graph(_SentimentGraph(net).eval(), spec, partial(_sentiment_inputs, net))}

    def benchmark_inputs(self, model, net, batch, generator):
        # Reviews of 24 words (3 subword pieces each) of random lengths up to 24.
        return WHOLE, _sentiment_inputs(net, batch, 24, generator, pieces=3)

    def runtime(self, net, sessions):
        return OnnxSentimentNet(net, sessions[WHOLE])


def _sentiment_inputs(
    net: nn.Module, batch: int, steps: int, generator: torch.Generator, pieces: int | None = None
):
    """Random (tokens, lengths[, pieces]) with ``pieces`` subwords per word (default: 1 to 4,
    varying with ``steps``, as that axis is dynamic too)."""
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    real = torch.arange(steps)[None, :] < lengths[:, None]  # [N, T]
    tokens = torch.randint(1, net.words.num_embeddings, (batch, steps), generator=generator)
    inputs = (tokens * real, lengths)
    if net.pieces is not None:
        shape = (batch, steps, pieces or 1 + steps % 4)
        piece_ids = torch.randint(0, net.pieces.num_embeddings, shape, generator=generator)
        inputs += (piece_ids * real[..., None],)
    return inputs


# ------------------------------------------------------------------------------------------
# Forecast, direct decoder: encoder_input [B, C, E], decoder_input [B, H, D]
#     -> loc, scale (, df) [B, H]
# Forecast, autoregressive decoder: each recurrent layer x [B, T, F], h0 (, c0) [L, B, S]
#     -> output [B, T, S], h (, c) [L, B, S]; the head and the sampling loop stay in torch.
# ------------------------------------------------------------------------------------------


class _ForecastGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, encoder_input: Tensor, decoder_input: Tensor) -> tuple[Tensor, ...]:
        params = self.net(encoder_input, decoder_input)
        return tuple(params[name] for name in _forecast_outputs(self.net))


def _forecast_outputs(net: nn.Module) -> list[str]:
    return ["loc", "scale"] + (["df"] if net.likelihood == "student_t" else [])


class OnnxForecastNet(OnnxNetwork):
    """`ForecastNet`'s forward (a direct decoder) on onnxruntime: a dict of (B, H) tensors."""

    def forward(
        self, encoder_input: Tensor, decoder_input: Tensor, previous: Tensor | None = None
    ) -> dict[str, Tensor]:
        if previous is not None:
            raise ValueError("the exported forecaster has a direct decoder; it takes no previous")
        return self.run(
            encoder_input.device, encoder_input=encoder_input, decoder_input=decoder_input
        )


class _LayerGraph(nn.Module):
    """A recurrent layer with its initial state as plain tensors: (x, h0[, c0]) ->
    (output, h[, c])."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        output, final = self.layer(x, state if len(state) > 1 else state[0])
        return (output, *final) if isinstance(final, tuple) else (output, final)


def _state_names(layer: nn.Module) -> list[str]:
    return ["h", "c"] if len(layer.cells[0].state_sizes) == 2 else ["h"]


def _state_shapes(layer: nn.Module, batch: int) -> list[tuple[int, int, int]]:
    """Shapes of the layer's state tensors (h, and c for an LSTM; h is projected if asked)."""
    rows = layer.num_layers * layer.num_directions
    return [(rows, batch, size) for size in layer.cells[0].state_sizes]


def layer_graph(layer: nn.Module) -> Graph:
    """An rnnkit LSTM/GRU/RNN layer (fast path, no lengths) with its initial state as a graph:
    (x, h0[, c0]) -> (output, h[, c]), batch and steps dynamic."""
    states = _state_names(layer)
    sequence = {0: "batch", 1: "steps"} if layer.batch_first else {0: "steps", 1: "batch"}
    axes = {"x": sequence, "output": sequence}
    axes |= {f"{name}0": {1: "batch"} for name in states} | {n: {1: "batch"} for n in states}
    spec = GraphSpec(["x", *[f"{name}0" for name in states]], ["output", *states], axes)
    return Graph(_LayerGraph(layer).eval(), spec, partial(_layer_inputs, layer))


def _layer_inputs(layer: nn.Module, batch: int, steps: int, generator: torch.Generator):
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    x = torch.randn(*shape, layer.input_size, generator=generator)
    h_shape, *c_shape = _state_shapes(layer, batch)
    h0 = torch.rand(h_shape, generator=generator) * 2 - 1  # h is in (-1, 1)
    return (x, h0, *(torch.randn(s, generator=generator) for s in c_shape))


class OnnxRecurrentLayer(OnnxNetwork):
    """An rnnkit recurrent layer's ``forward(input, hx)`` (no lengths) on onnxruntime; the
    state as the layer returns it (``(h, c)`` for an LSTM)."""

    def forward(self, input: Tensor, hx=None):  # noqa: A002 (torch's name)
        layer = self.torch_net
        if hx is None:
            batch = input.shape[0 if layer.batch_first else 1]
            hx = tuple(input.new_zeros(shape) for shape in _state_shapes(layer, batch))
        state = hx if isinstance(hx, tuple) else (hx,)
        names = [f"{name}0" for name in _state_names(layer)]
        out = self.run(input.device, x=input, **dict(zip(names, state, strict=True)))
        final = tuple(out[name] for name in _state_names(layer))
        return out["output"], final if len(final) > 1 else final[0]


class ForecastExport(AppExport):
    app = "forecast"

    def reads(self, exported_app: str) -> bool:
        return exported_app in ("forecast", "anomaly")  # an anomaly detector's is a forecaster

    def load(self, directory: Path) -> Any:
        from rnnkit.apps.forecast import Forecaster

        return Forecaster.load(directory)

    def _forecaster(self, model: Any) -> Any:
        return model

    def networks(self, model: Any) -> list[nn.Module]:
        return [net.eval() for net in self._forecaster(model).nets]

    def set_networks(self, model: Any, nets: list[nn.Module]) -> None:
        self._forecaster(model).nets = list(nets)

    def graphs(self, net: nn.Module) -> dict[str, Graph]:
        if net.autoregressive:
            return {"encoder": layer_graph(net.encoder), "decoder": layer_graph(net.decoder)}
        outputs = _forecast_outputs(net)
        axes = {
            "encoder_input": {0: "batch", 1: "context"},
            "decoder_input": {0: "batch", 1: "horizon"},
            **{name: {0: "batch", 1: "horizon"} for name in outputs},
        }
        spec = GraphSpec(["encoder_input", "decoder_input"], outputs, axes)
        inputs = partial(_forecast_inputs, net)
        return {WHOLE: Graph(_ForecastGraph(net).eval(), spec, inputs)}

    def benchmark_inputs(self, model, net, batch, generator):
        forecaster = self._forecaster(model)
        if net.autoregressive:  # a forecast is one encoder call, then a decoder call per step
            return "decoder", _layer_inputs(net.decoder, batch, 1, generator)
        context, horizon = forecaster.meta["context_length"], forecaster.config.horizon
        return WHOLE, _forecast_inputs(net, batch, context, generator, horizon)

    def runtime(self, net, sessions):
        if not net.autoregressive:
            return OnnxForecastNet(net, sessions[WHOLE])
        # The network itself (a copy), with its two recurrent layers on onnxruntime: its own
        # forward and sample_paths (the sampling loop, the head, scipy's Student-t quantiles)
        # run unchanged around them.
        runtime = copy.deepcopy(net)
        runtime.encoder = OnnxRecurrentLayer(runtime.encoder, sessions["encoder"])
        runtime.decoder = OnnxRecurrentLayer(runtime.decoder, sessions["decoder"])
        return runtime.eval()


def _forecast_inputs(net, batch, context, generator, horizon=None):
    """Random (encoder_input, decoder_input): ``context`` past steps, ``horizon`` future
    ones (default: half the context)."""
    horizon = horizon or max(1, context // 2)
    encoder = torch.randn(batch, context, net.encoder.input_size, generator=generator)
    decoder = torch.randn(batch, horizon, net.decoder.input_size, generator=generator)
    return encoder, decoder


class AnomalyExport(ForecastExport):
    """An anomaly detector scores points with its forecaster: the same network."""

    app = "anomaly"

    def load(self, directory: Path) -> Any:
        from rnnkit.apps.anomaly.detector import AnomalyDetector

        return AnomalyDetector.load(directory)

    def _forecaster(self, model: Any) -> Any:
        return model.forecaster


# ------------------------------------------------------------------------------------------
# Language model: tokens [N, T], h0, c0 [L, N, H] -> logits [N, T, V], h, c [L, N, H]
# ------------------------------------------------------------------------------------------


class _LanguageModelGraph(nn.Module):
    """The state as two stacked tensors (one row per layer) instead of a list of pairs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, tokens: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        state = [(h0[i : i + 1], c0[i : i + 1]) for i in range(len(self.net.layers))]
        logits, new_state = self.net(tokens, state)
        return logits, torch.cat([h for h, _ in new_state]), torch.cat([c for _, c in new_state])


class OnnxLanguageModelNet(OnnxNetwork):
    """`LanguageModelNet`'s forward on onnxruntime, stateful as the torch network is: a call
    without a state continues from the previous call's (zeros after `reset_state`)."""

    def __init__(self, net: nn.Module, session: Any):
        super().__init__(net, session)
        self.carried_state: list[tuple[Tensor, Tensor]] | None = None

    def reset_state(self) -> None:
        self.carried_state = None

    def forward(self, tokens: Tensor, state=None) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        state = self.carried_state if state is None else state
        if state is None:
            layers, hidden = len(self.torch_net.layers), self.torch_net.layers[0].hidden_size
            h0 = c0 = torch.zeros(layers, tokens.shape[0], hidden)
        else:
            h0, c0 = torch.cat([h for h, _ in state]), torch.cat([c for _, c in state])
        out = self.run(tokens.device, tokens=tokens, h0=h0, c0=c0)
        new_state = [(h[None], c[None]) for h, c in zip(out["h"], out["c"], strict=True)]
        self.carried_state = new_state
        return out["logits"], new_state


class LanguageModelExport(AppExport):
    app = "lm"

    def load(self, directory: Path) -> Any:
        from rnnkit.apps.lm import LanguageModel

        return LanguageModel.load(directory)

    def networks(self, model: Any) -> list[nn.Module]:
        return [model.model.eval()]

    def set_networks(self, model: Any, nets: list[nn.Module]) -> None:
        (model.model,) = nets

    def graphs(self, net: nn.Module) -> dict[str, Graph]:
        state = {1: "batch"}
        axes = {
            "tokens": {0: "batch", 1: "steps"},
            "h0": state,
            "c0": state,
            "logits": {0: "batch", 1: "steps"},
            "h": state,
            "c": state,
        }
        spec = GraphSpec(["tokens", "h0", "c0"], ["logits", "h", "c"], axes)
        inputs = partial(_language_model_inputs, net)
        return {WHOLE: Graph(_LanguageModelGraph(net).eval(), spec, inputs)}

    def benchmark_inputs(self, model, net, batch, generator):
        return WHOLE, _language_model_inputs(net, batch, 1, generator)  # one generation step

    def runtime(self, net, sessions):
        return OnnxLanguageModelNet(net, sessions[WHOLE])


def _language_model_inputs(net: nn.Module, batch: int, steps: int, generator: torch.Generator):
    tokens = torch.randint(0, net.embedding.num_embeddings, (batch, steps), generator=generator)
    shape = (len(net.layers), batch, net.layers[0].hidden_size)
    h0 = torch.rand(shape, generator=generator) * 2 - 1  # h is in (-1, 1)
    return tokens, h0, torch.randn(shape, generator=generator)


# ------------------------------------------------------------------------------------------
# Which application a folder holds
# ------------------------------------------------------------------------------------------

APPS: dict[str, AppExport] = {
    export.app: export
    for export in (SentimentExport(), ForecastExport(), AnomalyExport(), LanguageModelExport())
}


def exporter_for(directory: str | os.PathLike) -> AppExport:
    """The `AppExport` of the model folder ``directory``, or a one-line UserError."""
    from rnnkit.engine.checkpoint import read_json

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such model folder; expected one written by 'train'")
    config_path = directory / "config.json"
    if not config_path.is_file() or not (directory / "model.safetensors").is_file():
        raise UserError(
            f"{directory}: not a model folder (expected config.json and model.safetensors "
            "written by 'rnnkit <app> train')"
        )
    config = read_json(config_path)  # broken JSON: a UserError naming line and column
    app = app_of_folder(directory, config) if isinstance(config, dict) else None
    if app not in APPS:
        what = f"a {app} model" if app else "a model of an application"
        raise UserError(
            f"{directory}: {what} that rnnkit cannot export to ONNX; exportable: "
            f"{', '.join(EXPORTABLE)} (networks of plain tensors in and out)"
        )
    return APPS[app]


def exporter_of_model(model: Any) -> AppExport | None:
    """The `AppExport` of a loaded application model, None if it has none."""
    from rnnkit.apps.anomaly.detector import AnomalyDetector
    from rnnkit.apps.forecast import Forecaster
    from rnnkit.apps.lm import LanguageModel
    from rnnkit.apps.sentiment import SentimentClassifier

    kinds = {
        SentimentClassifier: "sentiment",
        Forecaster: "forecast",
        AnomalyDetector: "anomaly",
        LanguageModel: "lm",
    }
    for kind, app in kinds.items():
        if isinstance(model, kind):
            return APPS[app]
    return None
