"""Subword vocabularies (Hugging Face ``tokenizers``) trained on the training split only.

Byte-pair encoding with a ``Metaspace`` pre-tokenizer: spaces become ``▁`` inside the pieces,
so decoding gives back the original spacing and punctuation, which BLEU needs.

    >>> tok = train_subword_tokenizer(["the light", "the night"], vocab_size=60)
    >>> tok.decode(tok.encode("the light"))
    'the light'
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3 in every vocabulary
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


class SubwordTokenizer:
    """Text <-> list of subword ids, with ``<pad>``=0, ``<s>``=1, ``</s>``=2, ``<unk>``=3."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Subword ids of ``text`` (without ``<s>`` / ``</s>``)."""
        return self.tokenizer.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; stops at the first ``</s>`` and skips the special tokens."""
        kept = []
        for i in ids:
            if i == EOS_ID:
                break
            if i >= len(SPECIAL_TOKENS):
                kept.append(int(i))
        return self.tokenizer.decode(kept).strip()

    def to_str(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_str(cls, text: str) -> SubwordTokenizer:
        return cls(Tokenizer.from_str(text))


def train_subword_tokenizer(texts: Iterable[str], vocab_size: int = 4000) -> SubwordTokenizer:
    """Learn a BPE vocabulary of at most ``vocab_size`` pieces from ``texts``.

    Args:
        texts: training sentences of one language (never the test split).
        vocab_size: upper bound on the vocabulary, special tokens included.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return SubwordTokenizer(tokenizer)
