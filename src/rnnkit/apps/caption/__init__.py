"""Image and video captioning: a CNN that sees, an LSTM that writes (with soft attention).

Composed scenes of real Fashion-MNIST items and MNIST digits, moving-item clips, or the
user's COCO-format captions; greedy and beam search; BLEU, CIDEr-D and fact accuracy on a
compositional test split; attention maps per word.

Example:
    >>> from rnnkit.apps.caption import CaptionConfig, Captioner, synthetic_data
    >>> data = synthetic_data("image", train_size=32, test_size=8)  # the README's: 4000, 300
    >>> config = CaptionConfig(epochs=1, feature_size=16, hidden_size=32)  # the README's: 12 epochs
    >>> captioner = Captioner(config).fit(data.train_inputs, data.train_captions)
    >>> captioner.predict(data.test_inputs[:3], beam_width=3)  # doctest: +ELLIPSIS
    ['...', '...', '...']
"""

from rnnkit.apps.caption.captioner import (
    CaptionConfig,
    Captioner,
    NearestNeighbourCaptioner,
    Vocabulary,
)
from rnnkit.apps.caption.experiment import (
    CaptionData,
    baseline_comparisons,
    compare_captioners,
    evaluate_predictions,
    synthetic_data,
)
from rnnkit.apps.caption.metrics import (
    bleu,
    caption_metrics,
    cider_d,
    compare_bleu4,
    fact_accuracy,
)

__all__ = [
    "CaptionConfig",
    "CaptionData",
    "Captioner",
    "NearestNeighbourCaptioner",
    "Vocabulary",
    "baseline_comparisons",
    "bleu",
    "caption_metrics",
    "cider_d",
    "compare_bleu4",
    "compare_captioners",
    "evaluate_predictions",
    "fact_accuracy",
    "synthetic_data",
]
