"""The music networks: a piano-roll model over frames and a token model over events.

`PianoRollNet` reads frames ``x[0..t-1]`` with an rnnkit LSTM/GRU and gives the distribution
of frame ``x[t]`` (88 pitches) through one of three output layers:

- `BernoulliOutput`: 88 independent sigmoids (the "RNN" rows of Chung et al. 2014);
- `NADEOutput`: a NADE (Larochelle & Murray 2011) whose biases come from the RNN state,
  so pitches are modelled jointly, each given the lower ones: the RNN-NADE of
  Boulanger-Lewandowski et al. (2012), trained end to end;
- `MADEOutput`: the same factorization with masked weights (Germain et al. 2015) plus
  direct pitch-to-pitch connections: as good here and ~10x cheaper on a CPU (the default).

`TokenNet` is an embedding + LSTM/GRU + softmax over a vocabulary (melody tokens or
performance events).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.core.decoding import sample_logits


def _recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float):
    layers = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
    if cell not in layers:
        raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
    return layers[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
    )


def _sample_binary(
    logits: Tensor, temperature: float, top_p: float | None, generator: torch.Generator | None
) -> Tensor:
    """Draw 0/1 for each logit through `sample_logits` (two classes: off = 0, on = logit)."""
    two_class = torch.stack([torch.zeros_like(logits), logits], dim=-1)
    return sample_logits(two_class, temperature, top_p=top_p, generator=generator).to(logits.dtype)


class BernoulliOutput(nn.Module):
    """Independent sigmoids: ``p(v | h) = prod_i sigmoid(w_i . h + b_i)^v_i ...``."""

    def __init__(self, hidden_size: int, num_pitches: int):
        super().__init__()
        self.logits = nn.Linear(hidden_size, num_pitches)

    def log_prob(self, hidden: Tensor, frames: Tensor) -> Tensor:
        """``hidden`` [..., H], ``frames`` [..., P] of 0/1 -> log-probability [...]."""
        logits = self.logits(hidden)
        return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def sample(
        self,
        hidden: Tensor,
        temperature: float = 1.0,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return _sample_binary(self.logits(hidden), temperature, top_p, generator)


class NADEOutput(nn.Module):
    """A NADE over the pitches, conditioned on the RNN state ``h``.

    With pitches in order (low to high), ``a_i = c(h) + W[:, :i] v[:i]``,
    ``p(v_i = 1 | v_<i, h) = sigmoid(b_i(h) + V_i . sigmoid(a_i))``; the biases ``b(h)`` and
    ``c(h)`` are linear in ``h``. All 88 conditionals of a known frame come out of one
    cumulative sum, so training costs one pass; sampling goes pitch by pitch.

    Args:
        hidden_size: size of the RNN state ``h``.
        num_pitches: P, the frame width.
        nade_size: the NADE's own hidden units.
    """

    def __init__(self, hidden_size: int, num_pitches: int, nade_size: int = 128):
        super().__init__()
        self.visible_bias = nn.Linear(hidden_size, num_pitches)  # b(h)
        self.hidden_bias = nn.Linear(hidden_size, nade_size)  # c(h)
        self.W = nn.Parameter(torch.randn(num_pitches, nade_size) * 0.01)
        self.V = nn.Parameter(torch.randn(num_pitches, nade_size) * 0.01)

    def conditional_logits(self, hidden: Tensor, frames: Tensor) -> Tensor:
        """Logits of ``p(v_i = 1 | v_<i, h)`` for every pitch i: [..., P]."""
        contributions = frames.unsqueeze(-1) * self.W  # [..., P, nade]
        before = torch.cumsum(contributions, dim=-2) - contributions  # sum over j < i only
        activations = torch.sigmoid(self.hidden_bias(hidden).unsqueeze(-2) + before)
        return self.visible_bias(hidden) + (activations * self.V).sum(-1)

    def log_prob(self, hidden: Tensor, frames: Tensor) -> Tensor:
        logits = self.conditional_logits(hidden, frames)
        return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def sample(
        self,
        hidden: Tensor,
        temperature: float = 1.0,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        visible_bias = self.visible_bias(hidden)
        activation = self.hidden_bias(hidden)
        pitches = []
        for i in range(self.W.shape[0]):
            logit = visible_bias[..., i] + (torch.sigmoid(activation) * self.V[i]).sum(-1)
            v_i = _sample_binary(logit, temperature, top_p, generator)
            activation = activation + v_i.unsqueeze(-1) * self.W[i]
            pitches.append(v_i)
        return torch.stack(pitches, dim=-1)


class MADEOutput(nn.Module):
    """An autoregressive output over pitches with masked weights (MADE, Germain et al. 2015).

    Like `NADEOutput`, pitch i is predicted from the lower pitches ``v_<i`` and the RNN state
    ``h``, so the frame's probability is exact and normalized; but the masks make each pass
    two matrix products instead of NADE's ``[..., P, nade]`` tensor, ~10x faster on a CPU.
    A masked direct connection ``A v`` (strictly lower triangular) adds pairwise pitch
    interactions, i.e. harmony, at the cost of one small matrix product.

    Args:
        hidden_size: size of the RNN state ``h``.
        num_pitches: P, the frame width.
        made_size: hidden units of the masked layer.
    """

    def __init__(self, hidden_size: int, num_pitches: int, made_size: int = 256):
        super().__init__()
        self.visible_bias = nn.Linear(hidden_size, num_pitches)  # b(h)
        self.hidden_bias = nn.Linear(hidden_size, made_size)  # c(h)
        self.W = nn.Parameter(torch.randn(made_size, num_pitches) / num_pitches**0.5)
        self.V = nn.Parameter(torch.randn(num_pitches, made_size) / made_size**0.5)
        self.A = nn.Parameter(torch.zeros(num_pitches, num_pitches))
        # Hidden unit k sees pitches 0..degree[k]-1; output i sees units with degree <= i.
        degree = torch.arange(made_size) % (num_pitches - 1) + 1
        pitch = torch.arange(num_pitches)
        self.register_buffer("input_mask", (pitch[None, :] < degree[:, None]).float())
        self.register_buffer("output_mask", (degree[None, :] <= pitch[:, None]).float())
        self.register_buffer("direct_mask", torch.ones(num_pitches, num_pitches).tril(-1))

    def conditional_logits(self, hidden: Tensor, frames: Tensor) -> Tensor:
        """Logits of ``p(v_i = 1 | v_<i, h)`` for every pitch i: [..., P]."""
        activations = torch.relu(self.hidden_bias(hidden) + frames @ (self.W * self.input_mask).T)
        return (
            self.visible_bias(hidden)
            + activations @ (self.V * self.output_mask).T
            + frames @ (self.A * self.direct_mask).T
        )

    def log_prob(self, hidden: Tensor, frames: Tensor) -> Tensor:
        logits = self.conditional_logits(hidden, frames)
        return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def sample(
        self,
        hidden: Tensor,
        temperature: float = 1.0,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        frame = torch.zeros(*hidden.shape[:-1], self.A.shape[0], device=hidden.device)
        for i in range(self.A.shape[0]):  # logit i depends only on the pitches below i
            logit = self.conditional_logits(hidden, frame)[..., i]
            frame[..., i] = _sample_binary(logit, temperature, top_p, generator)
        return frame


OUTPUTS = {"bernoulli": BernoulliOutput, "nade": NADEOutput, "made": MADEOutput}


class PianoRollNet(nn.Module):
    """An LSTM/GRU over piano-roll frames with a Bernoulli or NADE output.

    Args:
        num_pitches: frame width P (88 for pitches 21-108).
        cell: ``"lstm"`` or ``"gru"``.
        hidden_size, num_layers, dropout: of the recurrent layer (dropout also before output).
        output: ``"made"``, ``"nade"`` (pitches modelled jointly) or ``"bernoulli"``.
        nade_size: hidden units of the NADE output (twice as many for MADE).

    Shapes:
        frames [B, T, P] of 0/1; ``log_prob(frames, lengths)`` -> [B, T], the log-probability
        of each frame given the frames before it (0 beyond a sequence's length).

    Example:
        >>> net = PianoRollNet(88, cell="gru", output="nade")
        >>> frames = torch.randint(0, 2, (2, 16, 88)).float()  # two pieces of 16 frames
        >>> lengths = torch.tensor([16, 10])  # the second one is shorter
        >>> net.log_prob(frames, lengths).shape
        torch.Size([2, 16])
        >>> nll = -net.log_prob(frames, lengths).sum() / lengths.sum()  # per time step
    """

    def __init__(
        self,
        num_pitches: int = 88,
        cell: str = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.3,
        output: str = "nade",
        nade_size: int = 128,
    ):
        super().__init__()
        self.rnn = _recurrent(cell, num_pitches, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        sizes = {"bernoulli": (), "nade": (nade_size,), "made": (2 * nade_size,)}[output]
        self.output = OUTPUTS[output](hidden_size, num_pitches, *sizes)
        self.num_pitches = num_pitches

    def forward(self, frames: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The same as `log_prob` (so that a DDP-wrapped model can be called)."""
        return self.log_prob(frames, lengths)

    def log_prob(self, frames: Tensor, lengths: Tensor | None = None) -> Tensor:
        # Frame t is predicted from frames 0..t-1: feed a silent frame, then the piece shifted.
        inputs = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
        hidden, _ = self.rnn(inputs, lengths=lengths)
        log_prob = self.output.log_prob(self.dropout(hidden), frames)
        if lengths is not None:
            steps = torch.arange(frames.shape[1], device=frames.device)
            log_prob = log_prob * (steps[None, :] < lengths.to(frames.device)[:, None])
        return log_prob

    @torch.no_grad()
    def sample(
        self,
        num_steps: int,
        primer: Tensor | None = None,
        temperature: float = 1.0,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue ``primer`` [T0, P] (or start from silence) by ``num_steps`` frames.

        Returns:
            [T0 + num_steps, P] frames: the primer followed by the sampled ones.
        """
        device = next(self.parameters()).device
        width = self.num_pitches
        frames = primer.to(device) if primer is not None else torch.zeros(0, width, device=device)
        previous = torch.zeros(1, 1, width, device=device)
        state = None
        for frame in frames:  # run the primer through the network
            _, state = self.rnn(previous, state)
            previous = frame.view(1, 1, -1)
        sampled = []
        for _ in range(num_steps):
            hidden, state = self.rnn(previous, state)
            frame = self.output.sample(hidden[0, -1], temperature, top_p, generator)
            sampled.append(frame)
            previous = frame.view(1, 1, -1)
        return torch.cat([frames, *[f.view(1, -1) for f in sampled]], dim=0).cpu()


class Grammar(Protocol):
    """The rules a sampled token stream keeps (`tokens.EventGrammar`)."""

    def advance(self, token: int) -> None:
        """Read the next token of the stream."""

    def allowed(self) -> Tensor:
        """Bool [V]: the tokens that may come next."""


class TokenNet(nn.Module):
    """Embedding, LSTM/GRU and a softmax over ``vocab_size`` tokens (melody or events).

    The start of a sequence is a token of its own (id ``vocab_size``), so the first real
    token is predicted too.

    Shapes:
        tokens [B, T] -> ``logits`` [B, T, vocab_size] for the token at each position.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embedding_size: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size + 1, embedding_size)
        self.rnn = _recurrent(cell, embedding_size, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    @property
    def start_token(self) -> int:
        return self.vocab_size

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The same as `logits` (so that a DDP-wrapped model can be called)."""
        return self.logits(tokens, lengths)

    def logits(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        start = torch.full_like(tokens[:, :1], self.start_token)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)
        hidden, _ = self.rnn(self.embedding(inputs), lengths=lengths)
        return self.head(self.dropout(hidden))

    @torch.no_grad()
    def sample(
        self,
        num_steps: int,
        primer: list[int] | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        grammar: Grammar | None = None,
    ) -> list[int]:
        """Continue ``primer`` by ``num_steps`` tokens; returns primer + new tokens.

        ``grammar``: reads the primer and each token chosen, and rules out tokens that may
        not come next (`tokens.EventGrammar`).
        """
        device = next(self.parameters()).device
        primer = list(primer or [])
        state, previous = None, self.start_token
        if primer:  # the state after reading start + primer[:-1]; primer[-1] is the next input
            context = torch.tensor([[self.start_token, *primer[:-1]]], device=device)
            _, state = self.rnn(self.embedding(context))
            previous = primer[-1]
        out = list(primer)
        for token in primer if grammar is not None else ():
            grammar.advance(token)
        for _ in range(num_steps):
            step_input = self.embedding(torch.tensor([[previous]], device=device))
            hidden, state = self.rnn(step_input, state)
            logits = self.head(hidden[0, -1])
            if grammar is not None:
                ruled_out = ~grammar.allowed().to(logits.device)
                logits = logits.masked_fill(ruled_out, float("-inf"))
            previous = int(sample_logits(logits, temperature, top_k, top_p, generator))
            out.append(previous)
            if grammar is not None:
                grammar.advance(previous)
        return out
