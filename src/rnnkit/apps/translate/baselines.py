"""What rnnkit's translator is compared with, and the scores: BLEU and chrF with sacrebleu.

- `apertium_translate`: Apertium, a rule-based translator (Debian ``apertium-eng-spa``;
  pairs ``eng-spa`` and ``spa-eng``).
- `WordForWordDictionary`: each source word replaced by the target word it co-occurs with most
  in the training pairs (Dice coefficient), in the source order: the floor any model must beat.
- `compare_translations`: paired-bootstrap intervals of the BLEU and chrF differences.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence

import numpy as np
import sacrebleu
from scipy import sparse

from rnnkit.data.parallel import SentencePair
from rnnkit.errors import UserError
from rnnkit.stats import Interval, paired_bootstrap

APERTIUM_PAIRS = {("en", "es"): "eng-spa", ("es", "en"): "spa-eng"}
APERTIUM_HINT = "sudo apt-get install apertium-eng-spa"


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenization, case-sensitive)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    refs = [list(references)]
    return {
        "BLEU": sacrebleu.corpus_bleu(list(hypotheses), refs).score,
        "chrF": sacrebleu.corpus_chrf(list(hypotheses), refs).score,
    }


def compare_translations(
    system_a: Sequence[str],
    system_b: Sequence[str],
    references: Sequence[str],
    seed: int = 0,
) -> dict[str, Interval]:
    """Paired-bootstrap intervals of BLEU(a) - BLEU(b) and chrF(a) - chrF(b) over sentences.

    As sacrebleu's own paired bootstrap does, each sentence contributes its sufficient
    statistics (n-gram matches and counts) and a resample's corpus score is computed from
    their sums, so the statistic is the real corpus BLEU/chrF of the resampled sentences.
    """
    refs = [list(references)]
    intervals = {}
    for name, metric in (("BLEU", sacrebleu.BLEU()), ("chrF", sacrebleu.CHRF())):
        stats_a = np.array(metric._extract_corpus_statistics(list(system_a), refs), dtype=float)
        stats_b = np.array(metric._extract_corpus_statistics(list(system_b), refs), dtype=float)

        def corpus_score(rows: np.ndarray, metric=metric) -> float:
            return metric._compute_score_from_stats(list(rows.sum(axis=0))).score

        intervals[name] = paired_bootstrap(
            stats_a, stats_b, statistic=corpus_score, resamples=1000, seed=seed
        )
    return intervals


def apertium_available(source: str = "en", target: str = "es") -> bool:
    """True when the ``apertium`` command and the language pair are installed."""
    pair = APERTIUM_PAIRS.get((source, target))
    if pair is None or shutil.which("apertium") is None:
        return False
    listing = subprocess.run(["apertium", "-l"], capture_output=True, text=True, check=False)
    return pair in listing.stdout.split()


def apertium_translate(
    sentences: Sequence[str], source: str = "en", target: str = "es"
) -> list[str]:
    """Translate with Apertium, one sentence per line; ``-u`` drops its unknown-word marks."""
    if not apertium_available(source, target):
        raise UserError(f"Apertium {source}->{target} is not installed; {APERTIUM_HINT}")
    # One sentence per line; a newline inside a sentence would shift every later line.
    lines = [" ".join(s.split()) for s in sentences]
    result = subprocess.run(
        ["apertium", "-u", APERTIUM_PAIRS[(source, target)]],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout.splitlines()
    if result.returncode != 0 or len(output) != len(lines):
        raise RuntimeError(f"apertium failed ({result.returncode}): {result.stderr.strip()[:200]}")
    return [" ".join(line.split()) for line in output]


_WORD = re.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class WordForWordDictionary:
    """A bilingual dictionary learned from co-occurrence; translates word by word.

    For each source word ``s`` and target word ``t``, ``dice = 2 n(s, t) / (n(s) + n(t))``
    counts the training pairs in which they appear together. The best ``t`` is the
    translation; punctuation maps to itself and unknown words are copied.

        >>> d = WordForWordDictionary().fit([SentencePair("the dog", "el perro"),
        ...                                  SentencePair("the cat", "el gato")])
        >>> d.translate(["the cat"])
        ['El gato']
    """

    def __init__(self, min_count: int = 1):
        self.min_count = min_count
        self.table: dict[str, str] = {}

    def fit(self, pairs: Sequence[SentencePair]) -> WordForWordDictionary:
        source_words = [set(_words(p.source)) for p in pairs]
        target_words = [set(_words(p.target)) for p in pairs]
        source_vocab = {w: i for i, w in enumerate(sorted(set().union(*source_words)))}
        target_vocab = {w: i for i, w in enumerate(sorted(set().union(*target_words)))}
        # Sentence-by-word incidence matrices; their product counts co-occurrences.
        x = _incidence(source_words, source_vocab)
        y = _incidence(target_words, target_vocab)
        together = (x.T @ y).tocsr()
        n_source = np.asarray(x.sum(0)).ravel()
        n_target = np.asarray(y.sum(0)).ravel()
        target_names = sorted(target_vocab, key=target_vocab.get)
        is_word = np.array([bool(re.match(r"\w", t)) for t in target_names])
        for word, i in source_vocab.items():
            if not re.match(r"\w", word):
                continue  # punctuation stays as it is
            row = together.getrow(i)
            if row.nnz == 0 or n_source[i] < self.min_count:
                continue
            dice = 2 * row.data / (n_source[i] + n_target[row.indices])
            dice[~is_word[row.indices]] = -1.0  # a word never translates to punctuation
            self.table[word] = target_names[row.indices[int(np.argmax(dice))]]
        return self

    def translate(self, sentences: Sequence[str]) -> list[str]:
        out = []
        for sentence in sentences:
            words = [
                _same_case(w, self.table.get(w.lower(), w.lower())) for w in _WORD.findall(sentence)
            ]
            text = re.sub(r" ([^\w\s])", r"\1", " ".join(words))
            out.append(text[:1].upper() + text[1:])
        return out


def _same_case(source: str, target: str) -> str:
    # Names keep their capital ("God" -> "Dios"); other words stay lower case.
    return target[:1].upper() + target[1:] if source[:1].isupper() else target


def _incidence(rows: list[set[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    counts = Counter()
    for r, words in enumerate(rows):
        for w in words:
            counts[(r, vocab[w])] = 1
    if not counts:
        return sparse.csr_matrix((len(rows), len(vocab)))
    index = np.array(list(counts.keys()))
    data = np.ones(len(index), dtype=np.float32)
    return sparse.csr_matrix((data, (index[:, 0], index[:, 1])), shape=(len(rows), len(vocab)))
