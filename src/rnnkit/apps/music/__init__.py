"""Music generation: RNNs that learn a corpus of music and compose new pieces.

- `piano_roll`: polyphonic next-frame models (LSTM/GRU with Bernoulli, NADE or MADE
  outputs), independent-Bernoulli and frame-repeat baselines, NLL per time step.
- `tokens`: melody and performance-event models with softmax outputs, n-gram baselines.
- `stats`: do generated pieces resemble the corpus (range, polyphony, density, pitch classes)?
- `render`: piano-roll PNGs and WAV audio (fluidsynth).
- `workflow`: train / evaluate / generate end to end, as ``rnnkit music`` runs them.
"""

from rnnkit.apps.music.piano_roll import PianoRollConfig, PianoRollLM, evaluate_piano_roll
from rnnkit.apps.music.tokens import TokenConfig, TokenLM, evaluate_tokens

__all__ = [
    "PianoRollConfig",
    "PianoRollLM",
    "TokenConfig",
    "TokenLM",
    "evaluate_piano_roll",
    "evaluate_tokens",
]
