"""PLACEHOLDER (being replaced by the full recurrent layer): torch modules plus `lengths`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class _LengthsMixin:
    def forward(self, input, hx=None, lengths=None):  # noqa: A002
        if lengths is None:
            return super().forward(input, hx)
        total = input.shape[1 if self.batch_first else 0]
        packed = pack_padded_sequence(
            input, torch.as_tensor(lengths).cpu(), batch_first=self.batch_first,
            enforce_sorted=False,
        )
        out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=total)
        return out, state


class LSTM(_LengthsMixin, nn.LSTM):
    pass


class GRU(_LengthsMixin, nn.GRU):
    pass


class RNN(_LengthsMixin, nn.RNN):
    pass
