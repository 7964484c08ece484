"""Speech recognition: log-mel features, a conv + bidirectional RNN acoustic model, CTC.

See `SpeechRecognizer` (fit / transcribe / evaluate / save / load) and `rnnkit.data.speech`
for the synthesized training data and the real test recordings.
"""

from rnnkit.apps.speech.baselines import pocketsphinx_available, pocketsphinx_transcribe
from rnnkit.apps.speech.features import LogMel, mel_filterbank, spec_augment
from rnnkit.apps.speech.model import CTCAcousticModel, ctc_beam_decode, ctc_greedy_decode
from rnnkit.apps.speech.recognizer import RecognizerConfig, SpeechRecognizer, error_rates

__all__ = [
    "CTCAcousticModel",
    "LogMel",
    "RecognizerConfig",
    "SpeechRecognizer",
    "ctc_beam_decode",
    "ctc_greedy_decode",
    "error_rates",
    "mel_filterbank",
    "pocketsphinx_available",
    "pocketsphinx_transcribe",
    "spec_augment",
]
