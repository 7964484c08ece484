"""The sentiment network: token embeddings, a bidirectional recurrent layer, pooling, a head.

Shapes: ``tokens`` [N, T] word ids (0 = padding), ``pieces`` [N, T, P] subword ids of each word
(0 = padding), ``lengths`` [N] real lengths; the output is [N, num_outputs] scores (class logits,
or one rating for regression).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import rnnkit

POOLINGS = ("max", "attention", "max+attention")


class SentimentNet(nn.Module):
    """Embedding (word + mean of its subword pieces) -> BiLSTM/BiGRU -> pooling -> classifier.

    Args:
        vocab_size: number of word ids (0 is padding, 1 unknown).
        subword_vocab_size: number of subword ids; 0 to use words alone.
        num_outputs: classes, or 1 for a rating regression.
        embedding_dim, hidden_size: sizes; the recurrent layer is bidirectional.
        cell: ``lstm`` or ``gru``.
        pooling: ``max`` (over time), ``attention`` (learned weights over time) or both.
        dropout: on the pooled features; ``embedding_dropout`` drops whole words.
        recurrent_dropout: the core's variational dropout on the recurrent state (Gal &
            Ghahramani 2016); it runs the cells step by step, so training is slower.

    Example:
        >>> net = SentimentNet(vocab_size=100, subword_vocab_size=50, num_outputs=2)
        >>> logits, weights = net(torch.randint(1, 100, (4, 7)), torch.tensor([7, 3, 5, 1]),
        ...                       pieces=torch.randint(1, 50, (4, 7, 2)))
        >>> logits.shape, weights.shape
        (torch.Size([4, 2]), torch.Size([4, 7]))
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        subword_vocab_size: int = 0,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        cell: str = "lstm",
        pooling: str = "max",
        dropout: float = 0.5,
        embedding_dropout: float = 0.1,
        recurrent_dropout: float = 0.0,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.embedding_dropout = embedding_dropout
        self.words = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.pieces = (
            nn.Embedding(subword_vocab_size, embedding_dim, padding_idx=0)
            if subword_vocab_size
            else None
        )
        layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell]
        self.rnn = layer(
            embedding_dim,
            hidden_size,
            batch_first=True,
            bidirectional=True,
            recurrent_dropout=recurrent_dropout,
        )
        features = 2 * hidden_size
        self.attention = nn.Sequential(
            nn.Linear(features, features), nn.Tanh(), nn.Linear(features, 1, bias=False)
        )
        pooled = features * (2 if pooling == "max+attention" else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(pooled, num_outputs)

    def embed(self, tokens: Tensor, pieces: Tensor | None = None) -> Tensor:
        """[N, T] word ids (+ [N, T, P] piece ids) -> [N, T, E] vectors."""
        vectors = self.words(tokens)
        if self.pieces is not None and pieces is not None:
            # A word's vector plus the mean of its pieces' vectors (fastText-like): rare and
            # unseen words still get a meaning from their parts.
            counts = (pieces > 0).sum(-1, keepdim=True).clamp(min=1)
            vectors = vectors + self.pieces(pieces).sum(-2) / counts
        if self.training and self.embedding_dropout:
            # Drop whole words (the same mask for every dimension), as in AWD-LSTM.
            keep = torch.rand(tokens.shape, device=tokens.device) >= self.embedding_dropout
            vectors = vectors * keep.unsqueeze(-1) / (1 - self.embedding_dropout)
        return vectors

    def forward(
        self,
        tokens: Tensor,
        lengths: Tensor,
        pieces: Tensor | None = None,
        embedded: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return (scores [N, num_outputs], attention weights [N, T]; zeros for max pooling).

        ``embedded`` replaces the embedding lookup (gradient saliency differentiates by it).
        """
        vectors = self.embed(tokens, pieces) if embedded is None else embedded
        states, _ = self.rnn(vectors, lengths=lengths)  # [N, T, 2H], zero after each length
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        padding = steps[None, :] >= lengths.to(tokens.device)[:, None]  # [N, T]
        pooled, weights = [], torch.zeros(tokens.shape, device=tokens.device)
        if "max" in self.pooling:
            pooled.append(states.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(1))
        if "attention" in self.pooling:
            scores = self.attention(states).squeeze(-1).masked_fill(padding, float("-inf"))
            weights = scores.softmax(dim=1)
            pooled.append((weights.unsqueeze(-1) * states).sum(1))
        return self.head(self.dropout(torch.cat(pooled, dim=-1))), weights
