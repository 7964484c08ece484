"""Transcribed speech: synthesized by espeak-ng / flite, real test recordings, or the user's WAVs.

No transcribed speech corpus ships in a package, so rnnkit makes one. `generate_texts` writes
digit strings, robot commands, playing cards and short sentences; `synthesize` speaks them with
Debian's ``espeak-ng`` (many voices, accents, speeds and pitches) or ``flite`` (a different
synthesizer: unseen speakers). `degrade` adds background noise and room reverberation.
`synthetic_speech` builds a split and caches it as FLAC files plus a manifest:

- ``train`` / ``valid``: espeak-ng with `TRAIN_VOICES`;
- ``dev``: espeak-ng with `VALIDATION_VARIANTS`, voices in neither training nor test: where
  decoding settings (e.g. the language model's weight) and training changes are chosen;
- ``test``: espeak-ng with `HELD_OUT_VARIANTS` (variants never heard in training) and flite's
  voices, i.e. unseen speakers.

    >>> train = synthetic_speech("train", 200, seed=0)      # doctest: +SKIP
    >>> train[0].text, train[0].audio.shape                 # doctest: +SKIP
    ('seven five two three zero zero', (42355,))

All audio is mono float32 at `SAMPLE_RATE` (16 kHz). `load_audio` reads any WAV (or FLAC/OGG)
soundfile reads, mixes stereo down to mono, converts 8/24/32-bit samples and resamples; it
raises `UserError` for unreadable or empty files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly

from rnnkit.data.cache import cache_dir
from rnnkit.data.text import read_text, text_lines
from rnnkit.errors import UserError
from rnnkit.files import atomic_path, write_json
from rnnkit.report import some_of

SAMPLE_RATE = 16000
# The sample rates `load_audio` reads (Hz): telephone 8 kHz and studio 192 kHz lie inside.
AUDIO_RATE_RANGE = (1_000, 384_000)
INSTALL_HINT = "sudo apt-get install espeak-ng flite"
TESTDATA = Path("/usr/share/pocketsphinx/test/data")  # Debian pocketsphinx-testdata
CACHE_FORMAT = 2  # bump when generation changes, so old caches are rebuilt


@dataclass(frozen=True)
class Voice:
    """A speaker: synthesizer, voice name, words per minute and pitch (0-99, espeak only)."""

    synthesizer: str  # "espeak-ng" or "flite"
    name: str
    speed: int = 160
    pitch: int = 50

    def __str__(self) -> str:
        return f"{self.synthesizer}:{self.name}:s{self.speed}:p{self.pitch}"


@dataclass
class Utterance:
    """One recording and its transcript (lower case letters, apostrophes and spaces)."""

    audio: np.ndarray  # float32, mono, SAMPLE_RATE
    text: str
    speaker: str = ""
    source: str = ""  # file it came from, when any


# ---------------------------------------------------------------------------- texts

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"]
RANKS = [
    "ace",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "jack",
    "queen",
    "king",
]
SUITS = ["clubs", "diamonds", "hearts", "spades"]
COMMANDS = [
    "go forward {n} meters",
    "go back {n} meters",
    "turn left",
    "turn right",
    "stop",
    "start",
    "move up",
    "move down",
    "move left",
    "move right",
    "open the door",
    "close the door",
    "turn on the light",
    "turn off the light",
    "go home",
    "wait {n} seconds",
    "pick up the {color} block",
    "put down the {color} block",
    "yes",
    "no",
    "cancel",
]
COLORS = ["red", "green", "blue", "yellow", "black", "white"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenty"]
SUBJECTS = ["the cat", "the dog", "my friend", "the robot", "a small bird", "the old man"]
VERBS = ["sees", "likes", "finds", "follows", "wants", "has"]
OBJECTS = ["the {color} ball", "a {color} box", "the big house", "the water", "a good book"]


def generate_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` transcripts: a quarter each digit strings, commands, cards and short sentences."""
    rng = np.random.default_rng(seed)
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    texts = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            text = " ".join(pick(DIGITS) for _ in range(rng.integers(2, 7)))
        elif kind == 1:
            text = pick(COMMANDS).format(n=pick(NUMBERS), color=pick(COLORS))
        elif kind == 2:
            text = " ".join(f"{pick(RANKS)} of {pick(SUITS)}" for _ in range(rng.integers(1, 4)))
        else:
            text = f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS).format(color=pick(COLORS))}"
        texts.append(text)
    return texts


def vocabulary() -> list[str]:
    """Every word `generate_texts` can write, sorted."""
    words = set(DIGITS + RANKS + SUITS + COLORS + NUMBERS + ["of"])
    for phrase in COMMANDS + SUBJECTS + VERBS + OBJECTS:
        words.update(w for w in phrase.split() if not w.startswith("{"))
    return sorted(words)


def unseen_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` out-of-grammar sentences: 3-6 words of the `vocabulary` in random order.

    Every word was heard in training, but no sentence follows the training text's patterns,
    so a language model or grammar of that text cannot fill in what the audio leaves open.
    """
    rng = np.random.default_rng(seed)
    words = vocabulary()
    return [
        " ".join(words[i] for i in rng.integers(len(words), size=rng.integers(3, 7)))
        for _ in range(n)
    ]


# ---------------------------------------------------------------------------- voices

ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp"]
TRAIN_VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "f1",
    "f2",
    "f3",
    "f4",
    "klatt",
    "klatt2",
    "adam",
    "andy",
    "annie",
    "boris",
    "david",
    "linda",
    "paul",
    "robert",
    "steph",
]
HELD_OUT_VARIANTS = ["m7", "f5", "klatt3", "ed", "john", "belinda"]
VALIDATION_VARIANTS = ["m8", "klatt4", "edward", "grandma", "steph2", "travis"]
FLITE_VOICES = ["slt", "kal", "awb", "rms"]


def random_voices(
    variants: Sequence[str],
    rng: np.random.Generator,
    n: int,
    accents: Sequence[str] = ESPEAK_ACCENTS,
    speeds: tuple[int, int] = (120, 200),
    pitches: tuple[int, int] = (25, 75),
) -> list[Voice]:
    """``n`` espeak-ng voices: a random accent and variant, speed (words/min) and pitch drawn
    from the half-open ranges ``speeds`` and ``pitches``."""
    return [
        Voice(
            "espeak-ng",
            f"{rng.choice(accents)}+{rng.choice(variants)}",
            speed=int(rng.integers(*speeds)),
            pitch=int(rng.integers(*pitches)),
        )
        for _ in range(n)
    ]


def speech_tools_available() -> bool:
    """True when ``espeak-ng`` and ``flite`` are installed."""
    return shutil.which("espeak-ng") is not None and shutil.which("flite") is not None


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text`` with ``voice``; mono float32 at `SAMPLE_RATE`."""
    if shutil.which(voice.synthesizer) is None:
        raise UserError(f"{voice.synthesizer} is not installed; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.wav"
        if voice.synthesizer == "espeak-ng":
            command = [
                "espeak-ng",
                "-v",
                voice.name,
                "-s",
                str(voice.speed),
                "-p",
                str(voice.pitch),
                "-w",
                str(path),
                text,
            ]
        else:
            command = [
                "flite",
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={160 / voice.speed:.2f}",
                "-t",
                text,
                "-o",
                str(path),
            ]
        subprocess.run(command, check=True, capture_output=True)
        audio, rate = sf.read(path, dtype="float32")
    return resample(audio, rate, SAMPLE_RATE)


def resample(audio: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy), e.g. espeak-ng's 22,050 Hz to 16 kHz."""
    if rate == target_rate:
        return audio.astype(np.float32)
    g = gcd(int(rate), int(target_rate))
    return resample_poly(audio, target_rate // g, int(rate) // g).astype(np.float32)


# ---------------------------------------------------------------------------- degradation


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add coloured (1/f) background noise at a signal-to-noise ratio of ``snr_db``."""
    white = rng.standard_normal(len(audio) + 1)
    noise = np.cumsum(white)[1:] - np.cumsum(white)[:-1] * 0.98  # mild low-pass: hum, rumble
    noise = 0.5 * noise + 0.5 * white[1:]
    signal_power = np.mean(audio**2) + 1e-10
    noise *= np.sqrt(signal_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (audio + noise).astype(np.float32)


def add_reverb(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: noise decaying by 60 dB over ``rt60`` s."""
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    response[0] = 1.0  # the direct sound
    wet = fftconvolve(audio, response)[: len(audio)]
    return (wet * np.abs(audio).max() / (np.abs(wet).max() + 1e-9)).astype(np.float32)


def perturb_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster: shorter, higher pitch and formants (Kaldi-style).

    Stretching the spectrum like this imitates a different vocal tract, which helps the
    model generalize to voices (and synthesizers) it never heard.
    """
    return resample(audio, int(round(SAMPLE_RATE * factor)), SAMPLE_RATE)


def convert_voice(
    audio: np.ndarray,
    formant_ratio: float,
    pitch_median: float,
    pitch_range: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """The same words in another voice: Praat's "Change gender" (PSOLA, via parselmouth).

    Unlike `perturb_speed`, pitch and vocal tract move independently, at the same speed: the
    formants are scaled by ``formant_ratio`` (a shorter tract above 1), the pitch contour is
    moved to a median of ``pitch_median`` Hz and its excursions scaled by ``pitch_range``.
    One real speaker so becomes many plausible ones, the usual remedy when few speakers
    are recorded. Audio without voiced frames (silence, noise) comes back unchanged.
    Praat places the pulses of unvoiced stretches at random: ``seed`` seeds its generator,
    so the same call gives the same samples.

    Needs ``praat-parselmouth`` (GPL-3, so not a required dependency of rnnkit): ``pip install
    'rnnkit[voices]'``; without it a `UserError` says so.
    """
    try:
        import parselmouth
        from parselmouth.praat import call as praat
    except ImportError:
        raise UserError(
            "voice conversion needs Praat's parselmouth (GPL-3): pip install 'rnnkit[voices]'"
        ) from None
    sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")
    try:
        with warnings.catch_warnings():  # "no voiced segments": handled below
            warnings.simplefilter("ignore", parselmouth.PraatWarning)
            converted = praat(
                sound, "Change gender", 75, 600, formant_ratio, pitch_median, pitch_range, 1.0
            )
    except parselmouth.PraatError:  # no pitch to move
        return audio.astype(np.float32)
    return converted.values[0].astype(np.float32)


def degrade(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomly: clean, noisy (5-30 dB SNR), reverberant (RT60 0.1-0.6 s), or both."""
    kind = rng.integers(4)
    if kind in (1, 3):
        audio = add_reverb(audio, float(rng.uniform(0.1, 0.6)), rng)
    if kind in (2, 3):
        audio = add_noise(audio, float(rng.uniform(5, 30)), rng)
    return audio


# ---------------------------------------------------------------------------- data sets


def synthetic_speech(split: str, n: int, seed: int = 0) -> list[Utterance]:
    """A cached split of synthesized, degraded utterances (see the module docstring).

    Args:
        split: ``"train"``, ``"valid"`` (training voices), ``"dev"`` (validation voices),
            ``"test"`` (held-out espeak voices + flite) or ``"unseen"`` (the test voices saying
            `unseen_texts`, sentences outside the training text's grammar).
        n: number of utterances.
        seed: picks texts, voices and degradations.
    """
    if split not in ("train", "valid", "dev", "test", "unseen"):
        raise UserError(f"split {split!r}: expected train, valid, dev, test or unseen")
    if not speech_tools_available():
        raise UserError(f"espeak-ng and flite are needed to synthesize speech; {INSTALL_HINT}")
    folder = cache_dir("speech", f"format{CACHE_FORMAT}", f"{split}-{n}-seed{seed}")
    if not (folder / "manifest.json").exists():
        _synthesize_split(folder, split, n, seed)
    # Always the audio as the cache holds it (16-bit FLAC): the first run and every later
    # one then train on the same samples, and give the same numbers.
    return [
        Utterance(
            sf.read(folder / r["file"], dtype="float32")[0], r["text"], r["speaker"], r["file"]
        )
        for r in json.loads((folder / "manifest.json").read_text())
    ]


def _synthesize_split(folder: Path, split: str, n: int, seed: int) -> None:
    """Synthesize split ``split`` of `synthetic_speech` into ``folder`` (FLAC + manifest)."""
    split_seed = {"train": 0, "valid": 1, "test": 2, "dev": 3, "unseen": 4}[split] + 10 * seed
    rng = np.random.default_rng(split_seed)
    if split == "unseen":
        texts = unseen_texts(n, seed=split_seed)
    else:
        texts = generate_texts(n, seed=split_seed)
    if split in ("test", "unseen"):  # two thirds held-out espeak-ng variants, one third flite
        n_flite = n // 3
        voices = random_voices(HELD_OUT_VARIANTS, rng, n - n_flite) + [
            Voice("flite", str(rng.choice(FLITE_VOICES)), int(rng.integers(130, 190)))
            for _ in range(n_flite)
        ]
    elif split == "dev":
        voices = random_voices(VALIDATION_VARIANTS, rng, n)
    else:
        voices = random_voices(TRAIN_VARIANTS, rng, n)
    rows = []
    for i, (text, voice) in enumerate(zip(texts, voices, strict=True)):
        audio = synthesize(text, voice)
        if split in ("train", "valid"):  # training voices get more variety; others as spoken
            audio = perturb_speed(audio, float(rng.uniform(0.85, 1.15)))
        audio = degrade(audio, rng)
        audio = audio / max(1.0, float(np.abs(audio).max()))  # no clipping in the FLAC
        name = f"{i:05d}.flac"
        with atomic_path(folder / name) as tmp:
            sf.write(tmp, audio, SAMPLE_RATE, format="FLAC")
        rows.append({"file": name, "text": text, "speaker": str(voice)})
    write_json(folder / "manifest.json", rows)  # last: its presence means complete


def normalize_transcript(text: str) -> str:
    """Lower case letters, apostrophes and single spaces (what the recognizer writes).

    Digits are spelled out one by one ("7" -> "seven", "42" -> "four two"), as the
    recognizer writes them; other characters become spaces.

    >>> normalize_transcript("Call 911, now!")
    'call nine one one now'
    """
    kept = "".join(
        f" {DIGITS[int(ch)]} " if ch in "0123456789" else ch if ch.isalpha() or ch == "'" else " "
        for ch in text.lower()
    )
    return " ".join(kept.split())


def _transcript(text: str, where: str) -> str:
    """``text`` normalized; an error naming ``where`` when nothing is left: an empty target
    would train a model that learns nothing from that recording, silently."""
    normalized = normalize_transcript(text)
    if not normalized:
        raise UserError(
            f"{where}: empty transcript after normalization (kept: letters, apostrophes, "
            f"digits; got {text.strip()[:40]!r}); write what is said in words"
        )
    return normalized


# A recording whose loudest sample is below this is silence: its transcript is empty.
SILENT_PEAK = 1e-4


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read an audio file as mono float32 at 16 kHz; also return warnings about it.

    Handling: stereo is averaged to mono; 8-, 16-, 24- and 32-bit samples are scaled to
    [-1, 1]; sample rates of 1 kHz to 384 kHz are resampled. Clipped or silent audio is
    transcribed as is, with a warning, and so is a file shorter than its header says (a cut-off
    download). Missing, unreadable, non-audio and zero-length files and other sample rates
    raise `UserError`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a WAV file")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise UserError(f"{path}: not a readable audio file ({error}); expected a WAV") from None
    check_sample_rate(path, rate)
    warnings = _truncation_warning(path, len(audio))
    if audio.shape[1] > 1:
        warnings.append(f"{path}: {audio.shape[1]} channels mixed down to mono")
    audio = audio.mean(axis=1)
    if len(audio) == 0:
        raise UserError(f"{path}: zero-length audio; expected at least a few samples of speech")
    if not np.isfinite(audio).all():  # NaN would pass the silence check below and the model
        raise UserError(f"{path}: audio has NaN or infinite samples; expected finite samples")
    clipped = np.mean(np.abs(audio) > 0.999) > 0.001
    audio = resample(audio, rate)
    # Silence is judged on the resampled audio, as the recognizer judges it (its transcript
    # is then empty): the two disagreed on a file whose peak resampling moved across 1e-4.
    peak = float(np.abs(audio).max())
    if peak < SILENT_PEAK:
        warnings.append(f"{path}: silent (peak {peak:.1e}); the transcript will be empty")
    elif clipped:
        warnings.append(f"{path}: clipped audio; expect more errors")
    return audio, warnings


# What `load_speech` does to a recording before it is transcribed (not to training data):
SPEECH_PEAK = 0.5  # the level it is scaled to (a -60 dBFS file read wrong words)
TRIM_BELOW_DB = 40.0  # 10 ms frames this far below the loudest one are silence...
TRIM_MARGIN_S = 0.05  # ...and the silence kept around the speech
SHORTEST_SPEECH_S = 0.2  # a shorter clip is warned about (it still gets a transcript)
HISS = 10 ** (-60 / 20)  # noise added, relative to the peak (-60 dB)


def load_speech(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """`load_audio`, then ready for a recognizer trained on trimmed clips: leading and
    trailing silence cut to `TRIM_MARGIN_S` and the level scaled to a peak of `SPEECH_PEAK`.

    Real recordings start and end with silence, and FSDD's are cut tight: one second of
    silence on each side of held-out FSDD takes took a recognizer from 38 to 7 right of 40
    (37 of 40 with this), and a quiet file (-60 dBFS) from "five five" to "fiv neone".
    Silent audio is left as it is (its transcript is empty).
    """
    audio, warnings = load_audio(path)
    peak = float(np.abs(audio).max())
    if peak < SILENT_PEAK:
        return audio, warnings
    audio = trim_silence(audio) * (SPEECH_PEAK / peak)
    # Digital silence (exact zeros) is not what a microphone hears: the features' log floor
    # makes it an extreme the recognizer never met. A room's hiss, far below the speech.
    hiss = np.random.default_rng(0).normal(0.0, SPEECH_PEAK * HISS, len(audio))
    audio = (audio + hiss).astype(np.float32)
    if len(audio) < SHORTEST_SPEECH_S * SAMPLE_RATE:
        warnings.append(
            f"{path}: {len(audio) / SAMPLE_RATE:.2f} s of sound; a word takes longer, so "
            "expect a wrong or empty transcript"
        )
    return audio, warnings


def trim_silence(audio: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` without its leading and trailing silence (10 ms frames `TRIM_BELOW_DB`
    below the loudest), `TRIM_MARGIN_S` of it kept on each side.

    Example:
        >>> tone = np.sin(np.arange(8000) / 5).astype(np.float32)
        >>> len(trim_silence(np.r_[np.zeros(32000), tone, np.zeros(32000)]))
        9600
    """
    frame = rate // 100
    count = len(audio) // frame
    if count < 3:
        return audio
    energy = (audio[: count * frame].reshape(count, frame) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-20)
    loud = np.flatnonzero(level >= level.max() - TRIM_BELOW_DB)
    margin = int(TRIM_MARGIN_S * rate)
    start = max(loud[0] * frame - margin, 0)
    end = min((loud[-1] + 1) * frame + margin, len(audio))
    return audio[start:end]


def check_sample_rate(path: Path, rate: int) -> None:
    """Refuse a sample rate no recording has: resampling 1 Hz or 2**30 Hz to 16 kHz takes
    minutes and gigabytes (a 32 KB file at 1 Hz becomes 256 million samples)."""
    low, high = AUDIO_RATE_RANGE
    if not low <= rate <= high:
        raise UserError(
            f"{path}: sample rate {rate:,} Hz in its header; expected {low:,} to {high:,} Hz"
        )


def _truncation_warning(path: Path, frames: int) -> list[str]:
    """A warning when a WAV header claims more frames than the file holds: libsndfile reads
    what is there (and its ``info`` reports that), so a cut-off file would otherwise be
    transcribed silently."""
    claimed = _wav_header_frames(path)
    if claimed is None or claimed <= frames:
        return []
    return [
        f"{path}: its header claims {claimed:,} frames but the file holds {frames:,} "
        "(cut off?); transcribing what is there"
    ]


def _wav_header_frames(path: Path) -> int | None:
    """The frame count a RIFF/WAVE header claims (its data chunk's size over the block
    size), or None for other formats and headers that leave it open (streamed WAVs)."""
    with open(path, "rb") as file:
        head = file.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block, at = 0, 12
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], int.from_bytes(head[at + 4 : at + 8], "little")
        if chunk == b"fmt " and at + 22 <= len(head):
            block = int.from_bytes(head[at + 20 : at + 22], "little")
        if chunk == b"data":
            open_ended = size in (0, 0xFFFFFFFF)
            return size // block if block and not open_ended else None
        at += 8 + size + size % 2  # chunks are padded to an even size
    return None


def read_transcribed_folder(folder: str | os.PathLike) -> list[Utterance]:
    """The user's recordings with transcripts, in either layout:

    - LibriSpeech: ``*.trans.txt`` files whose lines are ``UTTERANCE_ID transcript``, next to
      ``UTTERANCE_ID.wav`` (or ``.flac``);
    - one ``NAME.txt`` transcript beside each ``NAME.wav``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; expected WAV files with transcripts")
    utterances = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        for number, line in enumerate(text_lines(read_text(trans)), start=1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise UserError(f"{trans}, line {number}: expected 'UTTERANCE_ID transcript'")
            audio_path = next(
                (
                    trans.parent / f"{parts[0]}{ext}"
                    for ext in (".wav", ".flac")
                    if (trans.parent / f"{parts[0]}{ext}").exists()
                ),
                None,
            )
            if audio_path is None:
                raise UserError(f"{trans}, line {number}: no {parts[0]}.wav or .flac beside it")
            audio, _ = load_audio(audio_path)
            text = _transcript(parts[1], f"{trans}, line {number}")
            utterances.append(Utterance(audio, text, "", str(audio_path)))
    if not utterances:
        for wav in sorted(folder.rglob("*.wav")):
            text_path = wav.with_suffix(".txt")
            if text_path.exists():
                audio, _ = load_audio(wav)
                text = _transcript(read_text(text_path), str(text_path))
                utterances.append(Utterance(audio, text, "", str(wav)))
    if not utterances:
        raise UserError(
            f"{folder}: no transcribed audio found; expected *.trans.txt files (LibriSpeech "
            "layout) or NAME.txt beside each NAME.wav"
        )
    return utterances


def pocketsphinx_recordings() -> list[Utterance]:
    """Real recordings with transcripts from Debian's ``pocketsphinx-testdata`` (12 files).

    Playing cards (5), "go forward ten meters", a TIDIGITS digit string, and five LibriVox
    audiobook sentences (out of rnnkit's synthetic vocabulary: a hard reality check).
    Empty when the package is not installed.
    """
    utterances: list[Utterance] = []
    if not TESTDATA.is_dir():
        return utterances
    for folder, transcripts in (("cards", "cards.transcription"), ("librivox", "transcription")):
        for line in (TESTDATA / folder / transcripts).read_text().splitlines():
            text, _, name = line.rpartition("(")
            text = text.replace("<s>", "").replace("</s>", "")
            wav = TESTDATA / folder / f"{name.strip(') ')}.wav"
            if wav.exists():
                audio, _ = load_audio(wav)
                speaker = "librivox" if folder == "librivox" else "cards"
                utterances.append(Utterance(audio, normalize_transcript(text), speaker, str(wav)))
    for name, text in (
        ("goforward.raw", "go forward ten meters"),
        ("tidigits/dhd.2934z.raw", "two nine three four zero"),
    ):
        if (TESTDATA / name).exists():
            raw = np.fromfile(TESTDATA / name, dtype="<i2").astype(np.float32) / 32768
            utterances.append(Utterance(raw, text, "commands", str(TESTDATA / name)))
    return utterances


# ---------------------------------------------------------------------------- real digits (FSDD)

FSDD_ENV = "RNNKIT_FSDD"  # where the Free Spoken Digit Dataset is, when not ../shared/data/fsdd
FSDD_SPEAKERS = ["jackson", "theo", "nicolas", "yweweler", "lucas", "george"]
FSDD_LAYOUT = "{digit}_{speaker}_{take}.wav"
DIGIT_WORDS = DIGITS[:10]  # "zero" .. "nine": FSDD's file names start with the digit


@dataclass
class Recording(Utterance):
    """An FSDD recording: ``{digit}_{speaker}_{take}.wav`` (``speaker`` and ``text`` as usual)."""

    take: int = 0


def find_fsdd() -> Path | None:
    """The FSDD folder: ``$RNNKIT_FSDD``, else ``shared/data/fsdd`` beside the repository.

    None when neither exists (tests then skip; users pass ``--data PATH``).
    """
    if os.environ.get(FSDD_ENV):
        return Path(os.environ[FSDD_ENV])
    repo = Path(__file__).resolve().parents[3]  # src/rnnkit/data/speech.py -> repository root
    folder = repo.parent / "shared" / "data" / "fsdd"
    return folder if folder.is_dir() else None


def fsdd_recordings(
    folder: str | os.PathLike,
    speakers: list[str] | None = None,
    takes: range | None = None,
    digits: range | None = None,
) -> list[Recording]:
    """Read Free Spoken Digit Dataset recordings (any ``{digit}_{speaker}_{take}.wav``).

    Args:
        folder: the dataset folder, or its ``recordings/`` folder.
        speakers, takes, digits: read only these (all by default).

    Returns:
        recordings sorted by speaker, digit and take; audio at `SAMPLE_RATE` (FSDD is 8 kHz, so
        nothing above 4 kHz), text the digit's word ("seven").
    """
    folder = Path(folder)
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; expected FSDD's {FSDD_LAYOUT} files")
    found, unnamed = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav"):
        named = fsdd_name(path)
        if named is None:
            unnamed.append(path.name)
            continue
        digit, speaker, take = named
        if speakers is not None and speaker not in speakers:
            continue
        if takes is not None and take not in takes:
            continue
        if digits is not None and digit not in digits:
            continue
        found.append((speaker, digit, take, path))
    if unnamed:  # said, not dropped silently
        warnings.warn(
            f"{folder}: {len(unnamed)} .wav file(s) not named {FSDD_LAYOUT} left out "
            f"({some_of(unnamed)})",
            stacklevel=2,
        )
    if not found:
        raise UserError(f"{folder}: no FSDD recordings found; expected files named {FSDD_LAYOUT}")
    recordings = []
    for speaker, digit, take, path in sorted(found):
        audio, _ = load_audio(path)
        recordings.append(Recording(audio, DIGIT_WORDS[digit], speaker, path.name, take))
    return recordings


def fsdd_name(path: Path) -> tuple[int, str, int] | None:
    """(digit, speaker, take) of a file named ``{digit}_{speaker}_{take}.wav`` (a speaker's
    name may hold underscores: ``7_en_f3_12.wav``; the extension any case), else None.

    Example:
        >>> fsdd_name(Path("7_en_f3_12.WAV")), fsdd_name(Path("10_bob_1.wav"))
        ((7, 'en_f3', 12), None)
    """
    digit, _, rest = path.stem.partition("_")
    speaker, _, take = rest.rpartition("_")
    if not (len(digit) == 1 and digit.isdigit() and speaker and take.isdigit()):
        return None
    return int(digit), speaker, int(take)


def telephone_band(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pass 16 kHz audio through an 8 kHz channel, as FSDD was recorded.

    Down to 8 kHz and back (nothing above 4 kHz survives), a random gain of -12 to +6 dB,
    and half the time 8-bit mu-law companding (the G.711 telephone codec's quantization).
    """
    narrow = resample(audio, SAMPLE_RATE, 8000)
    narrow = narrow * 10 ** (rng.uniform(-12, 6) / 20)
    if rng.random() < 0.5:
        mu = 255.0
        peak = max(1.0, float(np.abs(narrow).max()))
        x = narrow / peak
        coded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
        narrow = peak * np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return resample(narrow.astype(np.float32), 8000, SAMPLE_RATE)


def background(n: int, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of low room or breath noise ``level_db`` dB below full scale (RMS).

    Pink-ish noise (white plus a leaky integral of it), like a quiet room or a breath.
    """
    white = rng.standard_normal(n + 1)
    noise = 0.5 * (np.cumsum(white)[1:] - 0.98 * np.cumsum(white)[:-1]) + 0.5 * white[1:]
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    return (noise * 10 ** (level_db / 20)).astype(np.float32)


def connected_digits(
    recordings: list[Recording],
    n: int,
    seed: int = 0,
    min_digits: int = 2,
    max_digits: int = 5,
) -> list[Utterance]:
    """Connected digit strings of real voices: one speaker's recordings joined.

    Each string takes 2-5 (``min_digits``..``max_digits``) random recordings of ONE speaker
    (the speaker chosen at random per string), scales each by a level change of -6 to +6 dB
    (a talker moving or leaning in), and puts natural pauses of 0.05-0.4 s between them;
    low noise (-60 to -40 dB) runs under the whole string, and a pause is sometimes a
    breath (a louder short burst of noise). Deterministic given ``seed``.

    Returns:
        utterances whose text is the digit words, ``speaker`` the speaker's name and
        ``source`` the joined file names.
    """
    by_speaker: dict[str, list[Recording]] = {}
    for r in recordings:
        by_speaker.setdefault(r.speaker, []).append(r)
    speakers = sorted(by_speaker)
    rng = np.random.default_rng(seed)
    strings = []
    for _ in range(n):
        speaker = speakers[rng.integers(len(speakers))]
        pool = by_speaker[speaker]
        count = rng.integers(min_digits, max_digits + 1)
        chosen = [pool[i] for i in rng.integers(len(pool), size=count)]
        pieces = [np.zeros(int(rng.uniform(0.05, 0.2) * SAMPLE_RATE), np.float32)]
        for k, r in enumerate(chosen):
            pieces.append(r.audio * np.float32(10 ** (rng.uniform(-6, 6) / 20)))
            pause = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), np.float32)
            if k < len(chosen) - 1 and len(pause) > 0.2 * SAMPLE_RATE and rng.random() < 0.3:
                breath = background(int(0.15 * SAMPLE_RATE), float(rng.uniform(-40, -30)), rng)
                pause[: len(breath)] += breath * np.hanning(len(breath)).astype(np.float32)
            pieces.append(pause)
        audio = np.concatenate(pieces)
        audio += background(len(audio), float(rng.uniform(-60, -40)), rng)
        text = " ".join(r.text for r in chosen)
        source = "+".join(r.source for r in chosen)
        strings.append(Utterance(audio.astype(np.float32), text, speaker, source))
    return strings
