"""Speech recognition: log-mel features, a conv + bidirectional RNN acoustic model, CTC.

See `SpeechRecognizer` (fit / transcribe / evaluate / save / load) and `rnnkit.data.speech`
for the synthesized training data and the real test recordings; `fsdd` holds the real-voice
protocol (Free Spoken Digit Dataset) and `grammar` decoding under a word grammar.
"""

from rnnkit.apps.speech.baselines import pocketsphinx_available, pocketsphinx_transcribe
from rnnkit.apps.speech.features import LogMel, mel_filterbank, spec_augment
from rnnkit.apps.speech.grammar import best_word, best_word_sequence
from rnnkit.apps.speech.model import CTCAcousticModel, ctc_beam_decode, ctc_greedy_decode
from rnnkit.apps.speech.recognizer import RecognizerConfig, SpeechRecognizer, error_rates

__all__ = [
    "CTCAcousticModel",
    "LogMel",
    "RecognizerConfig",
    "SpeechRecognizer",
    "best_word",
    "best_word_sequence",
    "ctc_beam_decode",
    "ctc_greedy_decode",
    "error_rates",
    "mel_filterbank",
    "pocketsphinx_available",
    "pocketsphinx_transcribe",
    "spec_augment",
]
