"""rnnkit: recurrent neural networks for sequential data.

The core is one recurrent layer that runs any cell over variable-length sequences:

    >>> import torch, rnnkit
    >>> lstm = rnnkit.LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
    >>> x = torch.randn(3, 5, 8)
    >>> out, (h, c) = lstm(x, lengths=torch.tensor([5, 2, 4]))
"""

from rnnkit.errors import UserError

__version__ = "0.1.0"
__all__ = ["GRU", "LSTM", "RNN", "Recurrent", "UserError", "__version__", "detach_state"]

_CORE = ("GRU", "LSTM", "RNN", "Recurrent", "detach_state")


def __getattr__(name: str):
    # The layers load torch on first use, not on `import rnnkit`: the `rnnkit` command
    # imports this package, and `rnnkit --help` should not wait seconds for torch.
    if name in _CORE:
        import rnnkit.core

        return getattr(rnnkit.core, name)
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
