"""The network of the forecaster: an RNN encoder over the past, an RNN decoder over the horizon.

The encoder reads the context window (scaled target, which points were observed, calendar,
covariates). Its final state starts the decoder, which reads what is known about each future
step (calendar, known-future covariates, the step's position, optionally the value one season
earlier) and emits, for every step, the parameters of a Gaussian or Student-t distribution.
By default this is a *direct* multi-horizon model: the decoder never sees its own forecasts,
so errors do not compound and one forward pass gives the whole horizon and its intervals. An
*autoregressive* decoder also reads the previous step's value (the truth in training, its own
draws in `ForecastNet.sample_paths`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit

LIKELIHOODS = ("gaussian", "student_t")
LOSSES = ("nll", "mae_nll", "mase_nll")
# cell name -> (rnnkit layer, its cell option); minGRU/minLSTM run as a parallel scan.
CELLS = {
    "lstm": ("LSTM", "lstm"),
    "gru": ("GRU", "gru"),
    "rnn": ("RNN", "rnn"),
    "mingru": ("GRU", "mingru"),
    "minlstm": ("LSTM", "minlstm"),
}


class ForecastNet(nn.Module):
    """Encoder-decoder RNN with a distribution head.

    Args:
        encoder_inputs: features per past step.
        decoder_inputs: features per future step.
        hidden_size, num_layers, dropout: of both RNNs.
        cell: ``lstm``, ``gru``, ``rnn``, ``mingru`` or ``minlstm`` (rnnkit's layers).
        likelihood: ``gaussian`` or ``student_t``.

    Shapes:
        forward(encoder_input (B, C, E), decoder_input (B, H, D)) -> dict of (B, H) tensors
        ``loc``, ``scale`` and, for Student-t, ``df``; all in the window's scaled units.

    Example:
        >>> net = ForecastNet(8, 7, hidden_size=16)
        >>> out = net(torch.randn(2, 48, 8), torch.randn(2, 24, 7))
        >>> out["loc"].shape
        torch.Size([2, 24])
    """

    def __init__(
        self,
        encoder_inputs: int,
        decoder_inputs: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.1,
        cell: str = "lstm",
        likelihood: str = "student_t",
        autoregressive: bool = False,
    ):
        super().__init__()
        self.autoregressive = autoregressive
        # An autoregressive decoder also reads the previous step's value (scaled).
        decoder_inputs += int(autoregressive)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}")
        layer_name, cell_name = CELLS[cell]
        layer = getattr(rnnkit, layer_name)
        between = dropout if num_layers > 1 else 0.0
        self.encoder = layer(
            encoder_inputs,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=between,
            cell=cell_name,
        )
        self.decoder = layer(
            decoder_inputs,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=between,
            cell=cell_name,
        )
        self.dropout = nn.Dropout(dropout)
        self.likelihood = likelihood
        self.head = nn.Linear(hidden_size, 3 if likelihood == "student_t" else 2)

    def forward(
        self,
        encoder_input: torch.Tensor,
        decoder_input: torch.Tensor,
        previous: torch.Tensor | None = None,
    ) -> dict:
        """Distribution parameters for every future step.

        ``previous`` (B, H): for an autoregressive decoder, the value before each step
        (teacher forcing: the truth shifted by one step).
        """
        _, state = self.encoder(encoder_input)
        if self.autoregressive:
            decoder_input = torch.cat([decoder_input, previous.unsqueeze(-1)], dim=-1)
        decoded, _ = self.decoder(decoder_input, state)
        return self._params(decoded)

    def _params(self, decoded: torch.Tensor) -> dict:
        params = self.head(self.dropout(decoded))
        out = {
            "loc": params[..., 0],
            # softplus keeps the scale positive; the floor keeps the likelihood finite.
            "scale": F.softplus(params[..., 1]) + 1e-3,
        }
        if self.likelihood == "student_t":
            # df > 2.1: the variance exists, so the intervals stay finite.
            out["df"] = F.softplus(params[..., 2]) + 2.1
        return out

    @torch.no_grad()
    def sample_paths(
        self,
        encoder_input: torch.Tensor,
        decoder_input: torch.Tensor,
        samples: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(samples, B, H) sample paths of an autoregressive decoder, in scaled units.

        Each path feeds its own sampled value back as the next step's input, so the
        uncertainty of early steps carries into later ones.
        """
        batch, horizon = decoder_input.shape[:2]
        _, state = self.encoder(encoder_input)
        state = _repeat_state(state, samples)
        inputs = decoder_input.repeat(samples, 1, 1)
        previous = torch.zeros(samples * batch, 1, device=inputs.device)  # the last value
        steps = []
        for h in range(horizon):
            step_input = torch.cat([inputs[:, h : h + 1], previous.unsqueeze(-1)], dim=-1)
            decoded, state = self.decoder(step_input, state)
            params = {k: v[:, 0] for k, v in self._params(decoded).items()}
            # Draws by the inverse CDF of uniform noise from `generator`: reproducible.
            uniform = torch.rand(params["loc"].shape, generator=generator).clamp(1e-6, 1 - 1e-6)
            draw = _icdf(self, params, uniform.to(params["loc"].device))
            steps.append(draw)
            previous = draw.unsqueeze(-1)
        return torch.stack(steps, dim=-1).view(samples, batch, horizon)

    def distribution(self, params: dict) -> torch.distributions.Distribution:
        """The predicted distribution of every (window, step)."""
        if self.likelihood == "student_t":
            return torch.distributions.StudentT(params["df"], params["loc"], params["scale"])
        return torch.distributions.Normal(params["loc"], params["scale"])


def _repeat_state(state, samples: int):
    if isinstance(state, tuple):
        return tuple(_repeat_state(part, samples) for part in state)
    return state.repeat(1, samples, 1)


def _icdf(net: ForecastNet, params: dict, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse CDF draws (torch's Student-t has no icdf: scipy gives its quantiles)."""
    if net.likelihood == "gaussian":
        return torch.distributions.Normal(params["loc"], params["scale"]).icdf(uniform)
    from scipy import stats

    z = stats.t.ppf(uniform.cpu().double().numpy(), params["df"].cpu().double().numpy())
    return params["loc"] + params["scale"] * torch.as_tensor(
        z, dtype=params["loc"].dtype, device=params["loc"].device
    )


def masked_nll(net: ForecastNet, params: dict, target: torch.Tensor, mask: torch.Tensor):
    """Mean negative log-likelihood of the observed targets (mask 1) only."""
    log_prob = net.distribution(params).log_prob(torch.where(mask > 0, target, 0.0))
    return -(log_prob * mask).sum() / mask.sum().clamp(min=1.0)


def forecast_loss(
    net: ForecastNet,
    params: dict,
    target: torch.Tensor,
    mask: torch.Tensor,
    loss: str = "nll",
    step: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of a batch (observed targets only).

    ``nll``: the negative log-likelihood. ``mae_nll``: the mean absolute error of the
    location (so the location is a median, the point forecast that sMAPE and MASE reward;
    a likelihood pulls it towards the mean of skewed errors) plus the likelihood of the
    spread around that location, held fixed (so the intervals come from the same head).
    ``mase_nll``: as ``mae_nll``, each window's absolute errors divided by ``step`` (B,), its
    context's mean one-step change, as MASE divides them (weights normalised to mean 1 in
    the batch): a smooth series' small errors count as much as a noisy one's large ones.
    """
    if loss == "nll":
        return masked_nll(net, params, target, mask)
    absolute = (params["loc"] - target).abs() * mask
    if loss == "mase_nll":
        weight = 1.0 / step
        absolute = absolute * (weight / weight.mean())[:, None]
    absolute = absolute.sum() / mask.sum().clamp(min=1.0)
    spread = masked_nll(net, {**params, "loc": params["loc"].detach()}, target, mask)
    return absolute + spread
