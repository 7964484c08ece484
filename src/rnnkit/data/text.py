"""Text data: VADER's human-rated snippets, Bibles from SWORD modules, the user's files, tokenizers.

Everything here reads local files; the one exception is VADER's source archive, which is fetched
once with ``pip download`` (PyPI, like any dependency) into rnnkit's cache.

Example:
    >>> movies = load_vader_snippets("movie")           # DataFrame: id, rating, text
    >>> bible = read_sword_text("engWEB2015eb")          # one verse per line
    >>> tokenizer = train_tokenizer(movies.text, kind="subword", vocab_size=8000)
"""

from __future__ import annotations

import html
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from rnnkit.data.cache import cache_dir
from rnnkit.errors import UserError
from rnnkit.files import write_text

# --------------------------------------------------------------------------------------------
# VADER's source archive: 23,703 human-rated snippets and the rule-based analyser itself.

VADER_VERSION = "3.3.2"
VADER_DOMAINS = {
    "movie": "movieReviewSnippets",  # 10,605 Rotten Tomatoes sentences (Pang & Lee polarity)
    "tweets": "tweets",  # 4,200 tweets
    "amazon": "amazonReviewSnippets",  # 3,708 product review snippets
    "nyt": "nytEditorialSnippets",  # 5,190 New York Times editorial snippets
}


def vader_archive_dir() -> Path:
    """The unpacked ``vaderSentiment-3.3.2`` source archive in the cache; fetched once via pip.

    Only the source archive (not the wheel) holds the ``additional_resources`` folder with the
    ground-truth ratings, hence ``--no-binary :all:``.
    """
    root = cache_dir("vader", VADER_VERSION)
    ratings = root / "hutto_ICWSM_2014"
    analyser = root / "vaderSentiment" / "vaderSentiment.py"
    if ratings.is_dir() and analyser.exists():
        return root
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            f"vaderSentiment=={VADER_VERSION}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(tmp).glob("vaderSentiment-*.tar.gz"))
        if result.returncode != 0 or not archives:
            reason = (result.stderr.strip().splitlines() or ["no archive"])[-1]
            raise UserError(
                f"could not fetch vaderSentiment=={VADER_VERSION} with pip ({reason}); "
                f"run '{' '.join(command[:-3])} -d DIR vaderSentiment=={VADER_VERSION}' where "
                f"PyPI is reachable and unpack it into {root}"
            )
        _unpack_vader(archives[0], Path(tmp) / "unpacked")
        staged = Path(tmp) / "unpacked"
        # Move into place last, so an interrupted fetch never looks like a complete one.
        (staged / "vaderSentiment").replace(root / "vaderSentiment")
        (staged / "hutto_ICWSM_2014").replace(ratings)
    return root


def _unpack_vader(archive: Path, into: Path) -> None:
    """Extract the analyser and the nested ``hutto_ICWSM_2014.tar.gz`` ratings archive."""
    into.mkdir(parents=True)
    prefix = f"vaderSentiment-{VADER_VERSION}/"
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            name = member.name.removeprefix(prefix)
            if name.startswith("vaderSentiment/") and member.isfile():
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(outer.extractfile(member).read())
            elif name == "additional_resources/hutto_ICWSM_2014.tar.gz":
                with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                    inner.extractall(into, filter="data")


def load_vader_snippets(
    domain: str = "movie", root: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Human-rated snippets of one domain as a DataFrame with columns ``id, rating, text``.

    Args:
        domain: ``movie``, ``tweets``, ``amazon`` or ``nyt``.
        root: a folder holding ``hutto_ICWSM_2014/``; default: VADER's archive in the cache.

    The rating is the mean of about 20 human ratings on -4 (very negative) .. 4 (very positive).
    """
    if domain not in VADER_DOMAINS:
        raise UserError(
            f"unknown snippet domain {domain!r}; expected one of {', '.join(VADER_DOMAINS)}"
        )
    folder = Path(root) if root is not None else vader_archive_dir()
    path = folder / "hutto_ICWSM_2014" / f"{VADER_DOMAINS[domain]}_GroundTruth.txt"
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            rows.append((fields[0], float(fields[1]), fields[2].strip()))
        except (IndexError, ValueError):
            raise UserError(f"{path}, line {number}: expected 'id<TAB>rating<TAB>text'") from None
    return pd.DataFrame(rows, columns=["id", "rating", "text"])


def load_vader_analyzer():
    """VADER's own ``SentimentIntensityAnalyzer`` (lexicon and rules), from the cached archive.

    Example:
        >>> load_vader_analyzer().polarity_scores("not bad at all")["compound"]
        0.431
    """
    path = vader_archive_dir() / "vaderSentiment" / "vaderSentiment.py"
    spec = importlib.util.spec_from_file_location("rnnkit_vader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # it finds its lexicon files beside itself
    return module.SentimentIntensityAnalyzer()


# --------------------------------------------------------------------------------------------
# The user's files.


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file; a one-line error naming line and column for bytes that are not UTF-8.

    A file that starts with a UTF-16 byte-order mark (what Windows' Notepad writes as
    "Unicode") is read as UTF-16. Line endings are normalised to ``\\n``.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a UTF-8 text file")
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        if encoding == "utf-16":
            raise UserError(f"{path}: starts as UTF-16 but is not ({error.reason})") from None
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise UserError(
            f"{path}, line {line}, column {column}: byte 0x{data[error.start]:02x} is not UTF-8; "
            f"expected a UTF-8 text file"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` split at ``\n`` only (after `read_text`'s normalisation).

    ``str.splitlines`` also splits at U+2028, U+0085, form feeds and more, so a file that
    ``wc -l`` counts as N lines could come back longer, and outputs would lose their
    alignment with the input's lines. A final newline ends the last line; it adds none.
    """
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_labelled_texts(
    path: str | os.PathLike, text_column: str = "text", label_column: str = "label"
) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``) file of texts and labels.

    Returns a DataFrame with columns ``text`` and ``label`` (labels kept as they are: strings
    for classes, numbers for ratings). Empty texts and empty labels are an error naming their
    line; so are JSON texts that are not strings and JSON labels that are not a string or a
    number (a list or an object would silently become a class of its own).
    """
    path = Path(path)
    text = read_text(path)  # UTF-8 (or UTF-16 with its mark), checked with line and column
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"{path}, line {number}, column {error.colno}: expected one JSON object "
                    f"per line ({error.msg})"
                ) from None
            if not isinstance(record, dict):
                raise UserError(f"{path}, line {number}: expected a JSON object per line")
            for column in (text_column, label_column):
                if column not in record:
                    raise UserError(
                        f"{path}, line {number}: no field {column!r}; expected fields "
                        f"{text_column!r} and {label_column!r} (see --text-column/--label-column)"
                    )
            _check_json_fields(record[text_column], record[label_column], path, number)
            records.append({"text": record[text_column], "label": record[label_column]})
        frame = pd.DataFrame(records, columns=["text", "label"])
        first_line = 1
    elif suffix in (".csv", ".tsv", ".txt"):
        separator = "\t" if suffix == ".tsv" else ","
        try:
            frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise UserError(f"{path}: not a readable CSV file ({str(error).strip()})") from None
        missing = [c for c in (text_column, label_column) if c not in frame.columns]
        if missing:
            raise UserError(
                f"{path}, line 1: no column {missing[0]!r}; the header has "
                f"{', '.join(map(repr, frame.columns))} (see --text-column/--label-column)"
            )
        frame = frame[[text_column, label_column]].set_axis(["text", "label"], axis=1)
        first_line = 2
    else:
        raise UserError(f"{path}: unknown file type {suffix!r}; expected .csv, .tsv or .jsonl")
    if frame.empty:
        raise UserError(f"{path}: no rows; expected a header and at least one text")
    for index, text in enumerate(frame["text"]):
        if not isinstance(text, str) or not text.strip():
            raise UserError(
                f"{path}, line {index + first_line}: empty text in column {text_column!r}"
            )
    for index, label in enumerate(frame["label"]):
        if label is None or (isinstance(label, str) and not label.strip()):
            raise UserError(
                f"{path}, line {index + first_line}: empty label in column {label_column!r}; "
                "expected a class name or a number"
            )
    return frame


def _check_json_fields(text: object, label: object, path: Path, number: int) -> None:
    """A JSON Lines record's text must be a string, its label a string or a number."""
    if not isinstance(text, str):
        raise UserError(
            f"{path}, line {number}: the text is {type(text).__name__} {text!r}; "
            "expected a JSON string"
        )
    if isinstance(label, (list, dict)) or (isinstance(label, float) and label != label):
        raise UserError(
            f"{path}, line {number}: the label is {type(label).__name__} {label!r}; "
            "expected a string or a number"
        )


# --------------------------------------------------------------------------------------------
# Bibles from Debian's SWORD packages (zText modules).

SWORD_ROOT = Path("/usr/share/sword/modules/texts/ztext")
SWORD_PACKAGES = {"engWEB2015eb": "sword-text-web", "engKJV2006eb": "sword-text-kjv"}

_NOTE = re.compile(r"<note\b.*?</note>", re.S)  # footnotes: not part of the running text
_TITLE = re.compile(r"<title\b.*?</title>", re.S)  # section headings
_TAG = re.compile(r"<[^>]*(>|$)")  # a tag may be cut at the end of a verse entry
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([,.;:!?])")


def read_sword_text(module: str = "engWEB2015eb", root: str | os.PathLike | None = None) -> str:
    """The running text of a SWORD Bible module, one verse per line (markup stripped).

    Args:
        module: ``engWEB2015eb`` (World English Bible, Debian ``sword-text-web``) or
            ``engKJV2006eb`` (King James Version, ``sword-text-kjv``).
        root: the ``ztext`` folder; default ``/usr/share/sword/modules/texts/ztext``.

    The parsed text is cached (keyed by the module's file sizes), since parsing takes seconds.
    """
    folder = Path(root or SWORD_ROOT) / module.lower()
    if not folder.is_dir():
        folder = Path(root or SWORD_ROOT) / module
    if not folder.is_dir():
        package = SWORD_PACKAGES.get(module, "the package that ships it")
        raise UserError(
            f"{folder}: SWORD module {module!r} is not installed; install it with "
            f"'apt-get install {package}', or pass your own UTF-8 text file"
        )
    key = "-".join(str(p.stat().st_size) for p in sorted(folder.glob("*.bz?")))
    cached = cache_dir("sword", module) / f"{key}.txt"
    if cached.exists():
        return cached.read_text(encoding="utf-8")
    verses = [v for testament in ("ot", "nt") for v in _sword_verses(folder, testament)]
    text = "\n".join(verses) + "\n"
    write_text(cached, text)
    return text


def _sword_verses(folder: Path, testament: str) -> list[str]:
    """Decode one testament: ``.bzv`` 10-byte verse entries (block, offset, size) point into
    zlib blocks of ``.bzz`` located by the 12-byte ``.bzs`` entries (offset, size, raw size)."""
    if not (folder / f"{testament}.bzv").exists():
        return []
    blocks = (folder / f"{testament}.bzs").read_bytes()
    index = (folder / f"{testament}.bzv").read_bytes()
    compressed = (folder / f"{testament}.bzz").read_bytes()
    decoded: dict[int, bytes] = {}
    verses = []
    for block, offset, size in struct.iter_unpack("<IIH", index):
        if size == 0:
            continue
        if block not in decoded:
            start, length, _ = struct.unpack_from("<III", blocks, 12 * block)
            decoded[block] = zlib.decompress(compressed[start : start + length])
        markup = decoded[block][offset : offset + size].decode("utf-8", errors="replace")
        if 'type="front"' in markup or 'type="introduction"' in markup:
            continue  # the translators' preface, not Bible text
        verse = strip_osis(markup)
        if verse:
            verses.append(verse)
    return verses


def strip_osis(markup: str) -> str:
    """Plain text of an OSIS fragment: drop footnotes, headings and tags; collapse spaces."""
    # Notes sit between words without spaces ("God<note>..</note>created"): keep a space.
    text = _TAG.sub("", _TITLE.sub(" ", _NOTE.sub(" ", markup)))
    text = _SPACES.sub(" ", html.unescape(text)).strip()
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


# --------------------------------------------------------------------------------------------
# Tokenizers (Hugging Face ``tokenizers``), trained on the training split only.

UNK, PAD = "[UNK]", "[PAD]"


def train_tokenizer(texts: Iterable[str], kind: str = "word", vocab_size: int = 20000):
    """Train a tokenizer: lower-casing ``word`` (whole words and punctuation) or ``subword``
    (lower-cased BPE pieces of words), or a lossless byte-level BPE (``bytes``).

    Id 0 is ``[PAD]``; for ``word`` and ``subword`` id 1 is ``[UNK]``: words never seen in
    training map to ``[UNK]`` (the documented fallback for unknown input). Save with
    ``tokenizer.save(path)``, load with ``tokenizers.Tokenizer.from_file(path)``.

    Example:
        >>> tok = train_tokenizer(["a fine film", "a dull film"], kind="word")
        >>> tok.encode("a fine movie").tokens
        ['a', 'fine', '[UNK]']
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    # show_progress=False everywhere: the trainers' progress bars print blank lines to a
    # stdout that is not a terminal, in the middle of the command's own output.
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=1, special_tokens=[PAD, UNK], show_progress=False
        )
    elif kind == "subword":
        # No "##" continuing-piece prefix: with it, the trainer breaks ties differently from
        # one process to the next, and the same seed must give the same model.
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False
        )
    elif kind == "bytes":
        # Byte-level BPE keeps case, spaces and newlines: decoding gives back the exact text,
        # and no input is ever unknown (what a language model that generates text needs).
        tokenizer = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.train_from_iterator(list(texts), trainer=trainer)
        return tokenizer
    else:
        raise UserError(f"unknown tokenizer kind {kind!r}; expected 'word', 'subword' or 'bytes'")
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return tokenizer


class CharVocab:
    """Characters to ids and back, for character-level language models.

    Characters never seen in training are an error when ``strict`` (a prompt), or map to the
    id of ``fallback`` otherwise.

    Example:
        >>> vocab = CharVocab.from_text("abcab")
        >>> vocab.encode("cab"), vocab.decode([2, 0, 1])
        ([2, 0, 1], 'cab')
    """

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        if not text:
            raise UserError("empty text: nothing to build a character vocabulary from")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, strict: bool = True, what: str = "text") -> list[int]:
        unknown = sorted({c for c in text if c not in self.index})
        if unknown and strict:
            shown = ", ".join(repr(c) for c in unknown[:5])
            column = min(text.index(c) for c in unknown) + 1
            raise UserError(
                f"{what}, column {column}: character(s) {shown} never seen in training; "
                f"expected characters from the training text"
            )
        fallback = self.index.get(" ", 0)
        return [self.index.get(c, fallback) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> list[str]:
        return self.chars
