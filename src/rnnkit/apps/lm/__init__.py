"""Language modelling: character- and subword-level LSTM language models, generation.

Example:
    >>> from rnnkit.apps.lm import LanguageModel, LMConfig, load_corpus, split_text
    >>> split = split_text(load_corpus("web"))  # the World English Bible: train, val, test
    >>> quick = LMConfig(tokens="char", hidden_size=64, max_batches=20)  # seconds, not an hour
    >>> lm = LanguageModel(quick).fit(split.train[:50_000])
    >>> lm.bits_per_char(split.test[:5000]) < 5  # the defaults on all the text: 1.9
    True
    >>> lm.generate("And God said", 100, top_p=0.9)  # doctest: +ELLIPSIS
    '...'
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
