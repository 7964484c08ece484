"""Music: encodings, MIDI in and out, bad files, the models' probabilities, learning, CLI.

Every MIDI file here is made by the test; only one test parses real chorales (two of them).
"""

from __future__ import annotations

import itertools
import json
import shutil

import mido
import numpy as np
import pytest
import torch
from resume_support import check_resume_of_a_killed_run

from rnnkit.apps.music import workflow
from rnnkit.apps.music.models import BernoulliOutput, MADEOutput, NADEOutput, PianoRollNet
from rnnkit.apps.music.piano_roll import (
    LONG_PIECE,
    WINDOW,
    IndependentBernoulli,
    PianoRollConfig,
    PianoRollLM,
    PitchMarkov,
    compare_to_baselines,
    evaluate_piano_roll,
    per_step,
    piano_roll_scores,
    training_windows,
)
from rnnkit.apps.music.render import plot_piano_roll, render_wav
from rnnkit.apps.music.stats import compare_to_corpus, pitch_class_histogram, total_variation
from rnnkit.apps.music.tokens import TokenConfig, TokenLM, evaluate_tokens
from rnnkit.cli import main
from rnnkit.data import music
from rnnkit.data.music import Piece
from rnnkit.engine import TrainConfig
from rnnkit.errors import UserError

# Triads of C major as MIDI pitches in four voices (bass, tenor, alto, soprano).
CHORDS = {
    "I": (48, 55, 64, 72), "IV": (53, 57, 65, 72), "V": (43, 55, 62, 71),
    "vi": (45, 57, 64, 72), "ii": (50, 57, 65, 74),
}  # fmt: skip
PROGRESSIONS = [["I", "IV", "V", "I"], ["I", "vi", "ii", "V"], ["vi", "IV", "I", "V"]]


def chorale_like(seed: int, bars: int = 6) -> Piece:
    """Four-voice chord progressions, one chord per quarter note, each held 1 or 2 beats."""
    rng = np.random.default_rng(seed)
    notes, time = [], 0.0
    for _ in range(bars):
        for chord in PROGRESSIONS[rng.integers(len(PROGRESSIONS))]:
            length = float(rng.choice([1.0, 2.0]))
            notes += [(p, time, time + length) for p in CHORDS[chord]]
            time += length
    return Piece(name=f"synthetic{seed}", notes=np.array(notes))


def scale_tune(seed: int) -> Piece:
    """A monophonic tune stepping through the C major scale, eighth and quarter notes."""
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    notes, time, degree = [], 0.0, int(rng.integers(8))
    for _ in range(24):
        length = float(rng.choice([0.5, 1.0]))
        notes.append((scale[degree], time, time + length))
        degree = int(np.clip(degree + rng.choice([-1, 1]), 0, 7))
        time += length
    return Piece(name=f"tune{seed}", notes=np.array(notes), quarters_per_bar=3.0)


def harmonized(seed: int, bass_below: int = 12) -> Piece:
    """`scale_tune(seed)` as the top voice over a lower voice ``bass_below`` semitones down:
    the same seed with another ``bass_below`` is a re-harmonization of the same tune."""
    tune = scale_tune(seed)
    lower = tune.notes.copy()
    lower[:, 0] -= bass_below
    return Piece(name=f"tune{seed}/{bass_below}", notes=np.vstack([tune.notes, lower]))


def write_raw_midi(path, messages, ticks_per_beat=480) -> None:
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack(messages))
    midi.save(path)


# --- representations -----------------------------------------------------------------


def test_midi_round_trip_keeps_notes_key_meter_and_tempo(tmp_path):
    piece = Piece(
        name="x",
        notes=np.array([(60, 0, 1), (64, 0, 1.5), (67, 1, 2.25), (40, 2, 4)]),
        velocities=np.array([90, 70, 60, 100]),
        key_sharps=-2,
        quarters_per_bar=3.0,
        tempo_bpm=72,
    )
    again = music.read_midi(music.write_midi(piece, tmp_path / "x.mid"))
    np.testing.assert_allclose(again.notes, piece.notes)
    np.testing.assert_array_equal(again.velocities, piece.velocities)
    assert (again.key_sharps, again.quarters_per_bar) == (-2, 3.0)
    assert again.tempo_bpm == pytest.approx(72, abs=0.01)


def test_piano_roll_samples_notes_at_frame_starts_and_converts_back():
    piece = Piece(name="x", notes=np.array([(60, 0, 2), (64, 0.5, 1), (67, 1.5, 3), (20, 0, 1)]))
    roll = music.piano_roll(piece, steps_per_quarter=1)
    assert roll.shape == (3, 88)
    assert roll[:, 60 - 21].tolist() == [1, 1, 0]
    assert roll[:, 64 - 21].tolist() == [0, 0, 0]  # the eighth note misses every grid point
    assert roll[:, 67 - 21].tolist() == [0, 0, 1]  # sounds from its first grid point, beat 2
    assert roll.sum() == 3  # pitch 20 lies below the piano and is left out
    fine = music.piano_roll(piece, steps_per_quarter=2)
    np.testing.assert_array_equal(music.piano_roll(music.roll_to_piece(fine, 2), 2), fine)


def test_melody_tokens_round_trip_a_tune_on_the_grid():
    tune = scale_tune(0)
    tune.notes[5:, 1:] += 1.0  # a quarter rest after the fifth note
    tokens = music.melody_encode(tune, steps_per_quarter=4)
    assert tokens[0] >= music.MELODY_FIRST_PITCH and music.MELODY_REST in tokens
    np.testing.assert_allclose(music.melody_decode(tokens, 4).notes, tune.notes)


def test_performance_events_round_trip_notes_and_velocities():
    piece = Piece(
        name="x",
        notes=np.array([(60, 0, 1), (64, 0.5, 3.5), (67, 1, 2), (60, 1, 2)]),
        velocities=np.array([40, 100, 100, 64]),
        tempo_bpm=120,
    )
    codec = music.EventCodec()
    tokens = codec.encode(piece)
    assert max(tokens) < codec.vocab_size
    assert codec.describe(tokens[0]).startswith("velocity")
    again = codec.decode(tokens, tempo_bpm=120)
    np.testing.assert_allclose(again.notes, piece.notes)
    assert np.abs(again.velocities - piece.velocities).max() <= 127 / 32  # one velocity bin


def test_a_note_struck_twice_at_one_moment_is_one_note_and_writes_back(tmp_path):
    # sampled event streams can switch on a sounding pitch again in the same step (or
    # release it and strike it again there); the decoder made two overlapping notes of it,
    # which MIDI cannot hold: `music generate` stopped with "the written MIDI file does not
    # read back"
    codec = music.EventCodec()
    shift = lambda steps: codec.first_shift + steps - 1  # noqa: E731
    c4, e4 = 60 - music.PITCH_LOW, 64 - music.PITCH_LOW
    off = lambda column: music.NUM_PITCHES + column  # noqa: E731
    tokens = [c4, c4, e4, shift(50), c4, shift(50), off(c4), e4, off(e4), e4, shift(50)]
    piece = codec.decode(tokens, tempo_bpm=120)
    assert piece.notes.tolist() == [[60, 0, 1], [64, 0, 2], [60, 1, 2], [64, 2, 3]]
    back = music.read_midi(music.write_midi(piece, tmp_path / "x.mid"))
    assert len(back.notes) == len(piece.notes)


def test_event_grammar_releases_only_sounding_notes():
    from rnnkit.apps.music.models import TokenNet
    from rnnkit.apps.music.tokens import EventGrammar

    codec = music.EventCodec()
    torch.manual_seed(0)
    net = TokenNet(codec.vocab_size, "gru", 8, 16).eval()  # untrained: offs fall anywhere
    free = net.sample(600, [], generator=torch.Generator().manual_seed(0))
    grammar = EventGrammar(codec)
    ruled = net.sample(600, [], generator=torch.Generator().manual_seed(0), grammar=grammar)

    def silent_releases(tokens):
        sounding, count = set(), 0
        for token in tokens:
            if token < music.NUM_PITCHES:
                sounding.add(token)
            elif token < codec.first_shift:
                count += token - music.NUM_PITCHES not in sounding
                sounding.discard(token - music.NUM_PITCHES)
        return count

    assert silent_releases(free) > 50 and silent_releases(ruled) == 0
    assert sum(music.NUM_PITCHES <= t < codec.first_shift for t in ruled) > 0  # still some


def test_transposition_to_the_common_key():
    for sharps in range(-7, 8):
        shift = music.shift_to_common_key(sharps)
        assert -6 <= shift <= 5 and (7 * sharps + shift) % 12 == 0
    in_g = Piece(name="g", notes=np.array([(67, 0, 1), (71, 0, 1), (74, 0, 1)]), key_sharps=1)
    in_c = in_g.to_common_key()
    assert in_c.pitches.tolist() == [72, 76, 79] and in_c.key_sharps == 0
    assert music.key_to_sharps("F#m") == 3 and music.key_to_sharps("Bb") == -2
    with pytest.raises(UserError, match="expected a key"):
        music.key_to_sharps("H")


def test_split_is_by_piece():
    pieces = [chorale_like(i, bars=1) for i in range(20)]
    train, val, test = music.split_pieces(pieces, seed=3)
    names = [p.name for p in train + val + test]
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert sorted(names) == sorted(p.name for p in pieces)  # each piece in exactly one part


def test_a_tune_harmonized_again_in_another_key_and_octave_is_the_same_tune():
    tune = harmonized(0)
    # Up a fifth to G major, another lower voice: G -> C moves it up a fourth, an octave
    # above the first version in C.
    again = harmonized(0, bass_below=9).transpose(7)
    assert again.key_sharps == 1
    assert music.melody_similarity(music.melody_line(tune), music.melody_line(again)) == 1.0
    others = [harmonized(seed) for seed in range(1, 8)]
    groups = music.tune_groups([tune, *others, again])
    assert groups[0] == groups[-1]
    assert len(set(groups[:-1])) == 8  # different random-walk tunes stay apart


def test_split_by_tune_keeps_every_tune_on_one_side():
    # 20 tunes, every third one harmonized 3 times: 34 pieces.
    pieces = [
        harmonized(seed, bass_below) for seed in range(20) for bass_below in
        ((12, 9, 16) if seed % 3 == 0 else (12,))
    ]  # fmt: skip
    train, val, test = music.split_by_tune(pieces, seed=1)
    assert sorted(p.name for p in train + val + test) == sorted(p.name for p in pieces)
    tune_of = {p.name: p.name.split("/")[0] for p in pieces}
    sides = [{tune_of[p.name] for p in part} for part in (train, val, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert 0.5 <= len(train) / len(pieces) <= 0.75 and len(val) >= 4 and len(test) >= 4
    with pytest.raises(UserError, match="--split tune: the 6 pieces share too few"):
        workflow.split([harmonized(0, b) for b in (5, 7, 9, 12, 14, 16)], by="tune")


def test_duplicates_are_dropped_before_splitting():
    piece = chorale_like(0, bars=2)
    same_in_g = Piece(name="copy in G", notes=piece.transpose(-5).notes, key_sharps=1)
    other = chorale_like(1, bars=2)
    kept = music.drop_duplicates([piece, other, same_in_g, piece])
    assert [p.name for p in kept] == ["synthetic0", "synthetic1"]


def test_chorales_are_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    chorales = music.load_bach_chorales(limit=2)
    assert len(chorales) == 2 and chorales[0].name == "bach/bwv269"
    roll = music.piano_roll(chorales[0])
    assert roll.shape[1] == 88 and 3 <= roll.sum(1).mean() <= 4  # four voices, some unisons
    import music21.corpus

    monkeypatch.setattr(music21.corpus, "parse", lambda *a, **k: pytest.fail("parsed again"))
    np.testing.assert_array_equal(music.load_bach_chorales(limit=2)[0].notes, chorales[0].notes)


# --- bad input -------------------------------------------------------------------------


def test_each_track_closes_its_own_notes_and_what_is_lost_is_said(tmp_path):
    # Two parts on one channel (as music21 writes them): the first leaves a C4 unreleased,
    # the second plays C4 from beat 1 to 2. Keyed by channel and pitch across tracks, the
    # second part's note-off ended the first part's note (C4 from 0 to 2).
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    first, second = mido.MidiTrack(), mido.MidiTrack()
    first += [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0),
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.Message("note_on", note=64, velocity=80, time=0),
        mido.Message("note_off", note=64, velocity=0, time=960),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(180), time=0),
        mido.Message("note_on", note=12, velocity=80, time=0),  # below the piano
        mido.Message("note_off", note=12, velocity=0, time=480),
    ]
    second += [
        mido.Message("note_on", note=60, velocity=80, time=480),
        mido.Message("note_off", note=60, velocity=0, time=480),
    ]
    midi.tracks += [first, second]
    midi.save(tmp_path / "parts.mid")
    with pytest.warns(UserWarning) as caught:
        piece = music.read_midi(tmp_path / "parts.mid")
    assert sorted(map(tuple, piece.notes.tolist())) == [
        (12.0, 2.0, 3.0),
        (60.0, 1.0, 2.0),
        (64.0, 0.0, 2.0),
    ]
    assert str(caught[0].message) == (
        "parts.mid: 1 note(s) never released (dropped); 1 note(s) off the piano's 21-108 "
        "(ignored); 2 tempos (the first is kept)"
    )


def test_a_note_struck_again_ends_the_one_that_sounds(tmp_path):
    # A missing note-off, then the same key again: paired first-in first-out, every later
    # note of that key began at the previous strike (one Mozart part: 14 such notes).
    write_raw_midi(
        tmp_path / "restrike.mid",
        [
            mido.Message("note_on", note=60, velocity=80, time=0),
            mido.Message("note_on", note=60, velocity=80, time=480),
            mido.Message("note_off", note=60, velocity=0, time=480),
            mido.Message("note_on", note=60, velocity=80, time=480),
            mido.Message("note_off", note=60, velocity=0, time=480),
        ],
    )
    piece = music.read_midi(tmp_path / "restrike.mid")
    assert piece.notes.tolist() == [[60.0, 0.0, 1.0], [60.0, 1.0, 2.0], [60.0, 3.0, 4.0]]


def test_long_pieces_train_as_windows_and_short_ones_whole():
    short, long = np.zeros((LONG_PIECE, 88)), np.ones((2 * WINDOW + 5, 88))
    windows = training_windows([short, long])
    assert [len(w) for w in windows] == [LONG_PIECE, WINDOW, WINDOW, 5]
    assert windows[0] is short and np.concatenate(windows[1:]).sum() == long.sum()


def test_bad_midi_files_are_skipped_and_counted(tmp_path):
    good = [
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.Message("note_off", note=60, velocity=0, time=480),
    ]
    write_raw_midi(tmp_path / "good.mid", good)
    (tmp_path / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (tmp_path / "text.midi").write_text("not a MIDI file at all")
    write_raw_midi(tmp_path / "empty.mid", [mido.MetaMessage("end_of_track", time=0)])
    write_raw_midi(
        tmp_path / "drums.mid",
        [
            mido.Message("note_on", channel=9, note=36, velocity=100, time=0),
            mido.Message("note_off", channel=9, note=36, velocity=0, time=240),
        ],
    )
    write_raw_midi(
        tmp_path / "endless.mid",
        [
            mido.Message("note_on", note=60, velocity=80, time=0),
            mido.Message("note_off", note=60, velocity=0, time=480 * 10**6),
        ],
    )
    messages = []
    report = music.load_midi_folder(tmp_path, warn=messages.append)
    assert [p.name for p in report.pieces] == ["good.mid"]
    assert len(report.skipped) == 5 and len(messages) == 5
    reasons = " ".join(messages)
    for expected in (
        "corrupt.mid: not a readable",
        "text.midi: not a readable",
        "empty.mid: no notes",
        "drums.mid: only drum notes",
        "endless.mid: absurd",
    ):
        assert expected in reasons
    assert all("\n" not in m for m in messages)
    assert report.summary() == "read 1 MIDI file(s), skipped 5"
    (tmp_path / "good.mid").unlink()
    with pytest.raises(UserError, match="no readable MIDI file among 5"):
        music.load_midi_folder(tmp_path, warn=None)


# --- output layers: exact, normalized probabilities ------------------------------------


@pytest.mark.parametrize("layer", [BernoulliOutput, NADEOutput, MADEOutput])
def test_output_layers_give_normalized_frame_probabilities(layer):
    torch.manual_seed(0)
    output = layer(3, 5).double()
    for p in output.parameters():  # non-trivial weights, so a leak would show
        torch.nn.init.normal_(p, std=0.7)
    hidden = torch.randn(2, 3, dtype=torch.float64)
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)), dtype=torch.float64)
    log_probs = output.log_prob(hidden[:, None, :].expand(2, 32, 3), frames.expand(2, 32, 5))
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("layer", [NADEOutput, MADEOutput])
def test_autoregressive_outputs_see_only_lower_pitches(layer):
    torch.manual_seed(1)
    output = layer(3, 6).double()
    torch.nn.init.normal_(output.A if layer is MADEOutput else output.W, std=1.0)
    hidden = torch.randn(3, dtype=torch.float64)
    frame = torch.tensor([1.0, 0, 1, 1, 0, 1], dtype=torch.float64)
    logits = output.conditional_logits(hidden, frame)
    for i in range(6):
        changed = frame.clone()
        changed[i:] = 1 - changed[i:]  # flip pitch i and everything above it
        assert torch.allclose(output.conditional_logits(hidden, changed)[i], logits[i])
        if i > 0:  # ...while flipping a lower pitch does change it
            lower = frame.clone()
            lower[:i] = 1 - lower[:i]
            assert not torch.allclose(output.conditional_logits(hidden, lower)[i], logits[i])


@pytest.mark.parametrize("output", ["nade", "made", "bernoulli"])
def test_piano_roll_net_gradients_pass_gradcheck(output):
    torch.manual_seed(0)
    net = PianoRollNet(6, "gru", hidden_size=4, dropout=0.0, output=output, nade_size=3).double()
    # Frames enter as RNN inputs and as the NADE/MADE conditioning: check both paths at once.
    frames = torch.rand(2, 5, 6, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 3])
    assert torch.autograd.gradcheck(lambda f: net.log_prob(f, lengths), (frames,))
    log_prob = net.log_prob((frames > 0.5).double(), lengths)
    assert (log_prob[1, 3:] == 0).all() and (log_prob[1, :3] < 0).all()  # padding scores 0


# --- baselines, learning, generation ---------------------------------------------------


def test_baselines_compute_the_likelihoods_they_claim():
    rolls = [music.piano_roll(chorale_like(i)) for i in range(4)]
    bernoulli = IndependentBernoulli().fit(rolls)
    frames = np.concatenate(rolls)
    p = bernoulli.prob_on
    manual = -(frames * np.log(p) + (1 - frames) * np.log(1 - p)).sum(1).mean()
    assert bernoulli.nll_per_step(rolls) == pytest.approx(manual)
    markov = PitchMarkov().fit(rolls)
    assert markov.nll_per_step(rolls) < bernoulli.nll_per_step(rolls)  # notes are held


@pytest.fixture(scope="module")
def trained_roll_model():
    pieces = [chorale_like(i) for i in range(30)]
    train, val, test = music.split_pieces(pieces)
    model = PianoRollLM(PianoRollConfig(cell="gru", hidden_size=32, output="made", nade_size=16))
    history = model.fit(train, val, TrainConfig(epochs=25, lr=1e-2, progress=False))
    return model, history, train, test


def test_piano_roll_model_learns_and_beats_both_baselines(trained_roll_model):
    model, history, train, test = trained_roll_model
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    rows = {r["model"]: r["nll_per_step"] for r in evaluate_piano_roll({"gru": model}, train, test)}
    assert rows["gru"] < rows["frame repeat (pitch Markov chain)"] - 1.0
    assert rows["gru"] < rows["independent Bernoulli"] - 2.0


def test_model_minus_baseline_interval_over_test_pieces(trained_roll_model):
    model, _, train, test = trained_roll_model
    scores = piano_roll_scores({"gru": model}, train, test)
    assert len(scores["gru"]) == len(test)
    assert per_step(scores["gru"]) == pytest.approx(model.nll_per_step(test))
    rows = {r["baseline"]: r for r in compare_to_baselines(scores, "gru")}
    markov = rows["frame repeat (pitch Markov chain)"]
    expected = per_step(scores["gru"]) - per_step(scores["frame repeat (pitch Markov chain)"])
    assert markov["difference"] == pytest.approx(expected)
    assert markov["low"] <= markov["difference"] <= markov["high"] < 0
    assert {r["verdict"] for r in rows.values()} == {"beats"}  # lower NLL, interval below 0


def test_training_is_reproducible():
    pieces = [chorale_like(i, bars=2) for i in range(6)]
    runs = []
    for _ in range(2):
        model = PianoRollLM(PianoRollConfig(hidden_size=16, nade_size=8, transpose_augment=2))
        runs.append(model.fit(pieces, None, TrainConfig(epochs=2, seed=5, progress=False)))
    assert runs[0] == runs[1]


def test_generation_writes_midi_that_parses_back(trained_roll_model, tmp_path):
    model, _, train, test = trained_roll_model
    piece = model.generate(bars=4, primer=test[0], primer_bars=1, seed=3, key_sharps=2)
    assert piece.length <= 20 and len(piece.notes) > 0
    assert piece.key_sharps == 2
    again = music.read_midi(music.write_midi(piece, tmp_path / "g.mid"))
    np.testing.assert_allclose(again.notes, piece.notes)
    same = model.generate(bars=4, primer=test[0], primer_bars=1, seed=3, key_sharps=2)
    np.testing.assert_array_equal(same.notes, piece.notes)  # a seed fixes the sample
    # The first bar is the primer, moved from C major to D major (two sharps).
    first_bar = music.piano_roll(piece)[:4]
    np.testing.assert_array_equal(first_bar, music.piano_roll(test[0].transpose(2))[:4])
    # Cold samples keep to the corpus' chords: pitch classes of C major only.
    cold = model.generate(bars=4, seed=0, temperature=0.5)
    assert set(cold.pitches % 12) <= {0, 2, 4, 5, 7, 9, 11}


def test_statistics_tell_corpus_like_pieces_from_noise():
    corpus = [chorale_like(i) for i in range(10)]
    like = [chorale_like(i) for i in range(10, 14)]
    noise = workflow.bernoulli_samples(corpus, 3, 24)  # right pitches, random combinations
    rng = np.random.default_rng(0)
    chromatic = [
        Piece(
            name="chromatic",
            notes=np.array([(p, t, t + 1) for t in range(24) for p in rng.integers(48, 72, 4)]),
        )
    ]
    rows = compare_to_corpus({"like": like, "noise": noise, "chromatic": chromatic}, corpus)
    rows = {r["pieces"]: r for r in rows}
    assert rows["corpus"]["pitch_class_distance"] == 0
    assert (
        rows["like"]["pitch_class_distance"]
        < 0.05
        < 0.2
        < rows["chromatic"]["pitch_class_distance"]
    )
    assert rows["like"]["consonance"] == 1.0  # triads only
    assert rows["noise"]["consonance"] < 0.9 and rows["chromatic"]["consonance"] < 0.8
    assert rows["like"]["polyphony"] == pytest.approx(4.0)
    assert total_variation(pitch_class_histogram(like), pitch_class_histogram(like)) == 0


def test_melody_model_beats_the_unigram_baseline():
    tunes = [scale_tune(i) for i in range(40)]
    train, val, test = music.split_pieces(tunes)
    model = TokenLM(TokenConfig(encoding="melody", hidden_size=32, embedding_size=16))
    model.fit(train, val, TrainConfig(epochs=12, lr=1e-2, progress=False))
    rows = {r["model"]: r for r in evaluate_tokens(model, train, test)}
    assert rows["LSTM (melody)"]["nll_per_token"] < rows["unigram"]["nll_per_token"] - 0.3
    tune = model.generate(bars=2, temperature=0.8, top_k=5, top_p=0.95, seed=1)
    assert len(tune.notes) > 0 and tune.length <= 8  # two bars of 4/4


def test_event_model_samples_the_requested_length():
    pieces = [chorale_like(i, bars=2) for i in range(6)]
    model = TokenLM(TokenConfig(encoding="events", hidden_size=16, embedding_size=8))
    model.fit(pieces, None, TrainConfig(epochs=1, progress=False))
    piece = model.generate(bars=1, tempo_bpm=120, seed=0)
    assert piece.tempo_bpm == 120


def test_piano_roll_png_and_audio(tmp_path, monkeypatch):
    piece = chorale_like(0, bars=2)
    png = plot_piano_roll(piece, tmp_path / "roll.png", primer_quarters=2)
    assert png.read_bytes()[:4] == b"\x89PNG"
    midi = music.write_midi(piece, tmp_path / "x.mid")
    if shutil.which("fluidsynth"):
        wav, message = render_wav(midi, tmp_path / "x.wav")
        if wav is not None:
            import soundfile

            assert soundfile.info(wav).duration > 1.0
    monkeypatch.setattr(shutil, "which", lambda name: None)
    wav, message = render_wav(midi, tmp_path / "y.wav")
    assert wav is None and "apt-get install fluidsynth" in message
    assert not (tmp_path / "y.wav").exists()


# --- command line ------------------------------------------------------------------------


def test_cli_train_generate_evaluate_on_a_midi_folder(tmp_path, capsys):
    data = tmp_path / "midi"
    for i in range(12):
        music.write_midi(chorale_like(i, bars=2), data / f"piece{i}.mid")
    (data / "broken.mid").write_bytes(b"junk")
    model = tmp_path / "model"
    assert main(["music", "train", "--data", str(data), "--out", str(model), "--quick"]) == 0
    out, err = capsys.readouterr()
    assert "skipped" in err and "read 12 MIDI file(s), skipped 1" in err  # warnings: stderr
    assert "frame repeat" in out and (model / "metrics.json").exists()
    assert "model minus baseline, NLL per step" in out  # train says whether it beats them
    assert (
        main(
            [
                "music",
                "generate",
                "--model",
                str(model),
                "--quick",
                "--no-audio",
                "--primer",
                "test:0",
                "--key",
                "G",
            ]
        )
        == 0
    )
    assert music.read_midi(model / "samples" / "sample_1.mid").key_sharps == 1
    assert (model / "samples" / "sample_1.png").exists()
    assert main(["music", "evaluate", "--model", str(model)]) == 0  # its own folder
    out = capsys.readouterr().out
    assert "independent Bernoulli" in out and f"negative log-likelihood on {data}, " in out
    assert main(["music", "generate", "--model", str(model), "--primer", "nope.mid"]) == 2
    assert capsys.readouterr().err == "rnnkit: error: nope.mid: no such MIDI file\n"


def test_cli_evaluate_scores_a_split_by_piece_and_one_by_tune_with_intervals(tmp_path, capsys):
    data = tmp_path / "midi"
    for seed in range(12):  # 12 tunes, 4 of them harmonized twice
        for bass_below in (12, 9) if seed % 3 == 0 else (12,):
            music.write_midi(harmonized(seed, bass_below), data / f"t{seed}_{bass_below}.mid")
    for split in ("piece", "tune"):
        argv = ["music", "train", "--data", str(data), "--quick", "--split", split]
        assert main([*argv, "--out", str(tmp_path / split)]) == 0
    out = tmp_path / "results"
    argv = ["music", "evaluate", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--model", str(tmp_path / "piece"), "--model", str(tmp_path / "tune")]) == 0
    printed = capsys.readouterr().out
    assert "paired-bootstrap interval" in printed
    results = json.loads((out / "metrics.json").read_text())
    assert {r["split"] for r in results["rows"]} == {"by piece", "by tune"}
    for row in results["comparisons"]:
        assert row["low"] <= row["difference"] <= row["high"]
        assert row["verdict"] in ("beats", "ties", "loses")
    assert len(results["comparisons"]) == 4  # 2 models x 2 baselines
    # Only the split by piece can hold test pieces whose tune is in training.
    assert {r["split"] for r in results["seen_tunes"]} == {"by piece"}
    assert sum(r["pieces"] for r in results["seen_tunes"]) == results["rows"][0]["test_pieces"]


def test_cli_bad_input_is_one_line_and_status_2(tmp_path, capsys, refused_at_parsing):
    assert (
        main(["music", "train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "nowhere" in error
    assert main(["music", "generate", "--model", str(tmp_path)]) == 2
    assert "model.safetensors: not found" in capsys.readouterr().err
    # checked at parsing, before the model is read
    error = refused_at_parsing(["music", "generate", "--model", str(tmp_path), "--top-p", "1.5"])
    assert "--top-p: expected a number in (0, 1], got 1.5" in error


# The README's chorale table (`rnnkit music train [--split tune]`, then `rnnkit music
# evaluate`, seed 0, CPU, 2026-12-01): GRU + MADE, NLL per time step on the test pieces. A
# rerun matches within README_TOLERANCE nats (the same machine gives the same digits; other
# CPUs and thread counts change the float sums slightly).
README_NLL = {"piece": 6.334, "tune": 6.275}
README_TOLERANCE = 0.05


@pytest.mark.slow
@pytest.mark.parametrize("split", ["piece", "tune"])
def test_chorale_model_reproduces_the_readme_table(split):
    """GRU + MADE on the 349 chorales, the README's recipe (40 epochs, seed 0), split by piece
    or by tune: the README's NLL per step within tolerance, and both baselines beaten with a
    paired-bootstrap interval over test pieces that excludes zero."""
    result = workflow.train("chorales", epochs=40, warn=None, split_by=split)
    rows = {r["model"]: r["nll_per_step"] for r in result.rows}
    assert rows["GRU + MADE output"] == pytest.approx(README_NLL[split], abs=README_TOLERANCE)
    assert [r["verdict"] for r in result.comparisons] == ["beats", "beats"]


@pytest.mark.slow
def test_folk_melody_model_beats_the_ngram_baselines():
    """LSTM on ~760 Essen folk tunes (melody tokens, sixteenth grid), 3 epochs."""
    result = workflow.train("folk", cell="lstm", epochs=3, warn=None)
    rows = {r["model"]: r["nll_per_token"] for r in result.rows}
    assert rows["LSTM (melody)"] < rows["bigram"] - 0.05 < rows["unigram"] - 0.05


def test_cli_resume_continues_a_killed_run_bit_for_bit(tmp_path, capsys, monkeypatch):
    data = tmp_path / "midi"
    for i in range(8):
        music.write_midi(chorale_like(i, bars=2), data / f"piece{i}.mid")
    train = ["music", "train", "--data", str(data), "--quick", "--device", "cpu"]
    assert check_resume_of_a_killed_run(train, tmp_path, capsys, monkeypatch) == [3]


# --- audit fixes: options, output folders, small corpora, event lengths, messages ----------


@pytest.mark.parametrize(
    "option",
    [
        ["--tempo", "-5"],
        ["--tempo", "0.001"],  # below what MIDI's 24-bit tempo can store
        ["--tempo", "0"],
        ["--tempo", "5000"],
        ["--primer-bars", "0"],
        ["--primer-bars", "-2"],
        ["--bars", "0"],
        ["--seconds", "-1"],
        ["--temperature", "-1"],
        ["--top-k", "0"],
        ["--top-p", "0"],
        ["--count", "0"],
        ["--seed", "-1"],
    ],
)
def test_cli_generate_checks_numeric_options_at_parsing(option, refused_at_parsing):
    error = refused_at_parsing(["music", "generate", "--model", "nowhere", *option])
    assert f"argument {option[0]}: expected" in error


def test_cli_train_checks_numeric_options_at_parsing(refused_at_parsing):
    for option in (["--lr", "0"], ["--transpose", "-1"], ["--hidden-size", "0"]):
        error = refused_at_parsing(["music", "train", "--data", "nowhere", *option])
        assert f"argument {option[0]}: expected" in error


def test_generate_refuses_a_tempo_midi_cannot_store_rather_than_using_the_default(tmp_path):
    for tempo in (0.0, -5.0, 0.001, 5000.0):
        with pytest.raises(UserError, match=f"--tempo {tempo:g}: expected 4 to 1000"):
            workflow.generate(tmp_path / "model", tmp_path / "out", tempo_bpm=tempo)
    with pytest.raises(UserError, match="--primer-bars 0: expected a positive"):
        workflow.generate(tmp_path / "model", tmp_path / "out", primer_bars=0)


def test_cli_generate_with_a_file_where_the_samples_folder_goes_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "samples").write_text("not a folder")  # the default output folder
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in ([], ["--out", str(blocker)], ["--out", str(blocker / "below")]):
        assert main(["music", "generate", "--model", str(model), *out]) == 2
        error = capsys.readouterr().err
        assert error.startswith("rnnkit: error: ") and error.count("\n") == 1
        assert "is a file" in error
    assert blocker.read_text() == "x"


def test_cut_after_steps_shortens_the_time_shift_that_crosses_the_end():
    from rnnkit.apps.music.tokens import _cut_after_steps

    codec = music.EventCodec()
    shift = lambda steps: codec.first_shift + steps - 1  # noqa: E731
    tokens = [60, shift(30), 61, shift(50), 62, shift(40), 63]
    assert _cut_after_steps(tokens, 100, codec) == [60, shift(30), 61, shift(50), 62, shift(20)]
    assert _cut_after_steps(tokens, 80, codec) == [60, shift(30), 61, shift(50)]
    assert _cut_after_steps(tokens, 500, codec) == tokens  # too short: kept whole


def test_event_model_stops_at_the_requested_bars_and_seconds():
    pieces = [chorale_like(i, bars=2) for i in range(6)]
    model = TokenLM(TokenConfig(encoding="events", hidden_size=16, embedding_size=8))
    model.fit(pieces, None, TrainConfig(epochs=1, progress=False))
    # Untrimmed, these samples last 16 to 23 quarter notes (64-token chunks).
    lengths = [model.generate(bars=1, tempo_bpm=120, seed=seed).length for seed in range(3)]
    assert max(lengths) == pytest.approx(4.0)  # 1 bar of 4/4; a silent sample has length 0


def test_training_on_too_few_pieces_says_its_scores_are_training_scores(tmp_path, capsys):
    data = tmp_path / "midi"
    for i in range(3):
        music.write_midi(chorale_like(i, bars=2), data / f"piece{i}.mid")
    model = tmp_path / "model"
    argv = ["music", "train", "--data", str(data), "--quick", "--epochs", "1"]
    assert main([*argv, "--out", str(model)]) == 0
    out, err = capsys.readouterr()
    assert "rnnkit: warning:" in err and "none is held out" in err
    assert "held-out pieces" not in out and "training pieces (nothing held out):" in out
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["scored_on"].startswith("training pieces")
    assert main(["music", "evaluate", "--model", str(model), "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "none is held out" in err and "on held-out pieces" not in out
    evaluation = json.loads((model / "evaluation" / "metrics.json").read_text())
    assert evaluation["scored_on_training_pieces"] == [str(model)]
    assert workflow.is_held_out(5) and not workflow.is_held_out(4)


def test_messages_name_what_is_wrong_with_midi_files_primers_and_model_folders(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(UserError, match=r"empty.mid: not a readable .*\(the file is empty\)"):
        music.read_midi(tmp_path / "empty.mid")
    good = music.write_midi(chorale_like(0, bars=1), tmp_path / "good.mid")
    (tmp_path / "cut.mid").write_bytes(good.read_bytes()[:40])
    with pytest.raises(UserError, match=r"\(the file ends too early: truncated\?\)"):
        music.read_midi(tmp_path / "cut.mid")
    with pytest.raises(UserError, match=f"--primer {tmp_path}: is a folder"):
        workflow.resolve_primer(str(tmp_path), {})
    from rnnkit.engine import save_model

    save_model(tmp_path / "speech", torch.nn.Linear(2, 2), {"n_mels": 40})  # speech's marker
    with pytest.raises(UserError, match="speech: it holds a speech model, not a music model"):
        workflow.load(tmp_path / "speech")
    save_model(tmp_path / "other", torch.nn.Linear(2, 2), {"size": 3})
    with pytest.raises(UserError, match="names no rnnkit application"):
        workflow.load(tmp_path / "other")
    with pytest.raises(UserError, match="holds a speech model, not a melody/event model"):
        TokenLM.load(tmp_path / "speech")
