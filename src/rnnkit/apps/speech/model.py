"""Acoustic model trained with CTC (Graves et al. 2006), in the style of DeepSpeech 2.

Two strided 2-D convolutions shrink the log-mel spectrogram 4x in time and frequency; a
bidirectional `rnnkit.GRU` or `rnnkit.LSTM` reads the result; a linear layer gives, for every
frame, log-probabilities over the characters plus the CTC *blank*.

    >>> model = CTCAcousticModel(n_mels=64, vocab_size=len(ALPHABET) + 1, hidden_size=32)
    >>> log_probs, lengths = model(torch.randn(2, 64, 100), torch.tensor([100, 60]))
    >>> log_probs.shape, lengths.tolist()          # (batch, frames / 4, characters + blank)
    (torch.Size([2, 25, 29]), [25, 15])
"""

from __future__ import annotations

import math

import torch
from torch import nn

import rnnkit

BLANK = 0
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # ids 1..28; id 0 is the CTC blank


def text_to_ids(text: str) -> list[int]:
    """Characters to ids (1-based); characters outside `ALPHABET` are dropped."""
    return [ALPHABET.index(ch) + 1 for ch in text if ch in ALPHABET]


def ids_to_text(ids: list[int]) -> str:
    return "".join(ALPHABET[i - 1] for i in ids if i != BLANK)


class CTCAcousticModel(nn.Module):
    """Conv front end + bidirectional recurrent layers + per-frame character scores.

    Args:
        n_mels: mel bands of the input features.
        vocab_size: characters + 1 (the blank, id 0).
        hidden_size: units per direction of the recurrent layers.
        num_layers: stacked bidirectional layers.
        cell: ``"gru"`` or ``"lstm"``.
        channels: convolution channels.
        dropout: between recurrent layers and before the output.

    Shapes: ``forward(features (B, n_mels, T), lengths (B,)) -> ((B, T', V), lengths' (B,))``
    with ``T' = ceil(ceil(T / 2) / 2)``.
    """

    def __init__(
        self,
        n_mels: int = 64,
        vocab_size: int = len(ALPHABET) + 1,
        hidden_size: int = 128,
        num_layers: int = 2,
        cell: str = "gru",
        channels: int = 32,
        dropout: float = 0.1,
    ):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell {cell!r}: expected 'gru' or 'lstm'")
        self.frontend = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.GELU(),
        )
        reduced_mels = (n_mels + 3) // 4
        self.project = nn.Linear(channels * reduced_mels, hidden_size)
        recurrent = rnnkit.GRU if cell == "gru" else rnnkit.LSTM
        self.rnn = recurrent(
            hidden_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden_size, vocab_size)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the two stride-2 convolutions."""
        for _ in range(2):
            lengths = (lengths + 1) // 2
        return lengths

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.frontend(features.unsqueeze(1))  # (B, C, mels/4, T/4)
        x = x.flatten(1, 2).transpose(1, 2)  # (B, T/4, C * mels/4)
        out_lengths = self.output_lengths(lengths).clamp(min=1, max=x.shape[1])
        x, _ = self.rnn(torch.relu(self.project(x)), lengths=out_lengths)
        return torch.log_softmax(self.output(self.dropout(x)), dim=-1), out_lengths


def ctc_greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best character per frame; merge repeats, drop blanks. (B, T, V) -> B strings."""
    best = log_probs.argmax(dim=-1).tolist()
    texts = []
    for row, length in zip(best, lengths.tolist(), strict=True):
        ids, previous = [], BLANK
        for i in row[:length]:
            if i != previous and i != BLANK:
                ids.append(i)
            previous = i
        texts.append(" ".join(ids_to_text(ids).split()))
    return texts


def ctc_beam_decode(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam_width: int = 8,
    prune: float = -12.0,
    lm=None,
    lm_weight: float = 0.0,
    lm_bonus: float = 0.0,
) -> list[str]:
    """CTC prefix beam search (Hannun et al. 2014), optionally with a character LM.

    Keeps, per prefix, the probability of ending in a blank and in its last character, so
    that "aa" (two letters, a blank between) and "a" (one letter held) stay apart. Characters
    whose frame log-probability is below ``prune`` are not tried.

    ``lm``: a `rnnkit.apps.speech.lm_fusion.CharLMScorer`; each new character then adds
    ``lm_weight * log P_lm(character | prefix) + lm_bonus`` (shallow fusion), and the end of
    the sentence ``lm_weight * log P_lm(end | prefix)``.
    """
    use_lm = lm is not None and lm_weight != 0.0
    results = []
    for row, length in zip(log_probs.float().cpu(), lengths.tolist(), strict=True):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, float("-inf"))}
        if use_lm:
            lm.start()
        for frame in row[:length]:
            frame_list = frame.tolist()
            candidates = [c for c, lp in enumerate(frame_list) if lp > prune and c != BLANK]
            new: dict[tuple[int, ...], list[float]] = {}

            def add(prefix, blank_lp, char_lp, new=new):
                old = new.setdefault(prefix, [float("-inf"), float("-inf")])
                old[0], old[1] = _logaddexp(old[0], blank_lp), _logaddexp(old[1], char_lp)

            for prefix, (p_blank, p_char) in beams.items():
                total = _logaddexp(p_blank, p_char)
                add(prefix, total + frame_list[BLANK], float("-inf"))
                fusion = lm.next_scores(prefix) if use_lm else None
                for c in candidates:
                    lp = frame_list[c]
                    # A new character (not a held one) pays the language model's price.
                    extra = lm_weight * fusion[c] + lm_bonus if use_lm else 0.0
                    if prefix and prefix[-1] == c:
                        add(prefix, float("-inf"), p_char + lp)  # held character
                        add((*prefix, c), float("-inf"), p_blank + lp + extra)  # after a blank
                    else:
                        add((*prefix, c), float("-inf"), total + lp + extra)
            ranked = sorted(new.items(), key=lambda kv: -_logaddexp(*kv[1]))[:beam_width]
            beams = {prefix: (b, c) for prefix, (b, c) in ranked}
            if use_lm:
                lm.extend(list(beams))

        def final_score(item):
            prefix, (b, c) = item
            end = lm_weight * lm.next_scores(prefix)[-1] if use_lm else 0.0
            return _logaddexp(b, c) + end

        best = max(beams.items(), key=final_score)[0]
        results.append(" ".join(ids_to_text(list(best)).split()))
    return results


def _logaddexp(a: float, b: float) -> float:
    if a == float("-inf"):
        return b
    if b == float("-inf"):
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))
