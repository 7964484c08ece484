"""More voices and more strings for the digit recognizer: synthetic digits, converted voices,
re-spoken strings.

Three sources of training variety for `rnnkit.apps.speech.fsdd`:

- `synthetic_digits`: the ten digit words spoken by many espeak-ng voices (every English
  accent x every voice variant not kept for the synthetic test or validation sets, random
  speed and pitch, a random vocal-tract stretch) and passed through the 8 kHz telephone channel
  FSDD was recorded through. Each voice is a "speaker" whose ten recordings can be joined
  into strings like the real speakers' ones.
- `converted_voices`: every real training speaker said again in other voices (Praat's
  "Change gender": another pitch and vocal-tract length at the same speed), so a few real
  speakers become many, all of them real speech.
- `respoken_strings`: connected digit strings whose every copy is the same digits said by
  another speaker (another take, pauses, levels): a training example with several copies
  serves a different one each epoch (`rnnkit.apps.speech.recognizer.FeatureBatches`), so
  the model hears many more distinct strings than there are examples.

    >>> voices = synthetic_digits(30, seed=0)                  # doctest: +SKIP
    >>> len(voices), voices[0].text                            # doctest: +SKIP
    (300, 'zero')
    >>> pseudo = converted_voices(real_recordings, per_speaker=6)   # doctest: +SKIP
    >>> pseudo["0_george_0.wav"][2].speaker                    # doctest: +SKIP
    'george~2'
    >>> strings = respoken_strings(voices, 10, copies=3, seed=0)   # doctest: +SKIP
    >>> strings[0][0], len(strings[0][1])                      # doctest: +SKIP
    ('six five two three zero', 3)
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from rnnkit.data.cache import cache_dir
from rnnkit.data.speech import (
    DIGIT_WORDS,
    HELD_OUT_VARIANTS,
    SAMPLE_RATE,
    VALIDATION_VARIANTS,
    Recording,
    Voice,
    background,
    convert_voice,
    perturb_speed,
    random_voices,
    synthesize,
    telephone_band,
)
from rnnkit.files import atomic_path, write_json

# English accents of espeak-ng, and its voice variants minus those the synthetic test and
# validation sets keep unheard.
DIGIT_ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# `espeak-ng --voices=variant`, the robotic and whispering ones left out.
ALL_VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt5",
    "klatt6",
    "adam",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "antonio",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "Denis",
    "Diogo",
    "ed",
    "edward",
    "edward2",
    "Gene",
    "Gene2",
    "gustave",
    "Henrique",
    "Hugo",
    "iven",
    "iven2",
    "iven3",
    "iven4",
    "Jacky",
    "john",
    "kaukovalta",
    "Lee",
    "linda",
    "marcelo",
    "Marco",
    "Mario",
    "max",
    "Michael",
    "michel",
    "miguel",
    "Mike",
    "Nguyen",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "steph",
    "steph2",
    "steph3",
    "Storm",
    "zac",
    "anika",
    "AnxiousAndy",
    "grandpa",
    "grandma",
    "norbert",
    "sandro",
    "shelby",
    "travis",
    "victor",
    "croak",
]
DIGIT_VARIANTS = tuple(
    v for v in ALL_VARIANTS if v not in HELD_OUT_VARIANTS and v not in VALIDATION_VARIANTS
)
CACHE_FORMAT = 1  # bump when generation changes


def digit_voices(n: int, seed: int = 0) -> list[Voice]:
    """``n`` random espeak-ng voices: accent, variant, 100-230 words/min, pitch 5-95."""
    rng = np.random.default_rng(seed)
    return random_voices(
        DIGIT_VARIANTS, rng, n, accents=DIGIT_ACCENTS, speeds=(100, 231), pitches=(5, 96)
    )


def synthetic_digits(n_voices: int, seed: int = 0) -> list[Recording]:
    """The ten digit words by ``n_voices`` espeak-ng voices, through the telephone channel.

    Each voice's audio is also played 0.85-1.15 times faster (one factor per voice: a longer
    or shorter vocal tract). Cached in rnnkit's cache folder after the first call.

    Returns:
        ``10 * n_voices`` recordings; ``speaker`` names the voice (``espeak-ng:en-us+m3:...``),
        ``take`` is the voice's index.
    """
    folder = cache_dir("speech", f"digits{CACHE_FORMAT}", f"{n_voices}-seed{seed}")
    manifest = folder / "manifest.json"
    if not manifest.exists():
        _synthesize_digits(folder, n_voices, seed)
    # Always the audio as the cache holds it (16-bit FLAC): the first run and every later
    # one then train on the same samples, and give the same numbers.
    return [
        Recording(
            sf.read(folder / r["file"], dtype="float32")[0],
            r["text"],
            r["speaker"],
            r["file"],
            r["take"],
        )
        for r in json.loads(manifest.read_text())
    ]


def _synthesize_digits(folder: Path, n_voices: int, seed: int) -> None:
    """Synthesize `synthetic_digits` into ``folder`` (FLAC + manifest)."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for take, voice in enumerate(digit_voices(n_voices, seed)):
        factor = float(rng.uniform(0.85, 1.15))
        for digit, word in enumerate(DIGIT_WORDS):
            audio = telephone_band(perturb_speed(synthesize(word, voice), factor), rng)
            audio = audio / max(1.0, float(np.abs(audio).max()))  # no clipping in the FLAC
            name = f"{take:04d}_{digit}.flac"
            with atomic_path(folder / name) as tmp:
                sf.write(tmp, audio, SAMPLE_RATE, format="FLAC")
            rows.append({"file": name, "text": word, "speaker": str(voice), "take": take})
    write_json(folder / "manifest.json", rows)  # last: its presence means complete


def converted_voices(
    recordings: Sequence[Recording], per_speaker: int, seed: int = 0
) -> dict[str, list[Recording]]:
    """``per_speaker`` new voices for every speaker of ``recordings`` (`convert_voice`).

    Voice k of a speaker keeps one setting for all of that speaker's recordings (a
    consistent "speaker" whose clips can be joined into strings): formants scaled by
    0.88-1.15, a pitch median of 75-240 Hz (log-uniform: men, women and children), pitch
    excursions scaled by 0.7-1.5. Drawn from a generator seeded by ``seed`` and the speaker's
    name, so a recording's copies do not depend on which others are converted with it.

    Returns:
        by each recording's source, its ``per_speaker`` copies in voice order: speaker
        ``"{speaker}~{k}"``, source ``"{source}~{k}"``, text and take as the original's.
    """
    settings = {}
    for speaker in sorted({r.speaker for r in recordings}):
        rng = np.random.default_rng([seed, *speaker.encode()])
        for k in range(per_speaker):
            settings[speaker, k] = (
                float(rng.uniform(0.88, 1.15)),
                float(np.exp(rng.uniform(np.log(75), np.log(240)))),
                float(rng.uniform(0.7, 1.5)),
            )
    # Praat's own generator, seeded per recording and voice: the same samples every run.
    return {
        r.source: [
            Recording(
                convert_voice(
                    r.audio,
                    *settings[r.speaker, k],
                    seed=zlib.crc32(f"{seed}:{r.source}~{k}".encode()),
                ),
                r.text,
                f"{r.speaker}~{k}",
                f"{r.source}~{k}",
                r.take,
            )
            for k in range(per_speaker)
        ]
        for r in recordings
    }


def join_clips(clips: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One speaker's clips joined as `rnnkit.data.speech.connected_digits` joins them.

    A -6 to +6 dB level change per clip, pauses of 0.05-0.4 s (sometimes a breath), a short
    lead-in, and low noise (-60 to -40 dB) under the whole string.
    """
    pieces = [np.zeros(int(rng.uniform(0.05, 0.2) * SAMPLE_RATE), np.float32)]
    for k, clip in enumerate(clips):
        pieces.append(clip * np.float32(10 ** (rng.uniform(-6, 6) / 20)))
        pause = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), np.float32)
        if k < len(clips) - 1 and len(pause) > 0.2 * SAMPLE_RATE and rng.random() < 0.3:
            breath = background(int(0.15 * SAMPLE_RATE), float(rng.uniform(-40, -30)), rng)
            pause[: len(breath)] += breath * np.hanning(len(breath)).astype(np.float32)
        pieces.append(pause)
    audio = np.concatenate(pieces)
    audio += background(len(audio), float(rng.uniform(-60, -40)), rng)
    return audio.astype(np.float32)


def respoken_strings(
    recordings: Sequence[Recording],
    n: int,
    copies: int,
    seed: int = 0,
    min_digits: int = 2,
    max_digits: int = 5,
) -> list[tuple[str, list[np.ndarray]]]:
    """``n`` random digit strings, each said ``copies`` times by random speakers.

    A copy takes one speaker (at random among those of ``recordings``) and, for every digit
    of the string, one of that speaker's recordings of it, joined by `join_clips`.
    Deterministic given ``seed``.

    Returns:
        ``(text, [audio of each copy])`` per string.
    """
    pool: dict[str, dict[str, list[np.ndarray]]] = {}
    for r in recordings:
        pool.setdefault(r.speaker, {}).setdefault(r.text, []).append(r.audio)
    speakers = sorted(pool)
    # The digits every speaker said (all ten in FSDD).
    vocabulary = [w for w in DIGIT_WORDS if all(w in pool[s] for s in speakers)]
    rng = np.random.default_rng(seed)
    strings = []
    for _ in range(n):
        count = rng.integers(min_digits, max_digits + 1)
        words = [vocabulary[i] for i in rng.integers(len(vocabulary), size=count)]
        audios = []
        for _ in range(copies):
            said = pool[speakers[rng.integers(len(speakers))]]
            audios.append(join_clips([said[w][rng.integers(len(said[w]))] for w in words], rng))
        strings.append((" ".join(words), audios))
    return strings
