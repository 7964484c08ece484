"""Music data: pieces as note lists, piano rolls, melody and performance-event encodings.

Sources:

- the four-part Bach chorales (349 distinct) and the Essen folk songs in ``music21``,
  parsed once and cached (``rnnkit.data.cache``, keyed by music21's version);
- any folder of the user's standard MIDI files, read with ``mido``; a file that is corrupt,
  empty, drum-only or absurdly long is skipped with a one-line reason and counted.

A `Piece` keeps its notes as ``(pitch, start, end)`` rows in quarter notes, so every
representation derives from it: `piano_roll` (pitches 21-108 on a grid, the JSB Chorales
representation of Boulanger-Lewandowski et al. 2012), `melody_encode` (Magenta's
monophonic melody tokens) and `EventCodec` (PerformanceRNN's note-on / note-off /
time-shift / velocity events). `write_midi` turns any of them back into a standard MIDI file.

Example:
    >>> from rnnkit.data import music
    >>> chorales = music.load_bach_chorales(limit=3)  # all 349: ~30-50 s once, then cached
    >>> roll = music.piano_roll(chorales[0], steps_per_quarter=1)   # (frames, 88) of 0/1
    >>> roll.shape[1]
    88
    >>> path = music.write_midi(music.roll_to_piece(roll, 1), "chorale.mid")
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rnnkit.data.cache import cache_dir
from rnnkit.errors import UserError
from rnnkit.files import atomic_path, write_text

PITCH_LOW = 21  # A0, the lowest piano key
PITCH_HIGH = 108  # C8, the highest piano key
NUM_PITCHES = PITCH_HIGH - PITCH_LOW + 1  # 88 columns of a piano roll

MAX_PIECE_QUARTERS = 20_000  # ~3 hours at 100 bpm: longer is a broken file, not music
MAX_PIECE_NOTES = 200_000

FOLK_COLLECTIONS = ("altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "kinder0")
"""Essen folk-song files parsed by default (1,100 tunes, ~1 min once); see `load_folk_songs`."""


# The tempi a MIDI file can store, in quarter notes per minute: a tempo is microseconds per
# quarter note in 24 bits, so at least 60e6 / 2**24 = 3.6; above 1000 is no longer music
# anyone means.
TEMPO_RANGE = (4.0, 1000.0)


@dataclass
class Piece:
    """One piece of music as a note list.

    Attributes:
        name: where it came from (``bach/bwv269``, a file name, ``generated``).
        notes: float array of shape ``(num_notes, 3)``: MIDI pitch, start and end in quarter
            notes, sorted by start then pitch.
        velocities: int array ``(num_notes,)`` of MIDI velocities 1-127.
        key_sharps: the key signature (sharps > 0, flats < 0); 0 for C major / A minor.
        quarters_per_bar: bar length in quarter notes (4 for 4/4, 3 for 3/4, 3 for 6/8).
        tempo_bpm: quarter notes per minute.
    """

    name: str
    notes: np.ndarray
    velocities: np.ndarray = field(default=None)  # type: ignore[assignment]
    key_sharps: int = 0
    quarters_per_bar: float = 4.0
    tempo_bpm: float = 100.0

    def __post_init__(self) -> None:
        self.notes = np.asarray(self.notes, dtype=np.float64).reshape(-1, 3)
        if self.velocities is None:
            self.velocities = np.full(len(self.notes), 80, dtype=np.int64)
        self.velocities = np.asarray(self.velocities, dtype=np.int64).reshape(-1)
        order = np.lexsort((self.notes[:, 0], self.notes[:, 1]))
        self.notes, self.velocities = self.notes[order], self.velocities[order]

    @property
    def length(self) -> float:
        """Length in quarter notes (end of the last note)."""
        return float(self.notes[:, 2].max()) if len(self.notes) else 0.0

    @property
    def pitches(self) -> np.ndarray:
        return self.notes[:, 0].astype(np.int64)

    def transpose(self, semitones: int) -> Piece:
        """The piece moved by ``semitones``; notes that leave the piano range are dropped."""
        notes = self.notes.copy()
        notes[:, 0] += semitones
        keep = (notes[:, 0] >= PITCH_LOW) & (notes[:, 0] <= PITCH_HIGH)
        sharps = _sharps_after_transposition(self.key_sharps, semitones)
        return replace(self, notes=notes[keep], velocities=self.velocities[keep], key_sharps=sharps)

    def to_common_key(self) -> Piece:
        """Transpose to no sharps or flats (C major / A minor) by the smallest shift."""
        return self.transpose(shift_to_common_key(self.key_sharps))


def shift_to_common_key(key_sharps: int) -> int:
    """Semitones (-6..5) that move a key signature with ``key_sharps`` to C major / A minor.

    Each sharp raises the tonic a fifth (7 semitones), so undo ``7 * sharps`` modulo 12.

    >>> shift_to_common_key(1)   # G major -> C major: up a fourth
    5
    """
    shift = (-7 * key_sharps) % 12
    return shift - 12 if shift >= 6 else shift


def _sharps_after_transposition(key_sharps: int, semitones: int) -> int:
    # Moving up a semitone adds 7 sharps (mod 12); spell the result with at most 6 flats/sharps.
    sharps = (key_sharps + 7 * semitones) % 12
    return sharps - 12 if sharps > 6 else sharps


# --------------------------------------------------------------------------------------
# Piano rolls
# --------------------------------------------------------------------------------------


def piano_roll(piece: Piece, steps_per_quarter: int = 1) -> np.ndarray:
    """Pitches 21-108 on a grid: ``roll[t, p] = 1`` when pitch ``21 + p`` sounds at frame t.

    A note sounds in a frame when it is held at the frame's start, as in the JSB Chorales
    benchmark (quarter-note grid: ``steps_per_quarter=1``; eighth: 2; sixteenth: 4).

    Returns:
        float32 array of shape ``(num_frames, 88)`` with 0/1 entries.
    """
    num_frames = max(int(np.ceil(piece.length * steps_per_quarter - 1e-9)), 0)
    roll = np.zeros((num_frames, NUM_PITCHES), dtype=np.float32)
    for pitch, start, end in piece.notes:
        if not PITCH_LOW <= pitch <= PITCH_HIGH:
            continue
        first = int(np.ceil(start * steps_per_quarter - 1e-9))
        last = int(np.ceil(end * steps_per_quarter - 1e-9))  # frames first..last-1
        roll[first:last, int(pitch) - PITCH_LOW] = 1.0
    return roll


def roll_to_piece(
    roll: np.ndarray, steps_per_quarter: int = 1, name: str = "piano roll", **metadata
) -> Piece:
    """Turn a ``(frames, 88)`` roll back into notes: consecutive active frames are one note."""
    roll = np.asarray(roll) > 0.5
    padded = np.concatenate(
        [np.zeros((1, roll.shape[1]), bool), roll, np.zeros((1, roll.shape[1]), bool)]
    )
    change = np.diff(padded.astype(np.int8), axis=0)  # +1 where a note starts, -1 after it ends
    notes = []
    for column in range(roll.shape[1]):
        starts = np.flatnonzero(change[:, column] == 1)
        ends = np.flatnonzero(change[:, column] == -1)
        for start, end in zip(starts, ends, strict=True):
            notes.append((column + PITCH_LOW, start / steps_per_quarter, end / steps_per_quarter))
    return Piece(name=name, notes=np.array(notes, dtype=np.float64).reshape(-1, 3), **metadata)


# --------------------------------------------------------------------------------------
# Melody encoding (monophonic tunes)
# --------------------------------------------------------------------------------------

MELODY_REST = 0  # note-off: silence from this step
MELODY_HOLD = 1  # no event: keep doing what the previous step did
MELODY_FIRST_PITCH = 2  # token 2 + (pitch - 21) starts a note
MELODY_VOCAB = MELODY_FIRST_PITCH + NUM_PITCHES


def melody_encode(piece: Piece, steps_per_quarter: int = 4) -> list[int]:
    """Magenta's melody tokens on a grid: note-on(pitch), hold, or rest; one per step.

    Polyphony is reduced to the highest note starting at a step. A step that a note-on
    does not reach is a hold while the previous note lasts and a rest after it.

    Returns:
        list of ints in ``[0, MELODY_VOCAB)``, one per grid step.
    """
    num_steps = int(np.ceil(piece.length * steps_per_quarter - 1e-9))
    tokens = [MELODY_HOLD] * num_steps
    sounding_until = np.zeros(num_steps + 1, dtype=bool)
    for pitch, start, end in sorted(piece.notes.tolist(), key=lambda n: (n[1], n[0])):
        step = int(round(start * steps_per_quarter))
        stop = max(int(round(end * steps_per_quarter)), step + 1)
        if step >= num_steps or not PITCH_LOW <= pitch <= PITCH_HIGH:
            continue
        tokens[step] = MELODY_FIRST_PITCH + int(pitch) - PITCH_LOW  # later (higher) one wins
        sounding_until[step:stop] = True
    for step in range(num_steps):
        if tokens[step] == MELODY_HOLD and not sounding_until[step]:
            previous = tokens[step - 1] if step else MELODY_REST
            tokens[step] = MELODY_HOLD if previous == MELODY_REST else MELODY_REST
    return tokens


def melody_decode(tokens: Sequence[int], steps_per_quarter: int = 4, **metadata) -> Piece:
    """The inverse of `melody_encode`: tokens back to a monophonic `Piece`."""
    notes: list[tuple[float, float, float]] = []
    current: list[float] | None = None  # [pitch, start step]
    for step, token in enumerate([*tokens, MELODY_REST]):
        if token == MELODY_HOLD:
            continue
        if current is not None:
            notes.append((current[0], current[1] / steps_per_quarter, step / steps_per_quarter))
            current = None
        if token >= MELODY_FIRST_PITCH:
            current = [token - MELODY_FIRST_PITCH + PITCH_LOW, step]
    metadata.setdefault("name", "melody")
    return Piece(notes=np.array(notes, dtype=np.float64).reshape(-1, 3), **metadata)


# --------------------------------------------------------------------------------------
# Performance events (PerformanceRNN)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventCodec:
    """Note-on, note-off, time-shift and velocity events, as Magenta's PerformanceRNN.

    Token layout: ``note_on`` 0-87, ``note_off`` 88-175, ``time_shift`` of 1..max_shift steps
    of ``step_seconds`` each, then ``velocity_bins`` velocity tokens.

    Example:
        >>> piece = Piece("arpeggio", [(60, 0, 1), (64, 1, 2), (67, 2, 4)], tempo_bpm=120)
        >>> codec = EventCodec()
        >>> tokens = codec.encode(piece)  # velocity, note-on 60, shift 0.5 s, note-off 60, ...
        >>> tokens
        [295, 39, 225, 127, 43, 225, 131, 46, 275, 134]
        >>> again = codec.decode(tokens, tempo_bpm=120)  # same notes, times rounded to 10 ms
        >>> again.notes.tolist()
        [[60.0, 0.0, 1.0], [64.0, 1.0, 2.0], [67.0, 2.0, 4.0]]
    """

    step_seconds: float = 0.01
    max_shift: int = 100
    velocity_bins: int = 32

    @property
    def first_shift(self) -> int:
        return 2 * NUM_PITCHES

    @property
    def first_velocity(self) -> int:
        return self.first_shift + self.max_shift

    @property
    def vocab_size(self) -> int:
        return self.first_velocity + self.velocity_bins

    def describe(self, token: int) -> str:
        """A readable name, e.g. ``note_on(60)`` or ``time_shift(0.25s)``."""
        if token < NUM_PITCHES:
            return f"note_on({token + PITCH_LOW})"
        if token < self.first_shift:
            return f"note_off({token - NUM_PITCHES + PITCH_LOW})"
        if token < self.first_velocity:
            return f"time_shift({(token - self.first_shift + 1) * self.step_seconds:g}s)"
        return f"velocity({self._bin_to_velocity(token - self.first_velocity)})"

    def _velocity_to_bin(self, velocity: int) -> int:
        return min(int((velocity - 1) * self.velocity_bins / 127), self.velocity_bins - 1)

    def _bin_to_velocity(self, bin_index: int) -> int:
        return int(round((bin_index + 0.5) * 127 / self.velocity_bins)) + 1

    def encode(self, piece: Piece) -> list[int]:
        """The piece's notes as event tokens (times in seconds at the piece's tempo)."""
        seconds_per_quarter = 60.0 / piece.tempo_bpm
        actions = []  # (step, order, token): note-offs (order 0) before note-ons at one time
        for (pitch, start, end), velocity in zip(piece.notes, piece.velocities, strict=True):
            if not PITCH_LOW <= pitch <= PITCH_HIGH:
                continue
            on = int(round(start * seconds_per_quarter / self.step_seconds))
            off = max(int(round(end * seconds_per_quarter / self.step_seconds)), on + 1)
            column = int(pitch) - PITCH_LOW
            actions.append((on, 1, column, int(velocity)))
            actions.append((off, 0, column, 0))
        tokens: list[int] = []
        now, current_bin = 0, -1
        for step, order, column, velocity in sorted(actions):
            while step > now:  # time shifts of at most max_shift steps each
                shift = min(step - now, self.max_shift)
                tokens.append(self.first_shift + shift - 1)
                now += shift
            if order == 0:
                tokens.append(NUM_PITCHES + column)
                continue
            velocity_bin = self._velocity_to_bin(velocity)
            if velocity_bin != current_bin:
                tokens.append(self.first_velocity + velocity_bin)
                current_bin = velocity_bin
            tokens.append(column)
        return tokens

    def decode(
        self, tokens: Iterable[int], tempo_bpm: float = 120.0, name: str = "events"
    ) -> Piece:
        """Event tokens back to a `Piece` (a note never switched off ends at the last time)."""
        quarters_per_step = self.step_seconds * tempo_bpm / 60.0
        now, velocity = 0, 80
        open_notes: dict[int, tuple[int, int]] = {}  # column -> (start step, velocity)
        notes, velocities = [], []

        def close(column: int) -> None:
            start, note_velocity = open_notes.pop(column)
            end = max(now, start + 1)
            notes.append((column + PITCH_LOW, start * quarters_per_step, end * quarters_per_step))
            velocities.append(note_velocity)

        for token in tokens:
            token = int(token)
            if token < NUM_PITCHES:
                if token in open_notes:
                    close(token)
                open_notes[token] = (now, velocity)
            elif token < self.first_shift:
                if token - NUM_PITCHES in open_notes:
                    close(token - NUM_PITCHES)
            elif token < self.first_velocity:
                now += token - self.first_shift + 1
            elif token < self.vocab_size:
                velocity = self._bin_to_velocity(token - self.first_velocity)
        for column in list(open_notes):
            close(column)
        notes, velocities = _one_note_per_key(notes, velocities)
        return Piece(
            name=name,
            notes=np.array(notes, dtype=np.float64).reshape(-1, 3),
            velocities=np.array(velocities, dtype=np.int64),
            tempo_bpm=tempo_bpm,
        )


def _one_note_per_key(notes: list[tuple], velocities: list[int]) -> tuple[list, list]:
    """Notes of one pitch that overlap, made playable (a key sounds once at a time): one
    struck again while sounding ends there; two that start together are one note (the
    longer). A sampled stream can do both ("on, on" or "on, off, on" in one step, the
    released note lasting its minimum step), and MIDI cannot hold them."""
    order = sorted(range(len(notes)), key=lambda i: (notes[i][0], notes[i][1], -notes[i][2]))
    kept: list[int] = []
    ends: dict[float, list] = {}
    playable = [list(note) for note in notes]
    for i in order:
        pitch, start, _ = playable[i]
        previous = ends.get(pitch)
        if previous is not None and start < previous[2]:
            if start <= previous[1]:  # together: the longer one (sorted first) stays
                continue
            previous[2] = start
        kept.append(i)
        ends[pitch] = playable[i]
    kept.sort()
    return [tuple(playable[i]) for i in kept], [velocities[i] for i in kept]


# --------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------


def drop_duplicates(pieces: Sequence[Piece]) -> list[Piece]:
    """The pieces without repeats: a piece whose notes (in the common key) equal an earlier
    piece's is dropped, so that no piece can sit in both the training and the test split.

    music21's chorale iterator yields 22 of its 371 chorales twice.
    """
    seen, unique = set(), []
    for piece in pieces:
        fingerprint = np.round(piece.to_common_key().notes, 4).tobytes()
        if fingerprint not in seen:
            seen.add(fingerprint)
            unique.append(piece)
    return unique


def split_pieces(
    pieces: Sequence[Piece], fractions: tuple[float, float] = (0.6, 0.2), seed: int = 0
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """Train / validation / test by piece (never inside a piece), from a seeded shuffle.

    ``fractions`` are the training and validation shares; the test set gets the rest
    (0.6 / 0.2 / 0.2 is close to JSB Chorales' 229 / 76 / 77).
    """
    order = np.random.default_rng(seed).permutation(len(pieces))
    n_train = int(round(fractions[0] * len(pieces)))
    n_val = int(round(fractions[1] * len(pieces)))
    chosen = [pieces[i] for i in order]
    return chosen[:n_train], chosen[n_train : n_train + n_val], chosen[n_train + n_val :]


# Splitting by tune. Bach harmonized many chorale tunes more than once: the 349 chorales hold
# about 230 tunes, so a split by piece puts re-harmonizations of one melody on both sides (27
# of the 70 test chorales of `split_pieces` share >= 90 % of their `melody_line` with a
# training chorale). A model can then score well by remembering melodies; `split_by_tune`
# keeps every tune on one side.

# Two melodies are the same tune from this `melody_similarity` up. Measured on the 349
# chorales (60,726 pairs): the pairs of different tunes fall off steeply with similarity
# (1,718 pairs in 0.5-0.6, 95 in 0.6-0.65, 14 in 0.65-0.7), then the count stays flat (about
# 14 pairs per 0.05) up to 0.9, and 179 pairs of re-harmonizations sit above 0.9. 0.7 cuts
# where the chance pairs end; the groups barely change between 0.7 and 0.8 (231 and 243).
SAME_TUNE_SIMILARITY = 0.7


def melody_line(piece: Piece) -> tuple[int, ...]:
    """The top voice on the quarter-note grid, in the common key: the highest pitch sounding
    at each frame, as semitones above the octave of its median (so that two versions an
    octave apart, e.g. one in G moved up a fourth to C, one in F moved down a fourth, give
    the same line); -1 in silent frames. For a chorale, its soprano: the tune."""
    roll = piano_roll(piece.to_common_key(), 1)
    sounding = roll.any(axis=1)
    if not sounding.any():
        return tuple([-1] * len(roll))
    top = NUM_PITCHES - 1 - np.argmax(roll[:, ::-1], axis=1) + PITCH_LOW
    octave = 12 * (int(np.median(top[sounding])) // 12)
    return tuple(np.where(sounding, top - octave, -1).tolist())


def melody_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The share of two melody lines that matches: ``2 * matched / (len(a) + len(b))``, with
    the matched frames found by difflib's longest-common-blocks alignment (a note added or
    held longer in one version shifts the rest without breaking the match)."""
    import difflib

    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def tune_groups(pieces: Sequence[Piece], threshold: float = SAME_TUNE_SIMILARITY) -> list[int]:
    """A group number per piece: pieces linked by a chain of melodies whose similarity is at
    least ``threshold`` share a group (connected components of the "same tune" graph).

    Comparing all pairs of the 349 chorales takes about a minute: difflib's cheap upper
    bounds (`quick_ratio`) skip most pairs before the alignment.
    """
    import difflib

    lines = [melody_line(piece) for piece in pieces]
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, line in enumerate(lines):
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(line)  # difflib caches information about the second sequence
        for j in range(i):
            matcher.set_seq1(lines[j])
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            if matcher.ratio() >= threshold:
                parent[root(i)] = root(j)
    roots = [root(i) for i in range(len(pieces))]
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [numbers[r] for r in roots]


def split_by_tune(
    pieces: Sequence[Piece],
    fractions: tuple[float, float] = (0.6, 0.2),
    seed: int = 0,
    threshold: float = SAME_TUNE_SIMILARITY,
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """Train / validation / test with every tune (`tune_groups`) wholly in one part.

    The groups are shuffled (seeded), then each goes to the part furthest below its share
    (``fractions`` of the pieces for training and validation, the rest for test).
    """
    groups = tune_groups(pieces, threshold)
    members: dict[int, list[Piece]] = {}
    for piece, group in zip(pieces, groups, strict=True):
        members.setdefault(group, []).append(piece)
    targets = np.array([fractions[0], fractions[1], 1 - sum(fractions)]) * len(pieces)
    parts: tuple[list[Piece], list[Piece], list[Piece]] = ([], [], [])
    for index in np.random.default_rng(seed).permutation(len(members)):
        shortfall = targets - np.array([len(part) for part in parts])
        parts[int(np.argmax(shortfall))].extend(members[int(index)])
    return parts


# --------------------------------------------------------------------------------------
# MIDI files (mido)
# --------------------------------------------------------------------------------------

_KEY_SHARPS = {
    "Cb": -7, "Gb": -6, "Db": -5, "Ab": -4, "Eb": -3, "Bb": -2, "F": -1, "C": 0, "G": 1,
    "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7,
    "Abm": -7, "Ebm": -6, "Bbm": -5, "Fm": -4, "Cm": -3, "Gm": -2, "Dm": -1, "Am": 0, "Em": 1,
    "Bm": 2, "F#m": 3, "C#m": 4, "G#m": 5, "D#m": 6, "A#m": 7,
}  # fmt: skip
_DRUM_CHANNEL = 9  # General MIDI channel 10


def key_to_sharps(name: str) -> int:
    """A key name (``C``, ``G``, ``Bb``, ``F#m``) as its key signature (sharps > 0, flats < 0).

    Raises:
        UserError: for a name that is not a major or minor key.
    """
    key = name.strip()
    key = key[:1].upper() + key[1:]
    if key.lower().endswith("minor") or key.lower().endswith(" min"):
        key = key.split()[0] + "m"
    key = key.replace(" major", "").replace("maj", "")
    if key not in _KEY_SHARPS:
        raise UserError(f"key {name!r}: expected a key such as C, G, Bb, F#, Am or F#m")
    return _KEY_SHARPS[key]


def _why(path: Path, error: Exception) -> str:
    """mido's reason a file is unreadable; its EOFError says nothing, so say it."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(error, EOFError):
        return "the file ends too early: truncated?"
    return str(error) or type(error).__name__


def read_midi(path: str | os.PathLike) -> Piece:
    """Read a standard MIDI file into a `Piece` (drum channel ignored).

    Raises:
        UserError: one line naming the file when it is not MIDI, is corrupt, has no
            pitched notes (empty or drums only) or is absurdly long.
    """
    import mido

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such MIDI file")
    try:
        midi = mido.MidiFile(path, clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise UserError(
            f"{path}: not a readable standard MIDI file ({_why(path, error)})"
        ) from None
    if midi.type == 2:
        raise UserError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    ticks_per_quarter = midi.ticks_per_beat or 480
    tempos, bar_lengths, key_sharps = [], [], None  # in file order: the first is kept
    notes, velocities, drum_notes, unreleased = [], [], 0, 0

    def close(pitch: int, start: int, velocity: int, end: int) -> None:
        if end > start:
            notes.append((pitch, start / ticks_per_quarter, end / ticks_per_quarter))
            velocities.append(velocity)

    for track in midi.tracks:
        # Each track counts its own ticks from 0, so a note is closed only by its own track
        # (keyed by channel and pitch across tracks, a part's unclosed note was ended by
        # another part's note-off: 26 of 59 real files read wrong notes).
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, pitch): start, velocity
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempos.append(mido.tempo2bpm(message.tempo))
            elif message.type == "time_signature":
                bar_lengths.append(message.numerator * 4 / message.denominator)
            elif message.type == "key_signature" and key_sharps is None:
                key_sharps = _KEY_SHARPS.get(message.key, 0)
            elif message.type in ("note_on", "note_off"):
                if message.channel == _DRUM_CHANNEL:
                    drum_notes += message.type == "note_on"
                    continue
                slot = (message.channel, message.note)
                # A note-off ends the sounding note; so does the same key struck again
                # (paired first-in first-out, one missing note-off shifted every later note).
                if slot in sounding:
                    close(message.note, *sounding.pop(slot), tick)
                if message.type == "note_on" and message.velocity > 0:
                    sounding[slot] = (tick, message.velocity)
            if tick / ticks_per_quarter > MAX_PIECE_QUARTERS or len(notes) > MAX_PIECE_NOTES:
                raise UserError(
                    f"{path}: absurd length (over {MAX_PIECE_QUARTERS} quarter notes or "
                    f"{MAX_PIECE_NOTES} notes); expected a piece of music"
                )
        unreleased += len(sounding)
    if not notes:
        what = "only drum notes (channel 10)" if drum_notes else "no notes"
        raise UserError(f"{path}: {what}; expected pitched notes")
    _warn_of_what_is_lost(path, notes, unreleased, tempos, bar_lengths)
    return Piece(
        name=path.name,
        notes=np.array(notes, dtype=np.float64),
        velocities=np.array(velocities),
        key_sharps=key_sharps or 0,
        quarters_per_bar=bar_lengths[0] if bar_lengths else 4.0,
        tempo_bpm=tempos[0] if tempos else 120.0,
    )


def _warn_of_what_is_lost(path: Path, notes: list, unreleased: int, tempos, bar_lengths) -> None:
    """One warning for what a `Piece` cannot keep of a MIDI file: notes never released,
    pitches off the piano (the models read 21-108) and later tempo or metre changes."""
    lost = []
    if unreleased:
        lost.append(f"{unreleased} note(s) never released (dropped)")
    off_piano = sum(not PITCH_LOW <= pitch <= PITCH_HIGH for pitch, _, _ in notes)
    if off_piano:
        lost.append(f"{off_piano} note(s) off the piano's {PITCH_LOW}-{PITCH_HIGH} (ignored)")
    for changes, what in (
        (set(np.round(tempos, 2)), "tempos"),
        (set(bar_lengths), "time signatures"),
    ):
        if len(changes) > 1:
            lost.append(f"{len(changes)} {what} (the first is kept)")
    if lost:
        warnings.warn(f"{path.name}: {'; '.join(lost)}", stacklevel=3)


@dataclass
class FolderReport:
    """What `load_midi_folder` read and what it skipped (file, one-line reason)."""

    pieces: list[Piece]
    skipped: list[tuple[str, str]]

    def summary(self) -> str:
        return f"read {len(self.pieces)} MIDI file(s), skipped {len(self.skipped)}"


def to_stderr(message: str) -> None:
    """Print a progress or warning line on standard error (where warnings belong)."""
    print(message, file=sys.stderr)


def load_midi_folder(
    folder: str | os.PathLike, warn: Callable[[str], None] | None = to_stderr
) -> FolderReport:
    """Read every ``*.mid`` / ``*.midi`` under ``folder``; skip and count the bad ones.

    Each skipped file is reported through ``warn`` with its reason, never stopping the run.

    Raises:
        UserError: when the folder does not exist or holds no readable MIDI file at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; expected a folder of .mid files")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    pieces, skipped = [], []
    for path in paths:
        try:
            pieces.append(read_midi(path))
        except UserError as error:
            skipped.append((str(path), str(error)))
            if warn:
                warn(f"skipped {error}")
    if not pieces:
        raise UserError(
            f"{folder}: no readable MIDI file among {len(paths)} .mid/.midi file(s)"
            + (f" (first problem: {skipped[0][1]})" if skipped else "")
        )
    return FolderReport(pieces, skipped)


def write_midi(piece: Piece, path: str | os.PathLike, program: int = 0) -> Path:
    """Write ``piece`` as a type-1 standard MIDI file (atomically); return the path.

    Args:
        program: General MIDI instrument (0 = acoustic grand piano, 52 = choir aahs).
    """
    import mido

    ticks = 480
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo_bpm), time=0))
    numerator, denominator = _time_signature(piece.quarters_per_bar)
    meta.append(mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator))
    key = {v: k for k, v in _KEY_SHARPS.items() if not k.endswith("m")}.get(piece.key_sharps, "C")
    meta.append(mido.MetaMessage("key_signature", key=key))
    midi.tracks.append(meta)

    events = []  # (tick, order, message): note-offs first at equal ticks
    for (pitch, start, end), velocity in zip(piece.notes, piece.velocities, strict=True):
        on, off = int(round(start * ticks)), int(round(end * ticks))
        if off <= on:
            continue
        events.append((on, 1, "note_on", int(pitch), int(np.clip(velocity, 1, 127))))
        events.append((off, 0, "note_off", int(pitch), 0))
    track = mido.MidiTrack()
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    now = 0
    for tick, _, kind, pitch, velocity in sorted(events):
        track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=0, time=tick - now))
        now = tick
    midi.tracks.append(track)
    with atomic_path(path) as tmp:
        midi.save(str(tmp))
    return Path(path)


def _time_signature(quarters_per_bar: float) -> tuple[int, int]:
    if float(quarters_per_bar).is_integer():
        return int(quarters_per_bar), 4
    return int(round(quarters_per_bar * 2)), 8


# --------------------------------------------------------------------------------------
# The music21 corpora (parsed once, cached)
# --------------------------------------------------------------------------------------


def _music21_cache() -> Path:
    import music21

    return cache_dir("music21", music21.VERSION_STR)


def _piece_from_score(score, name: str) -> Piece:
    """Notes of a music21 score (ties merged), its key signature, bar length and tempo."""
    notes = []
    for part in score.parts:
        for element in part.stripTies().flatten().notes:
            start = float(element.offset)
            end = start + float(element.quarterLength)
            if end <= start:  # grace notes
                continue
            notes.extend((p.midi, start, end) for p in element.pitches)
    flat = score.flatten()
    keys = flat.getElementsByClass("KeySignature")
    meters = flat.getElementsByClass("TimeSignature")
    tempos = flat.getElementsByClass("MetronomeMark")
    return Piece(
        name=name,
        notes=np.array(notes, dtype=np.float64).reshape(-1, 3),
        key_sharps=int(keys[0].sharps) if keys else 0,
        quarters_per_bar=float(meters[0].barDuration.quarterLength) if meters else 4.0,
        tempo_bpm=float(tempos[0].number) if tempos and tempos[0].number else 100.0,
    )


def _pieces_to_json(pieces: list[Piece]) -> str:
    rows = [
        {
            "name": p.name,
            "key_sharps": p.key_sharps,
            "quarters_per_bar": p.quarters_per_bar,
            "tempo_bpm": p.tempo_bpm,
            "notes": np.round(p.notes, 4).tolist(),
        }
        for p in pieces
    ]
    return json.dumps(rows, separators=(",", ":"))


def _pieces_from_json(text: str) -> list[Piece]:
    return [Piece(**row) for row in json.loads(text)]


def _cached(name: str, parse: Callable[[], list[Piece]]) -> list[Piece]:
    path = _music21_cache() / f"{name}.json"
    if path.exists():
        return _pieces_from_json(path.read_text())
    pieces = parse()
    write_text(path, _pieces_to_json(pieces))
    return pieces


def load_bach_chorales(limit: int | None = None, progress: bool = False) -> list[Piece]:
    """The four-part Bach chorales of music21, in its order: 349 distinct of the 371 that
    its iterator yields (see `drop_duplicates`).

    The whole corpus takes ~30-50 s to parse, once; later calls read the cache. ``limit``
    parses (and caches) only the first pieces, unless the whole corpus is cached already.
    """
    from music21 import corpus

    def parse(count: int | None) -> list[Piece]:
        names = list(corpus.chorales.Iterator(returnType="filename"))[:count]
        pieces = []
        for index, name in enumerate(names):
            if progress and index % 50 == 0:
                print(f"parsing Bach chorales: {index}/{len(names)}", flush=True)
            pieces.append(_piece_from_score(corpus.parse(name), name))
        return pieces

    if limit is not None and not (_music21_cache() / "chorales.json").exists():
        return drop_duplicates(_cached(f"chorales-first{limit}", lambda: parse(limit)))
    return drop_duplicates(_cached("chorales", lambda: parse(None)))[:limit]


def load_folk_songs(
    collections: Sequence[str] = FOLK_COLLECTIONS, limit: int | None = None, progress: bool = False
) -> list[Piece]:
    """Monophonic tunes from music21's Essen folk-song files (``essenFolksong/<name>.abc``).

    Each file is parsed once (~10 s per 300 tunes) and cached. ``collections`` names the
    files (all 32: see ``music21/corpus/essenFolksong``); ``limit`` caps the tunes returned.
    """
    from music21 import corpus

    pieces: list[Piece] = []
    for collection in collections:

        def parse(collection: str = collection) -> list[Piece]:
            if progress:
                print(f"parsing Essen folk songs: {collection}", flush=True)
            try:
                opus = corpus.parse(f"essenFolksong/{collection}")
            except Exception as error:  # music21 raises many kinds for a missing name
                raise UserError(
                    f"essenFolksong/{collection}: not in music21's corpus ({error})"
                ) from None
            scores = opus.scores if hasattr(opus, "scores") else [opus]
            return [
                _piece_from_score(score, f"{collection}/{score.metadata.title or index}")
                for index, score in enumerate(scores)
            ]

        pieces += [p for p in _cached(f"essen-{collection}", parse) if len(p.notes)]
        if limit is not None and len(pieces) >= limit:
            return pieces[:limit]
    return pieces
