"""What a training run shows and writes: progress bars, ``metrics.csv`` and TensorBoard.

Progress bars (tqdm) show the ETA and the live loss; they are hidden when the output is not a
terminal, when ``TQDM_DISABLE=1`` or when ``TrainConfig.progress`` is False.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from rnnkit.files import write_text


def progress_enabled(wanted: bool) -> bool:
    """Whether to draw progress bars: wanted, stderr is a terminal and TQDM_DISABLE is unset."""
    disabled_by_env = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return wanted and not disabled_by_env and sys.stderr.isatty()


class ProgressBar:
    """A tqdm bar whose postfix (loss, metrics) refreshes at most twice a second.

    Reading a loss forces the GPU to finish its queued work, so the bar asks for the values
    (through a callable) only when it is about to redraw.
    """

    def __init__(self, enabled: bool, total: int | None, desc: str, initial: int = 0):
        self.bar = (
            tqdm(
                total=total,
                desc=desc,
                initial=initial,
                leave=False,
                dynamic_ncols=True,
                disable=False,  # decided above; tqdm's own default reads the env at import
            )
            if enabled
            else None
        )
        self._last_refresh = 0.0

    def update(self, values) -> None:
        """Advance by one step; ``values()`` returns the postfix dict when it is needed."""
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_refresh > 0.5:
            self._last_refresh = now
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values().items()})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def print_epoch_summary(row: dict, epochs: int) -> None:
    """One lasting line per epoch under the (transient) bars, e.g.
    ``epoch 3/10: loss 0.4121, val_loss 0.4702, lr 0.001``."""
    values = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
    tqdm.write(f"epoch {row['epoch']}/{epochs}: {values}", file=sys.stderr)


class MetricsLogger:
    """Writes per-epoch rows to ``out_dir/metrics.csv`` and scalars to ``out_dir/tensorboard``.

    Args:
        out_dir: the run's folder, or None to log nothing.
        tensorboard: also write TensorBoard event files (``tensorboard --logdir out_dir``).

    Example:
        >>> logger = MetricsLogger("runs/demo")
        >>> logger.log_step(10, {"loss": 0.7, "lr": 1e-3})
        >>> logger.log_epoch([{"epoch": 1, "loss": 0.7, "val_loss": 0.8}], step=10)
        >>> logger.close()
    """

    def __init__(self, out_dir: str | os.PathLike | None, tensorboard: bool = True):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.writer = None
        if self.out_dir is not None and tensorboard:
            # Imported here: tensorboard takes a moment to import and is only needed with logs.
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """Training scalars at an optimizer step (TensorBoard ``train/<name>``)."""
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def log_epoch(self, history: list[dict], step: int) -> None:
        """Rewrite ``metrics.csv`` from the whole history; add the last row to TensorBoard."""
        if self.out_dir is None or not history:
            return
        write_text(self.out_dir / "metrics.csv", history_to_csv(history))
        if self.writer is not None:
            for name, value in history[-1].items():
                if name != "epoch":
                    self.writer.add_scalar(f"epoch/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def history_to_csv(history: Iterable[dict]) -> str:
    """Rows as CSV text; the columns are every key seen, in order of first appearance."""
    history = list(history)
    columns = list(dict.fromkeys(key for row in history for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return text.getvalue()
