"""PocketSphinx (CMU Sphinx, PyPI ``pocketsphinx``): the recognizer rnnkit is compared with.

It uses its bundled US-English acoustic model, dictionary and general trigram language model,
so it knows far more words than rnnkit's synthetic vocabulary but was never tuned to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.data.speech import SAMPLE_RATE, normalize_transcript


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def pocketsphinx_transcribe(audios: Sequence[np.ndarray]) -> list[str]:
    """Transcribe mono 16 kHz float recordings with PocketSphinx's default English model."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    texts = []
    for audio in audios:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        texts.append(normalize_transcript(hypothesis.hypstr) if hypothesis else "")
    return texts
