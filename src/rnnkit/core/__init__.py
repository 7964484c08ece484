"""Core: recurrent cells, the recurrent layer that runs them, and decoding."""

from rnnkit.core.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnkit.core.layer import GRU, LSTM, RNN, Recurrent, detach_state
from rnnkit.core.scan import MinGRUCell, MinLSTMCell

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Recurrent",
    "detach_state",
    "Cell",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "MinGRUCell",
    "MinLSTMCell",
]
