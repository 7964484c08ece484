"""Encoders that see and decoders that write.

- `ConvEncoder`: a small CNN trained from scratch; an image [N, 3, 64, 64] becomes an 8x8 grid of
  feature vectors (with a learned position code, so the decoder can say "top left") and a
  summary vector.
- `BackboneEncoder`: the same outputs from a torchvision backbone, when one is installed.
- `MotionEncoder` (the default for video): frames and frame differences stacked as the
  channels of one CNN, an 8x8 grid of space-time features that the decoder attends over.
- `CellRecurrentEncoder`: a CNN on every frame, then an rnnkit GRU over time in every grid cell.
- `VideoEncoder`: the CNN on every frame, then an rnnkit LSTM over time (S2VT-like); its
  outputs, one per frame, are what the decoder attends over.
- `AttentionDecoder`: an LSTM with soft attention (Show, Attend and Tell, Xu et al. 2015).
- `PlainDecoder`: an LSTM started from the summary vector only (Show and Tell, Vinyals et
  al. 2015), the comparison without attention.
- `CaptionModel`: encoder + decoder, trained with teacher forcing and scheduled sampling
  (Bengio et al. 2015), decoded with `rnnkit.core.decoding`'s greedy and beam search.

Shapes: N batch, T frames, L attended locations (64 grid cells or T frames), D feature size,
S caption length, V vocabulary size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import rnnkit


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """A small CNN: [N, 3, 64, 64] -> features [N, 64, D] and summary [N, summary_size].

    Three stride-2 blocks bring 64x64 down to an 8x8 grid; a learned position code is added
    to each cell so that attention over cells also tells the decoder *where* it looks. The
    summary is a linear map of the whole flattened grid (it keeps position too).

    Example:
        >>> features, summary = ConvEncoder(feature_size=128)(torch.rand(2, 3, 64, 64))
        >>> features.shape, summary.shape
        (torch.Size([2, 64, 128]), torch.Size([2, 256]))
    """

    def __init__(
        self,
        feature_size: int = 128,
        summary_size: int = 256,
        image_size: int = 64,
        normalize_summary: bool = False,
        in_channels: int = 3,
    ):
        super().__init__()
        self.net = nn.Sequential(
            _conv_block(in_channels, 32, 2),
            _conv_block(32, 64, 2),
            _conv_block(64, feature_size, 2),
            _conv_block(feature_size, feature_size, 1),
        )
        grid = image_size // 8
        self.position = nn.Parameter(torch.zeros(grid * grid, feature_size))
        self.summarize = nn.Linear(grid * grid * feature_size, summary_size)
        # tanh keeps the summary in [-1, 1]; a layer norm instead keeps it from saturating
        # when it feeds another network (the video encoder's LSTM) rather than a decoder state.
        self.squash = nn.LayerNorm(summary_size) if normalize_summary else nn.Tanh()
        self.grid = grid

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        grid = self.net(images)  # [N, D, 8, 8]
        features = grid.flatten(2).transpose(1, 2) + self.position  # [N, 64, D]
        summary = self.squash(self.summarize(features.flatten(1)))
        return features, summary


class BackboneEncoder(nn.Module):
    """A torchvision backbone (e.g. ``resnet18``) as the encoder; only when torchvision is
    installed. Weights start random unless ``weights`` names torchvision weights that are
    already in the local torch cache (rnnkit never downloads)."""

    def __init__(self, name: str, feature_size: int = 128, summary_size: int = 256):
        super().__init__()
        try:
            import torchvision
        except ImportError as error:
            raise rnnkit.UserError(
                f"--backbone {name}: torchvision is not installed (pip install torchvision), "
                "or use the default CNN"
            ) from error
        try:
            model = torchvision.models.get_model(name, weights=None)
        except ValueError as error:
            message = f"--backbone {name}: not a torchvision model ({error})"
            raise rnnkit.UserError(message) from error
        # Everything up to the global pooling: a grid of features.
        body = nn.Sequential(*list(model.children())[:-2])
        with torch.no_grad():
            channels = body(torch.zeros(1, 3, 64, 64)).shape[1]
        self.body = body
        self.project = nn.Linear(channels, feature_size)
        self.summarize = nn.Linear(feature_size, summary_size)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.project(self.body(images).flatten(2).transpose(1, 2))
        return features, torch.tanh(self.summarize(features.mean(1)))


class VideoEncoder(nn.Module):
    """Frames [N, T, 3, 64, 64] -> per-frame outputs [N, T, D] and summary [N, summary_size].

    Each frame goes through the CNN (its flattened grid, so positions survive), then an
    rnnkit LSTM runs over time: motion is the change from frame to frame.
    """

    def __init__(self, feature_size: int = 128, summary_size: int = 256, frame_size: int = 128):
        super().__init__()
        self.frames = ConvEncoder(feature_size=64, summary_size=frame_size, normalize_summary=True)
        self.rnn = rnnkit.LSTM(frame_size, feature_size, batch_first=True)
        self.summarize = nn.Linear(feature_size, summary_size)

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        n, t = video.shape[:2]
        _, per_frame = self.frames(video.flatten(0, 1))  # [N*T, frame_size]
        outputs, (h, _) = self.rnn(per_frame.view(n, t, -1))
        return outputs, torch.tanh(self.summarize(h[-1]))


def stack_motion(video: Tensor) -> Tensor:
    """Frames and frame differences as channels: [N, T, 3, H, W] -> [N, 3 * (2T - 1), H, W].

    The differences are the motion features: a moving item leaves a positive trace where
    it arrives and a negative one where it left, so their order gives the direction.
    """
    differences = video[:, 1:] - video[:, :-1]
    return torch.cat([video.flatten(1, 2), differences.flatten(1, 2)], dim=1)


class MotionEncoder(nn.Module):
    """A clip [N, T, 3, 64, 64] -> an 8x8 grid of space-time features [N, 64, D] and summary.

    Early fusion (a convolutional stem whose first layer spans the whole clip): the frames
    and their differences (`stack_motion`) enter the CNN as channels, so every grid cell
    describes what is there *and* how it moves. The attention decoder then looks at the
    cells of one item to write its colour, name and direction; one CNN pass per clip costs
    about what one image costs, an eighth of running the CNN on every frame.

    Example:
        >>> features, summary = MotionEncoder(128, 256, frames=8)(torch.rand(2, 8, 3, 64, 64))
        >>> features.shape, summary.shape
        (torch.Size([2, 64, 128]), torch.Size([2, 256]))
    """

    def __init__(self, feature_size: int = 128, summary_size: int = 256, frames: int = 8):
        super().__init__()
        self.frames = frames
        self.grid = ConvEncoder(feature_size, summary_size, in_channels=3 * (2 * frames - 1))

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        if video.shape[1] != self.frames:
            raise rnnkit.UserError(
                f"video of {video.shape[1]} frames: this model reads clips of {self.frames}"
            )
        return self.grid(stack_motion(video))


class CellRecurrentEncoder(nn.Module):
    """A clip [N, T, 3, 64, 64] -> [N, 64, D]: a CNN on every frame (with its difference to
    the previous frame as 3 more channels), then an rnnkit GRU over time in each of the
    8x8 grid cells; the decoder attends over the cells' last states."""

    def __init__(self, feature_size: int = 128, summary_size: int = 256, cell_size: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            _conv_block(6, 24, 2), _conv_block(24, 48, 2), _conv_block(48, cell_size, 2)
        )
        self.rnn = rnnkit.GRU(cell_size, feature_size, batch_first=True)
        self.position = nn.Parameter(torch.zeros(64, feature_size))
        self.summarize = nn.Linear(64 * feature_size, summary_size)

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        n, t = video.shape[:2]
        previous = torch.cat([video[:, :1], video[:, :-1]], dim=1)
        grids = self.net(torch.cat([video, video - previous], 2).flatten(0, 1))  # [N*T, C, 8, 8]
        cells = grids.view(n, t, grids.shape[1], -1).permute(0, 3, 1, 2)  # [N, 64, T, C]
        _, last = self.rnn(cells.flatten(0, 1))  # [1, N*64, D]
        features = last[-1].view(n, cells.shape[1], -1) + self.position
        return features, torch.tanh(self.summarize(features.flatten(1)))


class SoftAttention(nn.Module):
    """Additive attention (Bahdanau et al. 2015), as used by Xu et al. 2015.

    ``score_l = w . tanh(W_f f_l + W_h h)``, ``alpha = softmax(score)``, context = sum alpha_l f_l.
    """

    def __init__(self, feature_size: int, hidden_size: int, attention_size: int = 128):
        super().__init__()
        self.key = nn.Linear(feature_size, attention_size)
        self.query = nn.Linear(hidden_size, attention_size)
        self.score = nn.Linear(attention_size, 1)

    def forward(self, features: Tensor, keys: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """features [N, L, D], keys = self.key(features) [N, L, A], hidden [N, H]
        -> context [N, D], alpha [N, L]."""
        scores = self.score(torch.tanh(keys + self.query(hidden)[:, None])).squeeze(-1)
        alpha = scores.softmax(dim=-1)
        return torch.bmm(alpha[:, None], features).squeeze(1), alpha


class AttentionDecoder(nn.Module):
    """An LSTM that looks at the encoder's features before writing each word.

    At every step: attend with the previous hidden state, gate the context (Xu et al.'s
    beta), feed [word embedding, context] to an LSTM cell, and predict the next word from
    [hidden, context].
    """

    uses_attention = True

    def __init__(
        self,
        vocab_size: int,
        feature_size: int,
        summary_size: int,
        embed_size: int = 64,
        hidden_size: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.init_h = nn.Linear(summary_size, hidden_size)
        self.init_c = nn.Linear(summary_size, hidden_size)
        self.attention = SoftAttention(feature_size, hidden_size)
        self.gate = nn.Linear(hidden_size, feature_size)
        self.cell = nn.LSTMCell(embed_size + feature_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size + feature_size, vocab_size)

    def start(self, features: Tensor, summary: Tensor) -> dict[str, Tensor]:
        """The decoding state before the first word."""
        return {
            "h": torch.tanh(self.init_h(summary)),
            "c": torch.tanh(self.init_c(summary)),
            "features": features,
            "keys": self.attention.key(features),
        }

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict, Tensor]:
        """tokens [N] -> logits [N, V], new state, attention [N, L]."""
        context, alpha = self.attention(state["features"], state["keys"], state["h"])
        context = context * torch.sigmoid(self.gate(state["h"]))
        inputs = torch.cat([self.embed(tokens), context], dim=-1)
        h, c = self.cell(inputs, (state["h"], state["c"]))
        logits = self.out(self.dropout(torch.cat([h, context], dim=-1)))
        return logits, {**state, "h": h, "c": c}, alpha


class PlainDecoder(nn.Module):
    """An LSTM that sees the image once, through its initial state (no attention)."""

    uses_attention = False

    def __init__(
        self,
        vocab_size: int,
        feature_size: int,
        summary_size: int,
        embed_size: int = 64,
        hidden_size: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.init_h = nn.Linear(summary_size, hidden_size)
        self.init_c = nn.Linear(summary_size, hidden_size)
        self.cell = nn.LSTMCell(embed_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, vocab_size)

    def start(self, features: Tensor, summary: Tensor) -> dict[str, Tensor]:
        return {"h": torch.tanh(self.init_h(summary)), "c": torch.tanh(self.init_c(summary))}

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict, None]:
        h, c = self.cell(self.embed(tokens), (state["h"], state["c"]))
        return self.out(self.dropout(h)), {"h": h, "c": c}, None


class CaptionModel(nn.Module):
    """Encoder + decoder. ``forward`` is teacher forcing with scheduled sampling.

    Args:
        encoder: returns (features [N, L, D], summary [N, S]).
        decoder: `AttentionDecoder` or `PlainDecoder`.

    Example:
        >>> model = CaptionModel(ConvEncoder(), AttentionDecoder(50, 128, 256))
        >>> logits, alphas = model(torch.rand(2, 3, 64, 64), torch.ones(2, 7, dtype=torch.long))
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(
        self, inputs: Tensor, tokens: Tensor, sampling_probability: float = 0.0
    ) -> tuple[Tensor, Tensor | None]:
        """Predict every next token of ``tokens`` [N, S] (which start with bos).

        With probability ``sampling_probability`` a step is fed the model's own previous
        prediction instead of the true token (scheduled sampling), so training sees the
        kind of input greedy decoding will produce.

        Returns:
            logits [N, S, V] and attention weights [N, S, L] (None without attention).
        """
        state = self.decoder.start(*self.encoder(inputs))
        logits, alphas = [], []
        previous = tokens[:, 0]
        for t in range(tokens.shape[1]):
            step_logits, state, alpha = self.decoder.step(previous, state)
            logits.append(step_logits)
            alphas.append(alpha)
            if t + 1 < tokens.shape[1]:
                previous = tokens[:, t + 1]
                if sampling_probability > 0:
                    own = step_logits.detach().argmax(-1)
                    use_own = torch.rand(own.shape, device=own.device) < sampling_probability
                    previous = torch.where(use_own, own, previous)
        stacked_alphas = torch.stack(alphas, 1) if alphas[0] is not None else None
        return torch.stack(logits, 1), stacked_alphas

    def start(self, inputs: Tensor) -> dict[str, Tensor]:
        """The decoding state for a batch of inputs (for `step_fn`)."""
        return self.decoder.start(*self.encoder(inputs))

    def step_fn(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """The step function of `rnnkit.core.decoding`: tokens [N] -> log-probs [N, V]."""
        logits, state, _ = self.decoder.step(tokens, state)
        return logits.log_softmax(-1), state
