"""Machine translation: subword vocabularies, a BiLSTM encoder and an attentional LSTM decoder.

See `Translator` (fit / translate / evaluate / save / load) and `rnnkit.data.parallel` for the
English-Spanish Bible pairs.
"""

from rnnkit.apps.translate.baselines import (
    WordForWordDictionary,
    apertium_available,
    apertium_translate,
    compare_translations,
    score_translations,
)
from rnnkit.apps.translate.model import Seq2SeqAttention
from rnnkit.apps.translate.translator import Translator, TranslatorConfig

__all__ = [
    "Seq2SeqAttention",
    "Translator",
    "TranslatorConfig",
    "WordForWordDictionary",
    "apertium_available",
    "apertium_translate",
    "compare_translations",
    "score_translations",
]
