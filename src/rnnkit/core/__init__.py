"""Core: recurrent cells, the recurrent layer that runs them, and decoding."""

from rnnkit.core.layer import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN"]
