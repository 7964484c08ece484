"""Core: recurrent cells, the recurrent layer that runs them, and decoding."""

from rnnkit.core.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnkit.core.layer import GRU, LSTM, RNN
from rnnkit.core.scan import MinGRUCell, MinLSTMCell

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "MinGRUCell",
    "MinLSTMCell",
]
