"""Export application networks to ONNX, and run them with onnxruntime in place of PyTorch.

``export_model(model_dir)`` writes ``model_dir/model.onnx`` (an ensemble's members:
``model.onnx``, ``model.2.onnx``, ...; an autoregressive forecaster's two recurrent layers:
``model.encoder.onnx`` and ``model.decoder.onnx``) and a manifest ``model.onnx.json``
(application, file names, the hash of the weights it was exported from, how each graph compared
with PyTorch). Files are written only when onnxruntime matches PyTorch to 1e-5 on random inputs
of batch sizes and lengths other than the traced example (see `rnnkit.export.onnx`).

``attach_onnx(model, model_dir)`` swaps the networks of a loaded application model for
onnxruntime-backed modules with the same forward signature, so the application's own
``predict`` runs on onnxruntime unchanged.

Example:
    >>> from rnnkit.apps.sentiment import SentimentClassifier
    >>> texts = ["a gem", "a joy", "a mess", "a bore"] * 16
    >>> labels = ["positive", "positive", "negative", "negative"] * 16
    >>> folder = SentimentClassifier().fit(texts, labels).save("models/sentiment")
    >>> export_model("models/sentiment").files
    [{'network': PosixPath('models/sentiment/model.onnx')}]
    >>> classifier = SentimentClassifier.load("models/sentiment")
    >>> attach_onnx(classifier, "models/sentiment")
    True
    >>> classifier.predict(["what a gem"])  # computed by onnxruntime  # doctest: +ELLIPSIS
    [Prediction(text='what a gem', label='positive', probability=...)]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.core.export import OPSET
from rnnkit.engine.checkpoint import read_json
from rnnkit.errors import UserError
from rnnkit.export.apps import WHOLE, AppExport, exporter_for, exporter_of_model
from rnnkit.export.onnx import Check, export_checked, refuse_fixed_lengths, session
from rnnkit.files import atomic_path, write_json

ONNX_FILE = "model.onnx"
FORMATS = ("onnx",)

__all__ = ["FORMATS", "ONNX_FILE", "Exported", "attach_onnx", "export_model", "exported_files"]


@dataclass
class Exported:
    """What `export_model` wrote, and how each network compared with PyTorch."""

    app: str
    files: list[dict[str, Path]]  # per network (ensemble member): part name -> ONNX file
    manifest: Path
    checks: list[dict[str, Check]]  # per network: part name -> how it compared


def export_model(
    model_dir: str | os.PathLike, out: str | os.PathLike | None = None, format: str = "onnx"
) -> Exported:
    """Export the networks of an application model folder; see the module docstring.

    Args:
        model_dir: a folder written by ``rnnkit <app> train`` (sentiment, forecast, anomaly, lm).
        out: the ONNX file of the first network (default ``model_dir/model.onnx``); further
            ensemble members go beside it as ``<stem>.2.onnx``..., the parts of an
            autoregressive forecaster as ``<stem>.encoder.onnx`` and ``<stem>.decoder.onnx``,
            the manifest as ``<out>.json``.
        format: ``onnx`` (the only one).

    Raises:
        UserError: not a model folder, an application or configuration that cannot be
            exported, or an export that differs from PyTorch. Nothing is written then.
    """
    if format not in FORMATS:
        raise UserError(f"--format {format}: unknown export format; expected {', '.join(FORMATS)}")
    model_dir = Path(model_dir)
    exporter = exporter_for(model_dir)
    out = Path(out) if out is not None else model_dir / ONNX_FILE
    if out.is_dir() or out.suffix != ".onnx":
        raise UserError(f"--out {out}: expected the name of a .onnx file, e.g. {ONNX_FILE}")
    model = exporter.load(model_dir)
    nets = exporter.networks(model)
    files: list[dict[str, Path]] = []  # per network: part name -> ONNX file
    checks: list[dict[str, Check]] = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-export-") as scratch:
        # Every graph is exported and checked before anything is written beside the model.
        for index, net in enumerate(nets):
            refuse_fixed_lengths(net)
            graphs = exporter.graphs(net)
            files.append({part: _graph_path(out, index, part) for part in graphs})
            checks.append({})
            for part, graph in graphs.items():
                scratch_file = Path(scratch) / files[-1][part].name
                checks[-1][part] = export_checked(
                    graph.module, graph.spec, graph.random_inputs, scratch_file
                )
        for parts in files:
            for path in parts.values():
                _copy_atomically(Path(scratch) / path.name, path)
    manifest = _manifest_path(out)
    write_json(
        manifest,
        {
            "format": "onnx",
            "app": exporter.app,
            "files": [
                {part: os.path.relpath(path, manifest.parent) for part, path in parts.items()}
                for parts in files
            ],
            "graphs": {part: asdict(graph.spec) for part, graph in graphs.items()},
            "opset": OPSET,
            "weights_sha256": _weights_hash(model_dir),
            "checks": [{part: c.to_dict() for part, c in parts.items()} for parts in checks],
            "torch": torch.__version__,
        },
    )
    return Exported(exporter.app, files, manifest, checks)


def attach_onnx(model: Any, model_dir: str | os.PathLike, threads: int | None = None) -> bool:
    """Run ``model``'s networks on onnxruntime if ``model_dir`` holds their ONNX export.

    Args:
        model: an application model loaded from ``model_dir`` (`SentimentClassifier`,
            `Forecaster`, `AnomalyDetector` or `LanguageModel`).
        model_dir: its folder; the export is found by its manifest ``model.onnx.json``.
        threads: onnxruntime's intra-op threads (default: torch's).

    Returns:
        True when the networks were swapped; False when there is no export for this model
        (no manifest, another application, or a model that cannot be exported).

    Raises:
        UserError: the export was made from other weights (retrained since) or is incomplete.
    """
    exporter = exporter_of_model(model)
    if exporter is None:
        return False
    files = exported_files(exporter, model_dir)
    if files is None:
        return False
    nets = exporter.networks(model)
    if len(files) != len(nets):
        raise UserError(
            f"{model_dir}: the ONNX export holds {len(files)} network(s), the model "
            f"{len(nets)}; run 'rnnkit export {model_dir}' again"
        )
    runtimes = [
        exporter.runtime(net, {part: session(path, threads) for part, path in parts.items()})
        for net, parts in zip(nets, files, strict=True)
    ]
    exporter.set_networks(model, runtimes)
    return True


def exported_files(
    exporter: AppExport, model_dir: str | os.PathLike
) -> list[dict[str, Path]] | None:
    """The ONNX files of the export in ``model_dir`` (per network: part name -> file), or None
    when it has none for ``exporter``'s application.

    Raises:
        UserError: the export was made from other weights (retrained since) or is incomplete.
    """
    manifest_file = Path(model_dir) / (ONNX_FILE + ".json")
    if not manifest_file.is_file():
        return None
    manifest = read_json(manifest_file)
    if not exporter.reads(manifest.get("app")) or manifest.get("format") != "onnx":
        return None
    again = f"run 'rnnkit export {model_dir}' again"
    if manifest.get("weights_sha256") != _weights_hash(Path(model_dir)):
        raise UserError(
            f"{manifest_file}: exported from other weights than {model_dir}/model.safetensors "
            f"(the model was trained again since); {again}"
        )
    if not all(isinstance(parts, dict) for parts in manifest.get("files", [None])):
        raise UserError(f"{manifest_file}: not a manifest this rnnkit reads; {again}")
    files = [
        {part: manifest_file.parent / name for part, name in parts.items()}
        for parts in manifest["files"]
    ]
    missing = [str(path) for parts in files for path in parts.values() if not path.is_file()]
    if missing:
        raise UserError(
            f"{manifest_file}: the export is incomplete (missing {missing[0]}); {again}"
        )
    return files


def _graph_path(first: Path, index: int, part: str) -> Path:
    """The ONNX file of a part of ensemble member ``index`` (0-based): ``model.onnx``,
    ``model.2.onnx``; parts other than the whole network: ``model.decoder.onnx``."""
    member = "" if index == 0 else f".{index + 1}"
    name = "" if part == WHOLE else f".{part}"
    return first.with_name(f"{first.stem}{member}{name}{first.suffix}")


def _manifest_path(first: Path) -> Path:
    return first.with_name(first.name + ".json")


def _copy_atomically(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _weights_hash(model_dir: Path) -> str:
    """SHA-256 of ``model.safetensors``: ties an export to the weights it was made from."""
    digest = hashlib.sha256()
    with open(model_dir / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
