"""Do generated pieces resemble the corpus? Pitch range, polyphony, density, pitch classes.

`compare_to_corpus` puts sets of pieces (generated ones, held-out real ones, a baseline's
samples) side by side with the training corpus; the pitch-class histogram distance is the
total variation distance (0 = same distribution, 1 = disjoint), measured in the common key
so that a piece in G and one in C compare by scale degree.

Example:
    >>> from rnnkit.data import music
    >>> train, val, test = music.split_pieces(music.load_bach_chorales(limit=16))
    >>> samples = [Piece("one chord", [(60, 0, 4), (64, 0, 4), (67, 0, 4)])]  # or generated ones
    >>> rows = compare_to_corpus({"generated": samples, "held-out chorales": test}, train)
    >>> [(row["pieces"], row["count"]) for row in rows]
    [('corpus', 10), ('generated', 1), ('held-out chorales', 3)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.data.music import Piece, piano_roll

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


CONSONANT_INTERVALS = (0, 3, 4, 5, 7, 8, 9)  # unison/octave, thirds, fourth, fifth, sixths


def piece_statistics(piece: Piece) -> dict[str, float]:
    """Pitch range, polyphony, note density and consonance of one piece.

    Returns:
        ``pitch_range`` (semitones), ``polyphony`` (mean sounding notes over the sounding
        sixteenth-note frames), ``notes_per_quarter`` and ``consonance`` (the share of
        pairs of notes sounding together whose interval is consonant, 1 when no pairs).
    """
    if len(piece.notes) == 0:
        return {"pitch_range": 0.0, "polyphony": 0.0, "notes_per_quarter": 0.0, "consonance": 1.0}
    roll = piano_roll(piece, steps_per_quarter=4)
    sounding = roll.sum(1)
    return {
        "pitch_range": float(piece.pitches.max() - piece.pitches.min()),
        "polyphony": float(sounding[sounding > 0].mean()) if (sounding > 0).any() else 0.0,
        "notes_per_quarter": len(piece.notes) / max(piece.length, 1e-9),
        "consonance": consonance(roll),
    }


def consonance(roll: np.ndarray) -> float:
    """Share of simultaneous note pairs (over all frames) a consonant interval apart."""
    # Pairs at distance d in one frame: the product of the roll with itself shifted by d.
    pairs_at = np.array(
        [(roll[:, d:] * roll[:, : roll.shape[1] - d]).sum() for d in range(1, roll.shape[1])]
    )
    total = pairs_at.sum()
    consonant = sum(
        pairs_at[d - 1] for d in range(1, roll.shape[1]) if d % 12 in CONSONANT_INTERVALS
    )
    return float(consonant / total) if total else 1.0


def pitch_class_histogram(pieces: Sequence[Piece]) -> np.ndarray:
    """Share of sounding time per pitch class (12 values adding to 1), in the common key."""
    histogram = np.zeros(12)
    for piece in pieces:
        common = piece.to_common_key()
        durations = common.notes[:, 2] - common.notes[:, 1]
        np.add.at(histogram, common.pitches % 12, durations)
    return histogram / max(histogram.sum(), 1e-12)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two distributions: 0 identical, 1 disjoint."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def compare_to_corpus(
    sets: dict[str, Sequence[Piece]], corpus: Sequence[Piece], corpus_name: str = "corpus"
) -> list[dict]:
    """One row per set of pieces (the corpus first): mean statistics and the distance.

    Returns:
        rows with ``pieces``, ``count``, the means over pieces of `piece_statistics`, and
        ``pitch_class_distance`` (total variation to the corpus histogram).
    """
    reference = pitch_class_histogram(corpus)
    rows = []
    for name, pieces in {corpus_name: corpus, **sets}.items():
        per_piece = [piece_statistics(p) for p in pieces if len(p.notes)]
        row: dict = {"pieces": name, "count": len(pieces)}
        for key in ("pitch_range", "polyphony", "notes_per_quarter", "consonance"):
            row[key] = float(np.mean([s[key] for s in per_piece])) if per_piece else 0.0
        row["pitch_class_distance"] = total_variation(pitch_class_histogram(pieces), reference)
        rows.append(row)
    return rows
