"""Seeing and hearing pieces: a piano-roll PNG (matplotlib) and a WAV file (fluidsynth).

Audio needs Debian's ``fluidsynth`` and a General MIDI soundfont; without them
`render_wav` returns None and a message saying how to install them (nothing fails).

Example:
    >>> from rnnkit.data.music import write_midi
    >>> piece = Piece("arpeggio", [(60, 0, 1), (64, 1, 2), (67, 2, 4)])
    >>> plot_piano_roll(piece, "sample.png", title="generated chorale")
    PosixPath('sample.png')
    >>> wav, message = render_wav(write_midi(piece, "sample.mid"), "sample.wav")
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from rnnkit.data.music import PITCH_LOW, Piece, piano_roll
from rnnkit.files import atomic_path

SOUNDFONT_FOLDERS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/share/sounds/sf3")
INSTALL_HINT = "sudo apt-get install fluidsynth timgm6mb-soundfont"
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def plot_piano_roll(
    piece: Piece,
    path: str | os.PathLike,
    title: str = "",
    steps_per_quarter: int = 4,
    primer_quarters: float = 0.0,
) -> Path:
    """Draw the piece as a piano roll (time across, pitch up) and save a PNG atomically.

    Bar lines are drawn from the piece's metre; ``primer_quarters`` shades the primer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = piano_roll(piece, steps_per_quarter)
    used = np.flatnonzero(roll.sum(0)) if roll.size else np.array([39])
    low, high = (
        max(int(used.min()) - 2, 0),
        min(int(used.max()) + 3, roll.shape[1] if roll.size else 88),
    )
    figure, axes = plt.subplots(figsize=(10, 3.6), dpi=100)
    quarters = max(roll.shape[0] / steps_per_quarter, 1.0)  # a silent piece still gets axes
    axes.imshow(
        roll[:, low:high].T,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, quarters, PITCH_LOW + low - 0.5, PITCH_LOW + high - 0.5),
    )
    for bar in np.arange(0, quarters + 1e-9, piece.quarters_per_bar):
        axes.axvline(bar, color="tab:blue", linewidth=0.4, alpha=0.5)
    if primer_quarters:
        axes.axvspan(0, primer_quarters, color="tab:orange", alpha=0.15, label="primer")
        axes.legend(loc="upper right", fontsize=8)
    octaves = [p for p in range(PITCH_LOW + low, PITCH_LOW + high) if p % 12 == 0]
    axes.set_yticks(octaves, [f"{_NOTE_NAMES[p % 12]}{p // 12 - 1}" for p in octaves])
    axes.set_xlabel("time (quarter notes; blue lines: bars)")
    axes.set_ylabel("pitch")
    axes.set_title(title or piece.name)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)


def find_soundfont() -> Path | None:
    """``$RNNKIT_SOUNDFONT``, else the first ``.sf2``/``.sf3`` in the usual Debian folders."""
    if os.environ.get("RNNKIT_SOUNDFONT"):
        return Path(os.environ["RNNKIT_SOUNDFONT"])
    for folder in SOUNDFONT_FOLDERS:
        fonts = sorted(Path(folder).glob("*.sf[23]")) if Path(folder).is_dir() else []
        # Prefer the small TimGM6mb (fast to load) when several are installed.
        fonts.sort(key=lambda p: (p.stat().st_size, p.name))
        if fonts:
            return fonts[0]
    return None


def render_wav(
    midi_path: str | os.PathLike,
    wav_path: str | os.PathLike,
    sample_rate: int = 22050,
    timeout: float = 60.0,
) -> tuple[Path | None, str]:
    """Synthesize a MIDI file to WAV with fluidsynth; returns (path or None, message)."""
    program = shutil.which("fluidsynth")
    soundfont = find_soundfont()
    if program is None or soundfont is None:
        missing = "fluidsynth" if program is None else "a General MIDI soundfont"
        return None, f"no audio: {missing} is not installed (install it with: {INSTALL_HINT})"
    command = [program, "-ni", "-q", "-T", "wav", "-r", str(sample_rate), "-F"]
    try:
        with atomic_path(wav_path) as tmp:
            run = subprocess.run(
                [*command, str(tmp), str(soundfont), str(midi_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if run.returncode != 0 or tmp.stat().st_size == 0:
                lines = (run.stderr or run.stdout).strip().splitlines() or ["no output"]
                raise _RenderFailed(lines[-1])
    except _RenderFailed as error:  # atomic_path removed the partial file
        return None, f"no audio: fluidsynth failed ({error})"
    except subprocess.TimeoutExpired:
        return None, f"no audio: fluidsynth took longer than {timeout:.0f} s"
    return Path(wav_path), f"rendered with fluidsynth and {soundfont.name}"


class _RenderFailed(Exception):
    pass
