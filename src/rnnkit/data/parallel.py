"""Parallel text for translation: the English and Spanish Bibles, or the user's own files.

The bundled corpus pairs two Debian SWORD modules, ``sword-text-kjv`` (King James Version,
English) and ``sword-text-sparv`` (Reina-Valera 1909, Spanish). Both use the KJV
versification, so entry *i* of one module is the same verse as entry *i* of the other: the
verses align without any sentence aligner. Verses are split into train / valid / test by
whole chapters (or whole books), so that no test verse is seen in training.

    >>> from rnnkit.data.parallel import load_bible_pairs, split_pairs
    >>> pairs = load_bible_pairs(max_words=20)
    >>> splits = split_pairs(pairs, by="chapter")
    >>> splits["train"][0].source
    'In the beginning God created the heaven and the earth.'

A SWORD ``ztext`` module stores each testament as three files: ``.bzs`` (12-byte entries:
offset, size and uncompressed size of a zlib block), ``.bzv`` (10-byte entries: block number,
offset in the uncompressed block and size of one verse) and ``.bzz`` (the blocks). Verse text
is OSIS XML; footnotes are dropped and the remaining markup stripped.
"""

from __future__ import annotations

import csv
import html
import json
import os
import random
import re
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from rnnkit.data.cache import cache_dir
from rnnkit.errors import UserError
from rnnkit.files import write_text

SWORD_ROOT = Path("/usr/share/sword")
ENGLISH_MODULE = "engKJV2006eb"  # Debian package sword-text-kjv
SPANISH_MODULE = "spaRV1909eb"  # Debian package sword-text-sparv
INSTALL_HINT = "sudo apt-get install sword-text-kjv sword-text-sparv"
MAX_USER_SENTENCE_CHARS = 2000
CACHE_FORMAT = 2  # bump when the text cleaning changes, so old caches are re-parsed


@dataclass(frozen=True)
class SentencePair:
    """One aligned pair. ``group`` (e.g. ``"Gen.1"``) keeps a chapter together in a split."""

    source: str
    target: str
    group: str = ""

    def reversed(self) -> SentencePair:
        """The same pair for the other direction (target becomes source)."""
        return SentencePair(self.target, self.source, self.group)


@dataclass(frozen=True)
class Verse:
    book: str
    chapter: int
    verse: int
    text: str


# ---------------------------------------------------------------------------- SWORD modules


def sword_available(root: Path = SWORD_ROOT) -> bool:
    """True when both Bible modules are installed."""
    return all(_module_dir(name, root).is_dir() for name in (ENGLISH_MODULE, SPANISH_MODULE))


def _module_dir(name: str, root: Path = SWORD_ROOT) -> Path:
    return root / "modules" / "texts" / "ztext" / name


def _module_version(name: str, root: Path = SWORD_ROOT) -> str:
    conf = root / "mods.d" / f"{name.lower()}.conf"
    if not conf.exists():
        return "unknown"
    match = re.search(r"^Version=(.+)$", conf.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _read_entries(directory: Path, testament: str) -> list[str]:
    """Every index entry (headings and verses) of one testament, as raw OSIS text."""
    bzs = (directory / f"{testament}.bzs").read_bytes()
    bzv = (directory / f"{testament}.bzv").read_bytes()
    bzz = (directory / f"{testament}.bzz").read_bytes()
    blocks = []
    for i in range(len(bzs) // 12):
        offset, size, _ = struct.unpack_from("<III", bzs, i * 12)
        blocks.append(zlib.decompress(bzz[offset : offset + size]))
    entries = []
    for i in range(len(bzv) // 10):
        block, offset, size = struct.unpack_from("<IIH", bzv, i * 10)
        entries.append(blocks[block][offset : offset + size].decode("utf-8") if size else "")
    return entries


_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_NON_CANONICAL_TITLE = re.compile(r"<title(?![^>]*canonical=\"true\")[^>]*>.*?</title>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_CHAPTER = re.compile(r"<chapter\b[^>]*osisID=\"([\w]+)\.(\d+)\"")


def osis_to_text(osis: str) -> str:
    """Plain text of one OSIS verse: footnotes and section titles dropped, tags stripped."""
    text = _NON_CANONICAL_TITLE.sub(" ", _NOTE.sub(" ", osis))
    text = html.unescape(_TAG.sub(" ", text)).replace("¶", " ")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)  # "word ," -> "word," left by stripped tags
    return re.sub(r"([¡¿(])\s+", r"\1", text)


def read_sword_module(name: str, root: Path = SWORD_ROOT) -> list[Verse | None]:
    """All entries of a KJV-versified module; heading entries are ``None``, verses `Verse`.

    The list is index-aligned across modules with the same versification.
    """
    directory = _module_dir(name, root)
    if not directory.is_dir():
        raise UserError(f"{directory}: SWORD module {name} not installed; {INSTALL_HINT}")
    out: list[Verse | None] = []
    for testament in ("ot", "nt"):
        book, chapter, verse = "", 0, 0
        for raw in _read_entries(directory, testament):
            match = _CHAPTER.search(raw)
            if match:  # a chapter heading entry: the verses that follow belong to it
                book, chapter, verse = match.group(1), int(match.group(2)), 0
                out.append(None)
            elif chapter == 0 or not raw.strip():  # module, testament or book heading
                out.append(None)
            else:
                verse += 1
                out.append(Verse(book, chapter, verse, osis_to_text(raw)))
    return out


def _fix_shouted_start(text: str) -> str:
    # RV1909 sets a chapter's first word in capitals ("EN el principio"); keep the first letter.
    return re.sub(r"^([¡¿(]?)([A-ZÁÉÍÓÚÑ]{2,})(?=\W)", lambda m: m[1] + m[2].capitalize(), text)


def load_bible_verses(root: Path = SWORD_ROOT) -> list[dict]:
    """Aligned verses as dicts (book, chapter, verse, en, es); parsed once, then cached."""
    versions = [_module_version(name, root) for name in (ENGLISH_MODULE, SPANISH_MODULE)]
    key = f"{versions[0]}-{versions[1]}-format{CACHE_FORMAT}"
    cache = cache_dir("bible_parallel", key) / "verses.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    english = read_sword_module(ENGLISH_MODULE, root)
    spanish = read_sword_module(SPANISH_MODULE, root)
    rows = []
    for en, es in zip(english, spanish, strict=True):
        if en is None or es is None or not en.text or not es.text:
            continue
        rows.append({**asdict(en), "en": en.text, "es": _fix_shouted_start(es.text)})
        rows[-1].pop("text")
    write_text(cache, json.dumps(rows, ensure_ascii=False))
    return rows


def load_bible_pairs(
    source: str = "en", max_words: int | None = None, root: Path = SWORD_ROOT
) -> list[SentencePair]:
    """English-Spanish verse pairs (``source="es"`` for Spanish to English).

    Args:
        source: ``"en"`` or ``"es"``, the language translated from.
        max_words: keep only verses whose English and Spanish have at most this many words.
    """
    if source not in ("en", "es"):
        raise UserError(f"source language {source!r}: expected 'en' or 'es'")
    if not sword_available(root):
        raise UserError(f"the Bible modules are not installed; {INSTALL_HINT}")
    target = "es" if source == "en" else "en"
    pairs = []
    for row in load_bible_verses(root):
        if max_words and max(len(row["en"].split()), len(row["es"].split())) > max_words:
            continue
        group = f"{row['book']}.{row['chapter']}"
        pairs.append(SentencePair(row[source], row[target], group))
    return pairs


def split_pairs(
    pairs: list[SentencePair],
    by: str = "chapter",
    valid_fraction: float = 0.03,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> dict[str, list[SentencePair]]:
    """Split into ``train``/``valid``/``test`` by whole chapters or whole books.

    Groups are shuffled with ``seed`` and assigned greedily until each held-out part holds
    its fraction of the pairs, so no chapter (or book) straddles two parts.
    """
    if by not in ("chapter", "book"):
        raise UserError(f"split by {by!r}: expected 'chapter' or 'book'")
    key = (lambda p: p.group) if by == "chapter" else (lambda p: p.group.split(".")[0])
    groups = sorted({key(p) for p in pairs})
    random.Random(seed).shuffle(groups)
    sizes: dict[str, int] = {}
    for p in pairs:
        sizes[key(p)] = sizes.get(key(p), 0) + 1
    assignment, counts = {}, {"test": 0, "valid": 0}
    wanted = {"test": test_fraction * len(pairs), "valid": valid_fraction * len(pairs)}
    for g in groups:
        part = next((s for s in ("test", "valid") if counts[s] < wanted[s]), "train")
        if part != "train":
            counts[part] += sizes[g]
        assignment[g] = part
    splits: dict[str, list[SentencePair]] = {"train": [], "valid": [], "test": []}
    for p in pairs:
        splits[assignment[key(p)]].append(p)
    return splits


# ---------------------------------------------------------------------------- user files


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file: BOM dropped, line endings normalised, split at ``\n`` only
    (``str.splitlines`` also splits at U+2028 and the like, so aligned files would seem to
    differ in length)."""
    from rnnkit.data.text import read_text, text_lines  # lazily: it imports pandas

    return text_lines(read_text(path))


def _check_sentence(text: str, path: Path, line: int, column: str) -> str:
    text = text.strip()
    if not text:
        raise UserError(f"{path}, line {line}, {column}: empty sentence; expected text")
    if len(text) > MAX_USER_SENTENCE_CHARS:
        raise UserError(
            f"{path}, line {line}, {column}: sentence of {len(text)} characters; expected at "
            f"most {MAX_USER_SENTENCE_CHARS} (split it into shorter sentences)"
        )
    return text


def read_parallel_files(
    source_path: str | os.PathLike, target_path: str | os.PathLike
) -> list[SentencePair]:
    """Two line-aligned files: line *i* of one translates line *i* of the other.

    Raises a one-line `UserError` for empty files, a differing number of lines, an empty line
    on one side, or an overlong line.
    """
    source_path, target_path = Path(source_path), Path(target_path)
    sources, targets = _read_lines(source_path), _read_lines(target_path)
    for path, lines in ((source_path, sources), (target_path, targets)):
        if not any(line.strip() for line in lines):
            raise UserError(f"{path}: empty file; expected one sentence per line")
    while sources and targets and not sources[-1].strip() and not targets[-1].strip():
        sources.pop(), targets.pop()  # trailing blank lines on both sides are harmless
    if len(sources) != len(targets):
        raise UserError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "expected the same number (line i of one translates line i of the other)"
        )
    return [
        SentencePair(
            _check_sentence(s, source_path, i, "column 1"),
            _check_sentence(t, target_path, i, "column 1"),
            group=f"line{i}",
        )
        for i, (s, t) in enumerate(zip(sources, targets, strict=True), start=1)
    ]


def read_parallel_tsv(path: str | os.PathLike) -> list[SentencePair]:
    """A tab-separated file, one pair per line: ``source<TAB>target``."""
    path = Path(path)
    lines = _read_lines(path)
    pairs = []
    for i, row in enumerate(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise UserError(
                f"{path}, line {i}: {len(row)} tab-separated column(s); expected 2 "
                "(source<TAB>target)"
            )
        pairs.append(
            SentencePair(
                _check_sentence(row[0], path, i, "column 1"),
                _check_sentence(row[1], path, i, "column 2"),
                group=f"line{i}",
            )
        )
    if not pairs:
        raise UserError(f"{path}: empty file; expected lines of source<TAB>target")
    return pairs
