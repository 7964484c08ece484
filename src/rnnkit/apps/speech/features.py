"""Log-mel spectrograms (torch.stft plus a mel filterbank) and SpecAugment masking.

The filterbank uses the HTK mel scale, ``mel = 2595 log10(1 + f / 700)``, with triangles
that overlap by half, as in Kaldi, librosa (``htk=True``) and torchaudio.

    >>> features = LogMel()(torch.randn(2, 16000))   # one second of audio
    >>> features.shape                                 # (batch, mels, frames at 100 per second)
    torch.Size([2, 64, 101])
"""

from __future__ import annotations

import torch
from torch import nn


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 20.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular filters, shape (n_mels, n_freqs), for a one-sided spectrum of n_freqs bins."""
    f_max = f_max or sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_freqs)
    edges = mel_to_hz(
        torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2)
    )
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMel(nn.Module):
    """Waveform (batch, samples) -> log-mel features (batch, n_mels, frames).

    25 ms Hann windows every 10 ms at 16 kHz; ``log(mel power + 1e-6)``. ``f_max``: the top
    of the highest filter (default half the sample rate); 4000 keeps to the telephone band,
    so 8 kHz recordings and 16 kHz ones look alike.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 64,
        n_fft: int = 400,
        hop_length: int = 160,
        f_max: float | None = None,
    ):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "filters",
            mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_max=f_max),
            persistent=False,
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(
            audio, self.n_fft, self.hop_length, window=self.window, return_complex=True
        )
        power = spectrum.abs() ** 2
        return torch.log(self.filters @ power + 1e-6)

    def frames(self, samples: int) -> int:
        """How many frames ``samples`` samples give (centred STFT)."""
        return samples // self.hop_length + 1


def spec_augment(
    features: torch.Tensor,
    generator: torch.Generator | None = None,
    freq_masks: int = 2,
    freq_width: int = 10,
    time_masks: int = 2,
    time_fraction: float = 0.08,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) without time warping: zero random mel bands and frames.

    Args:
        features: (batch, n_mels, frames), already normalized (masked cells become the mean 0).
        freq_width: widest frequency mask, in mel bands.
        time_fraction: widest time mask as a fraction of the frames.
    """
    out = features.clone()
    batch, n_mels, frames = out.shape
    for b in range(batch):
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, n_mels - width), (1,), generator=generator))
            out[b, start : start + width, :] = 0.0
        for _ in range(time_masks):
            limit = max(1, int(time_fraction * frames))
            width = int(torch.randint(0, limit + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, frames - width), (1,), generator=generator))
            out[b, :, start : start + width] = 0.0
    return out


def warp_frequency(
    features: torch.Tensor, max_stretch: float = 0.15, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Vocal-tract-length perturbation (Jaitly and Hinton 2013) on mel features.

    Each utterance's mel axis is stretched by a random factor in ``1 +- max_stretch``: band
    ``i`` takes the value at position ``i * factor`` (linear interpolation, the top band
    repeated past the edge). A longer or shorter vocal tract moves every formant by about the
    same factor, which per-band normalization cannot undo; training on warped copies helps
    with voices and synthesizers never heard.

    Args:
        features: (batch, n_mels, frames).
    Returns:
        the warped features, same shape.
    """
    batch, n_mels, _ = features.shape
    factors = 1 + max_stretch * (2 * torch.rand(batch, 1, generator=generator) - 1)
    positions = torch.arange(n_mels, dtype=features.dtype)[None, :] * factors.to(features.dtype)
    positions = positions.clamp(max=n_mels - 1).to(features.device)  # (batch, n_mels)
    low = positions.floor().long()
    high = (low + 1).clamp(max=n_mels - 1)
    weight = (positions - low).unsqueeze(2)
    take = lambda index: features.gather(1, index.unsqueeze(2).expand_as(features))  # noqa: E731
    return take(low) * (1 - weight) + take(high) * weight
