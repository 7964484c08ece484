"""An AWD-style LSTM language model (Merity et al. 2017) over characters or subword tokens.

Regularizers, each a number in the config (0 turns it off):

- ``embedding_dropout``: drop whole rows of the embedding matrix (a dropped token is zero
  everywhere in the batch).
- ``dropout``: variational ("locked") dropout: one mask per sequence, the same at every step,
  on the embeddings, between layers and before the decoder.
- ``weight_drop``: DropConnect on the hidden-to-hidden weights, one mask per batch.
- weight tying: the decoder reuses the embedding matrix (Press & Wolf 2017).

Shapes: ``tokens`` [N, T] -> ``logits`` [N, T, V]; the state is a list (one per layer) of
LSTM ``(h, c)``, each [1, N, H].

Truncated BPTT uses the core's stateful mode: each layer keeps its final state (detached) and
starts the next call from it, until `LanguageModelNet.reset_state`. Passing a state explicitly
overrides the carried one.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call

import rnnkit

State = list[tuple[Tensor, Tensor]]


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with one mask per sequence, shared over time. ``x``: [N, T, D]."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


class LanguageModelNet(nn.Module):
    """Embedding -> stacked LSTM layers -> (projection) -> tied decoder.

    Args:
        vocab_size: number of tokens (characters or subwords).
        embedding_dim: also the decoder's input size (weights are tied).
        hidden_size: size of every LSTM layer.
        num_layers: stacked single-layer LSTMs, with locked dropout between them.
        dropout, embedding_dropout, weight_drop: the AWD-LSTM regularizers (module docstring).

    Example:
        >>> import torch
        >>> net = LanguageModelNet(vocab_size=80, embedding_dim=64, hidden_size=128)
        >>> net.reset_state()
        >>> logits, state = net(torch.randint(0, 80, (4, 50)))
        >>> logits2, _ = net(torch.randint(0, 80, (4, 50)))  # continues from `state`
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.1,
        embedding_dropout: float = 0.05,
        weight_drop: float = 0.2,
    ):
        super().__init__()
        self.dropout, self.embedding_dropout, self.weight_drop = (
            dropout,
            embedding_dropout,
            weight_drop,
        )
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        sizes = [embedding_dim] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(
            rnnkit.LSTM(sizes[i], sizes[i + 1], batch_first=True, stateful=True)
            for i in range(num_layers)
        )
        self.projection = (
            nn.Linear(hidden_size, embedding_dim) if hidden_size != embedding_dim else None
        )
        self.decoder = nn.Linear(embedding_dim, vocab_size)
        self.decoder.weight = self.embedding.weight  # weight tying

    def reset_state(self) -> None:
        """Forget the carried state: the next call without a state starts from zeros."""
        for layer in self.layers:
            layer.reset_state()

    def embed(self, tokens: Tensor) -> Tensor:
        weight = self.embedding.weight
        if self.training and self.embedding_dropout:
            rows = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - self.embedding_dropout)
            weight = weight * rows / (1 - self.embedding_dropout)
        return nn.functional.embedding(tokens, weight)

    def run_layer(self, layer: nn.Module, x: Tensor, state) -> tuple[Tensor, tuple]:
        """One LSTM layer; in training its hidden-to-hidden weights get a DropConnect mask."""
        if not (self.training and self.weight_drop):
            return layer(x, state)
        dropped = {
            name: nn.functional.dropout(param, self.weight_drop, training=True)
            for name, param in layer.named_parameters()
            if "weight_hh" in name
        }
        return functional_call(layer, dropped, (x, state), strict=False)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Return (logits [N, T, V], final state). Without ``state``, continue from the
        carried state (zeros after `reset_state`)."""
        x = locked_dropout(self.embed(tokens), self.dropout, self.training)
        new_state = []
        for index, layer in enumerate(self.layers):
            x, layer_state = self.run_layer(layer, x, None if state is None else state[index])
            new_state.append(layer_state)
            x = locked_dropout(x, self.dropout, self.training)
        if self.projection is not None:
            x = self.projection(x)
        return self.decoder(x), new_state
