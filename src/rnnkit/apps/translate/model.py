"""Sequence-to-sequence translation with attention (Bahdanau et al. 2015; Luong et al. 2015).

A bidirectional `rnnkit.LSTM` reads the source; an LSTM decoder writes the target one subword
at a time. At each step the decoder state queries the encoder outputs (additive or
multiplicative attention), mixes the context into an *attentional vector* that predicts the
next subword and is fed back as input at the next step (input feeding).

    >>> model = Seq2SeqAttention(source_vocab=100, target_vocab=120, hidden_size=32)
    >>> src = torch.randint(4, 100, (2, 7)); tgt = torch.randint(4, 120, (2, 5))
    >>> model(src, torch.tensor([7, 4]), tgt).shape
    torch.Size([2, 5, 120])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import rnnkit

ATTENTION_KINDS = ("additive", "multiplicative")


class Attention(nn.Module):
    """Scores a query (decoder state) against memory (encoder outputs).

    ``additive`` (Bahdanau): ``v . tanh(W_m m + W_q q)``; ``multiplicative`` (Luong's
    "general"): ``q . W m``. The memory-side projection is computed once per sentence by
    `prepare`.
    """

    def __init__(self, kind: str, memory_size: int, query_size: int):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention {kind!r}: expected one of {ATTENTION_KINDS}")
        self.kind = kind
        self.memory_proj = nn.Linear(memory_size, query_size, bias=False)
        if kind == "additive":
            self.query_proj = nn.Linear(query_size, query_size, bias=True)
            self.v = nn.Linear(query_size, 1, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        """(batch, src_len, memory_size) -> keys (batch, src_len, query_size)."""
        return self.memory_proj(memory)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the context (batch, memory_size) and weights (batch, src_len).

        ``mask`` is True at real source positions; padding gets zero weight.
        """
        if self.kind == "additive":
            scores = self.v(torch.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(2)
        else:
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


@dataclass
class EncodedSource:
    """What every decoder step needs from the encoder."""

    memory: torch.Tensor  # (batch, src_len, 2 * hidden)
    keys: torch.Tensor  # (batch, src_len, hidden), attention's projection of memory
    mask: torch.Tensor  # (batch, src_len) True at real tokens


DecoderState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (h, c, attentional vector)


class Seq2SeqAttention(nn.Module):
    """BiLSTM encoder, LSTM decoder with attention and input feeding.

    Args:
        source_vocab, target_vocab: vocabulary sizes (id 0 is padding in both).
        embedding_size: size of the subword embeddings.
        hidden_size: decoder size; each encoder direction has ``hidden_size // 2`` units
            so that the bidirectional output has ``hidden_size`` features.
        attention: ``"additive"`` or ``"multiplicative"``.
        dropout: on embeddings and attentional vectors.

    Shapes: ``forward(source (B, S), source_lengths (B,), target_in (B, T)) -> (B, T, V)``.
    """

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        embedding_size: int = 128,
        hidden_size: int = 256,
        attention: str = "additive",
        dropout: float = 0.2,
    ):
        super().__init__()
        self.source_embedding = nn.Embedding(source_vocab, embedding_size, padding_idx=0)
        self.target_embedding = nn.Embedding(target_vocab, embedding_size, padding_idx=0)
        self.encoder = rnnkit.LSTM(
            embedding_size, hidden_size // 2, batch_first=True, bidirectional=True
        )
        memory_size = 2 * (hidden_size // 2)
        self.bridge = nn.Linear(memory_size, 2 * hidden_size)  # encoder summary -> (h0, c0)
        self.decoder = nn.LSTMCell(embedding_size + hidden_size, hidden_size)
        self.attention = Attention(attention, memory_size, hidden_size)
        self.combine = nn.Linear(memory_size + hidden_size, hidden_size, bias=False)
        self.output = nn.Linear(hidden_size, target_vocab)
        self.dropout = nn.Dropout(dropout)
        self.hidden_size = hidden_size

    def encode(
        self, source: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[EncodedSource, DecoderState]:
        """Run the encoder; return its memory and the decoder's initial state."""
        embedded = self.dropout(self.source_embedding(source))
        memory, _ = self.encoder(embedded, lengths=lengths)
        mask = torch.arange(source.shape[1], device=source.device)[None, :] < lengths[:, None]
        # Mean of the real encoder outputs summarises the sentence for the initial state.
        summary = (memory * mask.unsqueeze(2)).sum(1) / lengths.clamp(min=1)[:, None]
        h0, c0 = torch.tanh(self.bridge(summary)).chunk(2, dim=1)
        feed = memory.new_zeros(source.shape[0], self.hidden_size)
        encoded = EncodedSource(memory, self.attention.prepare(memory), mask)
        return encoded, (h0, c0, feed)

    def decode_step(
        self, token: torch.Tensor, state: DecoderState, encoded: EncodedSource
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoder step: previous token (B,) -> logits (B, V), new state, attention (B, S)."""
        h, c, feed = state
        step_input = torch.cat([self.dropout(self.target_embedding(token)), feed], dim=1)
        h, c = self.decoder(step_input, (h, c))
        context, weights = self.attention(h, encoded.keys, encoded.memory, encoded.mask)
        attentional = torch.tanh(self.combine(torch.cat([context, h], dim=1)))
        logits = self.output(self.dropout(attentional))
        return logits, (h, c, attentional), weights

    def forward(
        self, source: torch.Tensor, source_lengths: torch.Tensor, target_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: logits for every position of ``target_in`` (starts with ``<s>``)."""
        encoded, state = self.encode(source, source_lengths)
        logits = []
        for t in range(target_in.shape[1]):
            step_logits, state, _ = self.decode_step(target_in[:, t], state, encoded)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    def attention_weights(
        self, source: torch.Tensor, source_lengths: torch.Tensor, target_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: attention (B, T, S) while predicting each position of the target."""
        encoded, state = self.encode(source, source_lengths)
        rows = []
        for t in range(target_in.shape[1]):
            _, state, weights = self.decode_step(target_in[:, t], state, encoded)
            rows.append(weights)
        return torch.stack(rows, dim=1)

    # The step-function view used by rnnkit.core.decoding (greedy and beam search): the
    # state carries the encoder memory too, so that beams can reorder it with their rows.

    def start_state(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple:
        """Encode a batch; return the state for `step` (every tensor has batch first)."""
        encoded, (h, c, feed) = self.encode(source, lengths)
        return (h, c, feed, encoded.memory, encoded.keys, encoded.mask)

    def step(self, tokens: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """``tokens`` (N,) -> log-probabilities of the next subword (N, V) and the new state."""
        h, c, feed, memory, keys, mask = state
        logits, (h, c, feed), _ = self.decode_step(
            tokens, (h, c, feed), EncodedSource(memory, keys, mask)
        )
        return torch.log_softmax(logits, dim=-1), (h, c, feed, memory, keys, mask)
