"""Anomaly detection: forecast-residual or reconstruction-error scores from rnnkit models, a
label-free threshold.

Example:
    >>> from rnnkit.apps.anomaly import AnomalyDetector
    >>> detection = AnomalyDetector().fit(normal_values).detect(new_values)
    >>> detection.window_table()
"""

from rnnkit.apps.anomaly.autoencoder import AutoencoderScorer
from rnnkit.apps.anomaly.detector import AnomalyDetector, Detection

__all__ = ["AnomalyDetector", "AutoencoderScorer", "Detection"]
