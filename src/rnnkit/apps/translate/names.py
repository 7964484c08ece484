"""Copying rare proper names from the source into the translation (unknown-word replacement).

A subword model spells names it saw often ("Abraham") but invents names it saw rarely or
never: "Keturah" comes out as "Ceda", "Zimran" as "Zels". Names are mostly written the same
way in both Bibles, so, after decoding, every capitalized output word whose attention points at
a *rare name* of the source is replaced by that source name (Luong et al. 2015, "Addressing the
rare word problem in neural machine translation", with attention instead of an aligner).

A rare name is a capitalized source word that never appears in lower case in the training
sources (so not "Then" or "And" at the start of a verse) and that appeared fewer than
``below`` times there; ``below`` is chosen on the validation pairs (`Translator.fit` does it).

    >>> words = SourceWords.from_sentences(["And Abraham took a wife", "and then Abraham"])
    >>> words.is_rare_name("Keturah", below=3), words.is_rare_name("Abraham", below=2)
    (True, False)
    >>> words.is_rare_name("Then", below=3)      # "then" is a lower-case word too
    False
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

_CORE = re.compile(r"^(\W*)(.*?)(\W*)$")  # leading punctuation, word, trailing punctuation


def split_word(token: str) -> tuple[str, str, str]:
    """``"(Keturah);"`` -> ``("(", "Keturah", ");")``."""
    match = _CORE.match(token)
    return match.group(1), match.group(2), match.group(3)


@dataclass
class SourceWords:
    """What the training sources say about names: capitalized-only words and their counts."""

    name_counts: dict[str, int] = field(default_factory=dict)
    lowercase: set[str] = field(default_factory=set)

    @classmethod
    def from_sentences(cls, sentences: Iterable[str]) -> SourceWords:
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(split_word(token)[1] for token in sentence.split())
        lowercase = {w for w in counts if w[:1].islower()}
        names = {w: n for w, n in counts.items() if w[:1].isupper() and w.lower() not in lowercase}
        return cls(names, lowercase)

    def is_rare_name(self, word: str, below: int) -> bool:
        """Capitalized, never seen in lower case, and seen fewer than ``below`` times."""
        if not word[:1].isupper() or word.lower() in self.lowercase:
            return False
        return self.name_counts.get(word, 0) < below

    def to_dict(self) -> dict:
        return {"name_counts": self.name_counts, "lowercase": sorted(self.lowercase)}

    @classmethod
    def from_dict(cls, data: dict) -> SourceWords:
        return cls(dict(data["name_counts"]), set(data["lowercase"]))


def copy_rare_names(
    source_words: Sequence[str],
    source_word_ids: Sequence[int],
    output: str,
    output_word_ids: Sequence[int],
    attention: torch.Tensor,
    words: SourceWords,
    below: int,
) -> str:
    """Replace the capitalized output words that attend most to a rare source name.

    Args:
        source_words: the source sentence split on spaces.
        source_word_ids: for each source subword, the index of its word.
        output: the translation.
        output_word_ids: for each output subword, the index of its word in ``output.split()``.
        attention: (output subwords, source subwords) weights of the decoder.
        words: the training sources' statistics; ``below``: the rarity threshold.
    """
    tokens = output.split()
    source_index = torch.tensor(source_word_ids)
    for j, token in enumerate(tokens):
        before, core, after = split_word(token)
        if not core[:1].isupper():
            continue
        rows = [t for t, w in enumerate(output_word_ids) if w == j]
        if not rows:
            continue
        # Attention mass of this output word on each source word (its subwords summed).
        per_subword = attention[rows].sum(0)
        per_word = torch.zeros(len(source_words)).index_add_(0, source_index, per_subword)
        name = split_word(source_words[int(per_word.argmax())])[1]
        if name != core and words.is_rare_name(name, below):
            tokens[j] = f"{before}{name}{after}"
    return " ".join(tokens)
