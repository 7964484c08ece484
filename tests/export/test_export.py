"""ONNX export: graphs match PyTorch on other batch sizes and lengths, `attach_onnx` gives the
torch predictions, bad input is a one-line error that writes nothing."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.apps.anomaly.detector import AnomalyDetector
from rnnkit.apps.forecast import Forecaster
from rnnkit.apps.lm import LanguageModel, LMConfig
from rnnkit.apps.sentiment import SentimentClassifier, SentimentConfig, explain
from rnnkit.cli import main
from rnnkit.data.timeseries import build_frame
from rnnkit.errors import UserError
from rnnkit.export import ONNX_FILE, attach_onnx, export_model
from rnnkit.export.apps import (
    GraphSpec,
    OnnxNetwork,
    OnnxRecurrentLayer,
    exporter_of_model,
    layer_graph,
)
from rnnkit.export.benchmark import latency_ratio
from rnnkit.export.onnx import TOLERANCE, compare, export_checked, export_graph, session

WORDS = ["good", "great", "fine", "bad", "awful", "dull"]


def reviews(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts = [f"the film is {rng.choice(WORDS)} and {rng.choice(WORDS)} okay" for _ in range(n)]
    return texts, ["pos" if t.split()[3] in WORDS[:3] else "neg" for t in texts]


def hourly_frame(length: int = 300) -> object:
    times = pd.date_range("2024-01-01", periods=length, freq="h")
    noise = 0.1 * np.random.default_rng(0).normal(size=length)
    y = 10 + np.sin(2 * np.pi * np.arange(length) / 12) + noise
    return build_frame(pd.DataFrame({"time": times, "y": y}), target="y", season_length=12)


TINY_FORECAST = dict(horizon=6, context_length=24, hidden_size=8, epochs=1, batches_per_epoch=3)
TEXT = "In the beginning God created the heaven and the earth.\n" * 20


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny trained models of every exportable app (seconds), saved and exported."""
    root = tmp_path_factory.mktemp("models")
    texts, labels = reviews(64, seed=0)
    sentiment = dict(embedding_dim=8, hidden_size=8, vocab_size=100, subword_vocab_size=60)
    # An ensemble of two with subword pieces; a GRU with attention pooling on words alone.
    SentimentClassifier(SentimentConfig(**sentiment, epochs=1, batch_size=16, ensemble=2)).fit(
        texts, labels
    ).save(root / "sentiment")
    SentimentClassifier(
        SentimentConfig(
            **sentiment, epochs=1, batch_size=16, cell="gru", pooling="attention", tokens="word"
        )
    ).fit(texts, labels).save(root / "sentiment-gru")
    Forecaster(**TINY_FORECAST, num_layers=2, batch_size=8).fit(hourly_frame()).save(
        root / "forecast"
    )
    AnomalyDetector(context_length=16, epochs=1, batches_per_epoch=3, hidden_size=8).fit(
        np.sin(np.arange(400) / 6.0)
    ).save(root / "anomaly")
    lm = LMConfig(embedding_dim=8, hidden_size=16, num_layers=2, bptt=20, batch_size=8)
    LanguageModel(LMConfig(**{**lm.__dict__, "max_batches": 3})).fit(TEXT).save(root / "lm")
    for name in ("sentiment", "sentiment-gru", "forecast", "anomaly", "lm"):
        export_model(root / name)
    return root


# ------------------------------------------------------------------------------------------
# The recurrent layers, with lengths
# ------------------------------------------------------------------------------------------


class LayerGraph(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        output, state = self.layer(x, lengths=lengths)
        return (output, *state) if isinstance(state, tuple) else (output, state)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: rnnkit.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=True),
        lambda: rnnkit.GRU(4, 8, batch_first=True, bidirectional=True),
        lambda: rnnkit.RNN(4, 8, num_layers=2, batch_first=True, nonlinearity="relu"),
    ],
    ids=["lstm-2-layers-bidirectional", "gru-bidirectional", "rnn-relu-2-layers"],
)
def test_recurrent_layers_with_lengths_match_pytorch_on_other_batches_and_lengths(layer, tmp_path):
    torch.manual_seed(0)
    graph = LayerGraph(layer()).eval()
    state_names = ["h", "c"] if isinstance(graph.layer, rnnkit.LSTM) else ["h"]
    spec = GraphSpec(
        ["x", "lengths"],
        ["output", *state_names],
        {
            "x": {0: "batch", 1: "steps"},
            "lengths": {0: "batch"},
            "output": {0: "batch", 1: "steps"},
            **{name: {1: "batch"} for name in state_names},
        },
    )

    def random_inputs(batch, steps, generator):
        lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        return torch.randn(batch, steps, 4, generator=generator), lengths

    path = tmp_path / "layer.onnx"
    result = export_checked(graph, spec, random_inputs, path)
    assert result.max_difference <= TOLERANCE
    assert {batch for batch, _ in result.shapes} > {2} and {s for _, s in result.shapes} > {6}
    # Every sequence shorter than the padded length: the outputs past them stay zero.
    x, lengths = torch.randn(4, 10, 4), torch.tensor([3, 7, 1, 5])
    assert compare(graph, session(path), spec, (x, lengths)) <= TOLERANCE


class UnrolledLoop(nn.Module):
    """A Python loop over the steps: the tracer unrolls it for the example's length."""

    def forward(self, x, lengths):
        total = x[:, 0]
        for step in range(1, x.shape[1]):
            total = total + x[:, step]
        return (total * lengths[:, None],)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: rnnkit.LSTM(3, 8, num_layers=2, batch_first=True),
        lambda: rnnkit.GRU(3, 8, bidirectional=True),  # sequence first
    ],
    ids=["lstm-2-layers", "gru-sequence-first"],
)
def test_a_layer_with_its_state_runs_on_onnxruntime_in_its_own_signature(layer, tmp_path):
    torch.manual_seed(0)
    layer = layer().eval()
    graph = layer_graph(layer)
    path = tmp_path / "layer.onnx"
    assert export_checked(graph.module, graph.spec, graph.random_inputs, path).max_difference < 1e-5
    runtime = OnnxRecurrentLayer(layer, session(path))
    x = torch.randn(5, 4, 3) if layer.batch_first else torch.randn(4, 5, 3)
    with torch.no_grad():
        for hx in (None, layer(x)[1]):  # zeros, then a given state
            want, got = layer(x, hx), runtime(x, hx)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_what_onnx_cannot_express_is_a_one_line_error(tmp_path):
    graph = layer_graph(rnnkit.LSTM(3, 8, batch_first=True, proj_size=4).eval())
    path = tmp_path / "projected.onnx"
    with pytest.raises(UserError, match="LSTMs with projections") as error:
        export_checked(graph.module, graph.spec, graph.random_inputs, path)
    assert "\n" not in str(error.value) and not path.exists()


def test_the_check_refuses_a_graph_fixed_to_the_example_length(tmp_path):
    spec = GraphSpec(
        ["x", "lengths"],
        ["total"],
        {"x": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}, "total": {0: "batch"}},
    )

    def random_inputs(batch, steps, generator):
        return torch.randn(batch, steps, 3, generator=generator), torch.ones(batch)

    path = tmp_path / "loop.onnx"
    with pytest.raises(UserError, match="onnxruntime (differs from PyTorch|failed) on a batch"):
        export_checked(UnrolledLoop(), spec, random_inputs, path)
    assert not path.exists()
    # The traced example itself matches: only other lengths reveal the fixed loop.
    export_graph(UnrolledLoop(), random_inputs(2, 6, torch.Generator()), spec, path)
    assert (
        compare(UnrolledLoop(), session(path), spec, random_inputs(2, 6, torch.Generator())) < 1e-5
    )


# ------------------------------------------------------------------------------------------
# The applications: export, then predictions through attach_onnx equal torch's
# ------------------------------------------------------------------------------------------


def onnx_and_torch(cls, directory):
    torch_model, onnx_model = cls.load(directory), cls.load(directory)
    assert attach_onnx(onnx_model, directory)
    networks = exporter_of_model(onnx_model).networks(onnx_model)
    assert networks
    assert all(any(isinstance(m, OnnxNetwork) for m in net.modules()) for net in networks)
    return torch_model, onnx_model


@pytest.mark.parametrize("name", ["sentiment", "sentiment-gru"])
def test_sentiment_predictions_through_onnx_equal_torch(models, name):
    torch_model, onnx_model = onnx_and_torch(SentimentClassifier, models / name)
    assert len(onnx_model.model) == torch_model.config.ensemble
    texts = reviews(40, seed=5)[0] + ["good", "an unseen word zyxw and more " * 9]
    np.testing.assert_allclose(
        onnx_model.predict_scores(texts), torch_model.predict_scores(texts), atol=TOLERANCE
    )
    assert [p.label for p in onnx_model.predict(texts)] == [
        p.label for p in torch_model.predict(texts)
    ]
    # Saliency needs gradients: the runtime module hands that call to the torch network.
    want, got = explain(torch_model, texts[0]), explain(onnx_model, texts[0])
    np.testing.assert_allclose([t.weight for t in got], [t.weight for t in want], atol=1e-5)


def test_forecast_and_anomaly_through_onnx_equal_torch(models):
    data = hourly_frame()
    torch_model, onnx_model = onnx_and_torch(Forecaster, models / "forecast")
    want, got = torch_model.predict(data=data), onnx_model.predict(data=data)
    numbers = want.select_dtypes("number").columns
    assert len(numbers) >= 3  # forecast, lo_80, hi_80
    np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-5)

    torch_model, onnx_model = onnx_and_torch(AnomalyDetector, models / "anomaly")
    series = np.sin(np.arange(200) / 6.0)
    series[120] += 3
    np.testing.assert_allclose(onnx_model.score(series), torch_model.score(series), rtol=1e-5)
    # The detector's network is a forecaster: the export also serves it loaded as one.
    assert attach_onnx(Forecaster.load(models / "anomaly"), models / "anomaly")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_autoregressive_forecaster_samples_through_onnx_layers_equal_torch(cell, tmp_path):
    folder = tmp_path / "model"
    options = dict(TINY_FORECAST, num_layers=2, batch_size=8, samples=20)
    data = hourly_frame()
    Forecaster(**options, cell=cell, decoder="autoregressive").fit(data).save(folder)
    exported = export_model(folder)
    assert [sorted(parts) for parts in exported.files] == [["decoder", "encoder"]]
    assert exported.files[0]["decoder"].name == "model.decoder.onnx"
    torch_model, onnx_model = onnx_and_torch(Forecaster, folder)
    want, got = torch_model.predict(data=data), onnx_model.predict(data=data)
    numbers = want.select_dtypes("number").columns
    # The same uniform draws through parameters equal to 1e-7: the same sample paths.
    np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-5)
    result = latency_ratio(folder, batch_size=2, repeats=3)
    assert result["graph"] == "decoder" and result["input_shapes"]["x"][:2] == [2, 1]


def test_language_model_steps_through_onnx_equal_torch(models):
    torch_model, onnx_model = onnx_and_torch(LanguageModel, models / "lm")
    prompt = "In the beg"
    assert onnx_model.generate(prompt, 60, temperature=0) == torch_model.generate(
        prompt, 60, temperature=0
    )
    sampled = dict(temperature=1.0, top_p=0.9, seed=3)
    assert onnx_model.generate(prompt, 60, **sampled) == torch_model.generate(prompt, 60, **sampled)
    assert onnx_model.bits_per_char(TEXT[:300]) == pytest.approx(
        torch_model.bits_per_char(TEXT[:300]), rel=1e-5
    )


def test_cli_prints_the_difference_and_writes_the_manifest(models, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "step.onnx"
    assert main(["export", str(models / "lm"), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - PyTorch| = " in printed and "tolerance 1e-05)" in printed
    manifest = json.loads((tmp_path / "elsewhere" / "step.onnx.json").read_text())
    assert manifest["app"] == "lm" and manifest["files"] == [{"network": "step.onnx"}]
    assert manifest["graphs"]["network"]["inputs"] == ["tokens", "h0", "c0"]
    assert manifest["checks"][0]["network"]["max_difference"] <= TOLERANCE
    # an ensemble: one file per member beside the first
    ensemble = json.loads((models / "sentiment" / "model.onnx.json").read_text())
    assert ensemble["files"] == [{"network": "model.onnx"}, {"network": "model.2.onnx"}]


def test_latency_ratio_times_both_runtimes_on_the_served_input_size(models):
    result = latency_ratio(models / "lm", batch_size=3, repeats=3)
    assert result["app"] == "lm" and result["input_shapes"]["tokens"] == [3, 1]
    assert result["torch_s"] > 0 and result["onnxruntime_s"] > 0
    assert result["ratio"] == pytest.approx(result["torch_s"] / result["onnxruntime_s"])


# ------------------------------------------------------------------------------------------
# What cannot be exported, stale exports
# ------------------------------------------------------------------------------------------


def run_cli(args, capsys) -> tuple[int, str]:
    status = main(args)
    return status, capsys.readouterr().err


def test_bad_input_is_one_line_exit_2_and_writes_nothing(models, tmp_path, capsys):
    caption = tmp_path / "caption"
    caption.mkdir()
    (caption / "config.json").write_text(json.dumps({"app": "caption"}))
    (caption / "model.safetensors").write_bytes(b"")
    cases = [
        ([str(tmp_path / "missing")], "no such model folder"),
        ([str(tmp_path)], "not a model folder"),
        ([str(caption)], "a caption model that rnnkit cannot export"),
        ([str(models / "lm"), "--format", "tflite"], "unknown export format"),
        ([str(models / "lm"), "--out", str(tmp_path / "lm.txt")], "expected the name of a .onnx"),
    ]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args, message in cases:
        status, err = run_cli(["export", *args], capsys)
        assert status == 2, args
        assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_forecaster_on_rnnkit_cells_is_refused(tmp_path, capsys):
    folder = tmp_path / "model"
    options = dict(TINY_FORECAST, num_layers=1, batch_size=8, cell="mingru")
    Forecaster(**options).fit(hourly_frame()).save(folder)
    files = sorted(p.name for p in folder.iterdir())
    status, err = run_cli(["export", str(folder)], capsys)
    assert status == 2 and "runs rnnkit's own cells" in err and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == files


def test_attach_without_export_is_false_and_after_retraining_an_error(models, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(models / "lm", plain)
    for path in plain.glob(ONNX_FILE + "*"):
        path.unlink()
    assert not attach_onnx(LanguageModel.load(plain), plain)
    assert not attach_onnx(LanguageModel.load(models / "lm"), models / "sentiment")  # other app

    stale = tmp_path / "stale"
    shutil.copytree(models / "lm", stale)
    lm = LanguageModel.load(stale)
    with torch.no_grad():
        lm.model.decoder.bias.add_(1.0)
    lm.save(stale)  # new weights, the old export
    with pytest.raises(UserError, match="exported from other weights"):
        attach_onnx(LanguageModel.load(stale), stale)
