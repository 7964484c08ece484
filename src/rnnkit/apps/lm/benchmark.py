"""Language-model data and the bits-per-character comparison with xz and bzip2.

The text is split at line boundaries: the last 5% is the held-out test text, the 1% before it
validation, the rest training. The compressors get the held-out text alone (the LSTM does not
see it in training either); a second pair of figures gives them the training text as context
(compressed size of train + test minus that of train), which is how an LSTM uses it.
"""

from __future__ import annotations

import bz2
import lzma
from dataclasses import dataclass

from rnnkit.data.text import read_sword_text, read_text
from rnnkit.errors import UserError


@dataclass
class TextSplit:
    train: str
    val: str
    test: str


def split_text(text: str, test_fraction: float = 0.05, val_fraction: float = 0.01) -> TextSplit:
    """Train / validation / test parts of ``text``, cut at the line breaks nearest the fractions.

    Each cut is at the first line break after its point (at the point itself when no line
    break follows it). Where that line break would leave a part empty (a long last line),
    the cut is at the last line break before the point if it is near (within the part's
    own length), else mid-line at the point, so no part is empty in a text of a few KB.
    Texts that the first rule splits keep their split (a model's ``evaluate`` relies on it).
    """
    if not text.strip():
        raise UserError("empty text: expected a UTF-8 text with some lines")
    test_start = _cut(text, test_fraction, end=len(text))
    val_start = _cut(text, test_fraction + val_fraction, end=test_start)
    split = TextSplit(text[:val_start], text[val_start:test_start], text[test_start:])
    if len(split.train) < 100 or not split.val or not split.test:
        raise UserError(
            f"the text is too short ({len(text)} characters); expected at least a few KB"
        )
    return split


def _cut(text: str, fraction: float, end: int) -> int:
    """Where the part ``text[cut:end]`` (about ``fraction`` of the text) starts; ``0 < cut <
    end`` whenever the text allows it, so that neither side of the cut is empty."""
    position = min(int(len(text) * (1 - fraction)), end - 1)
    newline = text.find("\n", position, end - 1)
    if newline >= 0:  # the first line break after the point (what the benchmarks use)
        return newline + 1
    if text.find("\n", position) < 0:  # no line break after the point at all: as before
        return position
    # The line that spans the point runs up to `end`: going forward would leave the part
    # empty, so go back to the line's start when that is near, else cut inside the line.
    newline = text.rfind("\n", 0, position)
    near = len(text) * fraction
    return newline + 1 if newline >= 0 and position - newline - 1 <= near else position


CORPORA = {"web": "engWEB2015eb", "kjv": "engKJV2006eb"}  # bundled names: SWORD modules


def load_corpus(source: str = "web") -> str:
    """``web`` (World English Bible), ``kjv`` (King James Version) or a path to a UTF-8 file."""
    text = read_sword_text(CORPORA[source]) if source in CORPORA else read_text(source)
    if not text.strip():
        raise UserError(f"{source}: empty text; expected a UTF-8 text with some lines")
    return text


def compressor_bits_per_char(test: str, context: str | None = None) -> dict[str, float]:
    """Bits per character of xz (preset 9e) and bzip2 (-9) on ``test``; with ``context``, the
    extra bits that ``context + test`` costs over ``context`` alone."""
    compressors = {
        "xz": lambda data: len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
        "bzip2": lambda data: len(bz2.compress(data, 9)),
    }
    results = {}
    for name, size in compressors.items():
        bytes_used = size(test.encode())
        if context is not None:
            bytes_used = size((context + test).encode()) - size(context.encode())
        results[name] = 8 * bytes_used / len(test)
    return results


def compare_with_compressors(lm, split: TextSplit, with_context: bool = True) -> list[dict]:
    """Rows: the LSTM's bits per character on the test text, then xz and bzip2 on it."""
    rows = [
        {
            "model": f"rnnkit LSTM ({lm.config.tokens})",
            "bits_per_char": lm.bits_per_char(split.test),
            "sees": "training text (as weights)",
        }
    ]
    for name, bpc in compressor_bits_per_char(split.test).items():
        rows.append({"model": name, "bits_per_char": bpc, "sees": "test text only"})
    if with_context:
        for name, bpc in compressor_bits_per_char(split.test, split.train[-900_000:]).items():
            rows.append(
                {
                    "model": f"{name} + context",
                    "bits_per_char": bpc,
                    "sees": "last 900 KB of training text + test text",
                }
            )
    return rows
