"""Language modelling: character- and subword-level LSTM language models, generation.

Example:
    >>> from rnnkit.apps.lm import LanguageModel, LMConfig, load_corpus, split_text
    >>> split = split_text(load_corpus("web"))
    >>> lm = LanguageModel(LMConfig(tokens="char")).fit(split.train)
    >>> lm.bits_per_char(split.test), lm.generate("And God said", 100, top_p=0.9)
"""

from rnnkit.apps.lm.benchmark import (
    TextSplit,
    compare_with_compressors,
    compressor_bits_per_char,
    load_corpus,
    split_text,
)
from rnnkit.apps.lm.language_model import LanguageModel, LMConfig, TBPTTBatches

__all__ = [
    "LMConfig",
    "LanguageModel",
    "TBPTTBatches",
    "TextSplit",
    "compare_with_compressors",
    "compressor_bits_per_char",
    "load_corpus",
    "split_text",
]
