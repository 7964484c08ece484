"""PocketSphinx (CMU Sphinx, PyPI ``pocketsphinx``): the recognizer rnnkit is compared with.

It uses its bundled US-English acoustic model and dictionary, and either its general trigram
language model ("no task knowledge": it knows far more words than rnnkit's vocabulary but was
never tuned to it) or a JSGF grammar of the task ("same task knowledge"): `digits_jsgf` for
digits, `task_jsgf` for the synthetic sentences. A grammar is added with
``Decoder.add_jsgf_string(name, text)`` and made current with ``activate_search(name)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.data.speech import (
    COLORS,
    COMMANDS,
    DIGIT_WORDS,
    DIGITS,
    NUMBERS,
    OBJECTS,
    RANKS,
    SAMPLE_RATE,
    SUBJECTS,
    SUITS,
    VERBS,
    normalize_transcript,
)


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def digits_jsgf(loop: bool) -> str:
    """A JSGF grammar of one digit word ("zero".."nine"), or of one or more (``loop``)."""
    digits = " | ".join(DIGIT_WORDS)
    repeat = "+" if loop else ""
    return f"#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( {digits} ){repeat};\n"


def task_jsgf() -> str:
    """The JSGF grammar of `rnnkit.data.speech.generate_texts`: the sentences rnnkit's
    synthetic training text (and its character LM's text) come from."""
    alt = lambda words: "( " + " | ".join(words) + " )"  # noqa: E731
    commands = [c.replace("{n}", "<number>").replace("{color}", "<color>") for c in COMMANDS]
    objects = [o.replace("{color}", "<color>") for o in OBJECTS]
    rules = {
        "number": alt(NUMBERS),
        "color": alt(COLORS),
        "digit": alt(DIGITS),
        "card": f"{alt(RANKS)} of {alt(SUITS)}",
        "digits": "<digit> <digit>+",
        "command": alt(commands),
        "cards": "<card>+",
        "sentence": f"{alt(SUBJECTS)} {alt(VERBS)} {alt(objects)}",
    }
    lines = ["#JSGF V1.0;", "grammar task;"]
    lines += [f"<{name}> = {body};" for name, body in rules.items()]
    lines.append("public <task> = <digits> | <command> | <cards> | <sentence>;")
    return "\n".join(lines) + "\n"


def pocketsphinx_transcribe(audios: Sequence[np.ndarray], grammar: str | None = None) -> list[str]:
    """Transcribe mono 16 kHz float recordings with PocketSphinx's US-English model.

    Args:
        audios: recordings at 16 kHz (what its acoustic model expects; resample first).
        grammar: a JSGF grammar to decode with, instead of the general language model.
    """
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    if grammar is not None:
        decoder.add_jsgf_string("task", grammar)
        decoder.activate_search("task")
    texts = []
    for audio in audios:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        texts.append(normalize_transcript(hypothesis.hypstr) if hypothesis else "")
    return texts
