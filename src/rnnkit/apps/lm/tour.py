"""The language-model section of ``rnnkit tour``: a char-level LSTM on the Bible, bits per
character against xz and bzip2, and samples under each decoding setting."""

from __future__ import annotations

import math
from pathlib import Path

from rnnkit.apps.lm.benchmark import TextSplit, compare_with_compressors, load_corpus, split_text
from rnnkit.apps.lm.language_model import LanguageModel, LMConfig
from rnnkit.errors import UserError
from rnnkit.files import atomic_path
from rnnkit.report import Section

DECODING = [
    ("greedy", {"temperature": 0.0}),
    ("temperature 0.7", {"temperature": 0.7}),
    ("top-k 5", {"temperature": 1.0, "top_k": 5}),
    ("nucleus top-p 0.9", {"temperature": 1.0, "top_p": 0.9}),
]


def lm_tour(
    out: Path, quick: bool, seed: int = 0, device: str = "cpu", keep: Path | None = None
) -> Section:
    """Train briefly on the World English Bible (Debian sword-text-web)."""
    section = Section(title="Language model: World English Bible")
    try:
        split = split_text(load_corpus("web"))
    except UserError as error:  # the Debian package is missing: say how to get it
        return section.leave_out(str(error))
    test = split.test[:20_000] if quick else split.test[:100_000]
    split = TextSplit(split.train, split.val[:20_000], test)
    config = LMConfig(
        hidden_size=64 if quick else 256,
        embedding_dim=64 if quick else 128,
        max_batches=15 if quick else 300,
        epochs=1,
        batch_size=32,
        bptt=100,
        seed=seed,
        device=device,
    )
    lm = LanguageModel(config).fit(split.train, split.val)
    if keep is not None:  # the model folder `make serve` serves
        lm.save(keep)
    seen = config.max_batches * config.batch_size * config.bptt
    rows = compare_with_compressors(lm, split, with_context=not quick)
    section.text(
        f"A character-level LSTM ({config.hidden_size} units, tied embedding, AWD-LSTM "
        f"weight drop {config.weight_drop} and locked dropout {config.dropout}) trained with "
        f"truncated backpropagation through time ({config.bptt} steps, state carried between "
        f"windows) on {seen:,} characters of the Bible, for a minute at most. It is scored in "
        f"bits per character on the last {len(test):,} characters, which it never saw; xz and "
        f"bzip2 compress the same text. A full 'rnnkit lm train' run (an epoch of all "
        f"{len(split.train):,} characters) goes much further."
    )
    section.table(rows, "Bits per character on held-out text (lower is better)")
    section.image(_plot(rows, lm.history, out / "bits_per_char.png"), "Bits per character")
    samples = []
    for name, options in DECODING:
        text = lm.generate("And God said", 120 if not quick else 60, seed=seed, **options)
        samples.append(
            {"decoding": name, "continuation of 'And God said'": text.replace("\n", " / ")}
        )
    section.table(samples, "Generated text")
    return section


def _plot(rows: list[dict], history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 3))
    names = [r["model"] for r in rows]
    values = [r["bits_per_char"] for r in rows]
    colours = ["tab:blue"] + ["tab:grey"] * (len(rows) - 1)
    axes.barh(names[::-1], values[::-1], color=colours[::-1])
    for y, value in enumerate(values[::-1]):
        axes.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    axes.set_xlabel("bits per character (held-out text)")
    if history:
        axes.set_title(
            f"training loss {history[-1]['loss'] / math.log(2):.2f} bits/char", fontsize=9
        )
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return path
