"""`AutoencoderScorer`: an LSTM autoencoder's reconstruction error as an anomaly score.

The second rnnkit score of the issue ("forecast residual ... and/or an LSTM autoencoder's
reconstruction error"), after EncDec-AD (Malhotra et al. 2016): an LSTM encoder reads a window
of the series into its final state; a decoder that sees nothing but that state rebuilds the
window (in reverse order, so that the last points read are the first rebuilt). Trained on
normal data only, it rebuilds normal shapes well and unusual ones (a spike, a new level, a lost
season, a burst of noise) badly. A point's score is the mean squared reconstruction error at
that point over every window that contains it.

Unlike the forecaster's score (`AnomalyDetector`), this one judges a whole window at once, so
a flattened season or a level shift stays surprising for as long as it lasts.

Example:
    >>> rng = np.random.default_rng(0)
    >>> values = np.sin(np.arange(1000) * 2 * np.pi / 24) + 0.1 * rng.normal(size=1000)
    >>> normal_values, new_values = values[:600], values[600:].copy()
    >>> new_values[200] += 2  # a spike
    >>> scorer = AutoencoderScorer(window=24, epochs=3, batches_per_epoch=10).fit(normal_values)
    >>> scores = scorer.score(new_values)  # (T,), higher = more anomalous
    >>> scores.shape, int(scores.argmax())
    ((400,), 200)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

import rnnkit
from rnnkit.engine import TrainConfig, Trainer, seed_everything
from rnnkit.errors import UserError


class LSTMAutoencoder(nn.Module):
    """Window -> final LSTM state -> the window again, from the state alone.

    Args:
        hidden_size: size of the state the window is squeezed into (the bottleneck).
        num_layers: of encoder and decoder.

    Shapes:
        forward(windows (B, W)) -> reconstruction (B, W).

    Example:
        >>> LSTMAutoencoder(16)(torch.randn(4, 32)).shape
        torch.Size([4, 32])
    """

    def __init__(self, hidden_size: int = 32, num_layers: int = 1):
        super().__init__()
        self.encoder = rnnkit.LSTM(1, hidden_size, num_layers, batch_first=True)
        self.decoder = rnnkit.LSTM(1, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(windows.unsqueeze(-1))
        # An unconditioned decoder (zero inputs): everything it rebuilds must pass through
        # the encoder's state, so it cannot copy the anomaly from its input.
        blank = torch.zeros_like(windows).unsqueeze(-1)
        decoded, _ = self.decoder(blank, state)
        reversed_reconstruction = self.head(decoded).squeeze(-1)
        return reversed_reconstruction.flip(1)


class AutoencoderScorer:
    """Fit on normal values, then score every point of a series by reconstruction error.

    Args:
        window: points per window.
        hidden_size, num_layers: of the autoencoder.
        epochs, batches_per_epoch, batch_size, lr: training on random windows.
        seed: seeds the network and the windows drawn.
        device: torch device.
    """

    def __init__(
        self,
        window: int = 64,
        hidden_size: int = 32,
        num_layers: int = 1,
        epochs: int = 15,
        batches_per_epoch: int = 30,
        batch_size: int = 64,
        lr: float = 3e-3,
        seed: int = 0,
        device: str = "cpu",
    ):
        if window < 2:
            raise UserError(f"window must be at least 2 points, got {window}")
        self.window, self.seed, self.device = window, seed, device
        self.epochs, self.batches_per_epoch = epochs, batches_per_epoch
        self.batch_size, self.lr = batch_size, lr
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.net: LSTMAutoencoder | None = None
        self.history: list[dict] = []
        self.mean, self.std = 0.0, 1.0

    def fit(self, values: np.ndarray) -> AutoencoderScorer:
        """Train on (mostly) normal ``values`` (1-D); returns self."""
        values = _filled(values)
        if len(values) < self.window + 1:
            raise UserError(
                f"the training series has {len(values)} points; the autoencoder needs more "
                f"than its window ({self.window})"
            )
        # One scale for all windows (not one per window): a new level is then a shape the
        # autoencoder never saw, and rebuilds badly.
        self.mean, self.std = float(values.mean()), float(values.std()) or 1.0
        windows = torch.from_numpy(self._windows(values))
        seed_everything(self.seed)
        self.net = LSTMAutoencoder(self.hidden_size, self.num_layers).to(self.device)
        rng = np.random.default_rng(self.seed)

        def batches():
            for _ in range(self.batches_per_epoch):
                yield windows[rng.integers(0, len(windows), size=self.batch_size)]

        trainer = Trainer(
            self.net,
            self._step,
            TrainConfig(
                epochs=self.epochs,
                lr=self.lr,
                seed=self.seed,
                device=self.device,
                progress=False,
                save_checkpoints=False,
                tensorboard=False,
            ),
        )
        self.history = trainer.fit(_Epoch(batches, self.batches_per_epoch))
        self.net.eval()
        return self

    def _step(self, net: LSTMAutoencoder, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(next(net.parameters()).device)
        return torch.mean((net(batch) - batch) ** 2)

    def _windows(self, values: np.ndarray) -> np.ndarray:
        scaled = ((values - self.mean) / self.std).astype(np.float32)
        return np.lib.stride_tricks.sliding_window_view(scaled, self.window).copy()

    @torch.no_grad()
    def score(self, values: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """(T,) mean squared reconstruction error of each point over the windows holding
        it (in units of the training series' variance); NaN where the value is missing."""
        if self.net is None:
            raise UserError("the autoencoder is not trained yet; call fit() first")
        raw = np.asarray(values, float)
        if len(raw) < self.window:
            raise UserError(
                f"the series has {len(raw)} points; the autoencoder needs at least its "
                f"window ({self.window})"
            )
        windows = self._windows(_filled(raw))
        device = next(self.net.parameters()).device
        errors = np.concatenate(
            [
                ((self.net(batch.to(device)) - batch.to(device)) ** 2).cpu().numpy()
                for batch in torch.from_numpy(windows).split(chunk)
            ]
        )  # (windows, W): error of point start + i in the window starting at start
        positions = np.arange(len(windows))[:, None] + np.arange(self.window)[None, :]
        total = np.bincount(positions.ravel(), weights=errors.ravel(), minlength=len(raw))
        count = np.bincount(positions.ravel(), minlength=len(raw))
        scores = total / np.maximum(count, 1)
        scores[np.isnan(raw)] = np.nan
        return scores


class _Epoch:
    """An iterable of a fixed number of batches, drawn anew on each pass."""

    def __init__(self, make, length: int):
        self.make, self.length = make, length

    def __iter__(self):
        return iter(self.make())

    def __len__(self) -> int:
        return self.length


def _filled(values: np.ndarray) -> np.ndarray:
    values = pd.Series(np.asarray(values, float))
    if values.isna().all():
        raise UserError("the series has no values (all missing)")
    return values.ffill().bfill().to_numpy()


__all__ = ["AutoencoderScorer", "LSTMAutoencoder"]
