"""rnnkit: recurrent neural networks for sequential data.

The core is one recurrent layer that runs any cell over variable-length sequences:

    >>> import torch, rnnkit
    >>> lstm = rnnkit.LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
    >>> x = torch.randn(3, 5, 8)
    >>> out, (h, c) = lstm(x, lengths=torch.tensor([5, 2, 4]))
"""

from rnnkit.core import GRU, LSTM, RNN, Recurrent, detach_state
from rnnkit.errors import UserError

__version__ = "0.1.0"
__all__ = ["GRU", "LSTM", "RNN", "Recurrent", "UserError", "__version__", "detach_state"]
