"""Anomaly detection: forecast-residual or reconstruction-error scores from rnnkit models, a
label-free threshold.

Example:
    >>> import numpy as np
    >>> from rnnkit.apps.anomaly import AnomalyDetector
    >>> values = np.sin(np.arange(1000) * 2 * np.pi / 24)  # a daily cycle, hourly
    >>> normal_values, new_values = values[:600], values[600:].copy()
    >>> new_values[200:210] = 0.0  # the cycle stops for 10 hours
    >>> detector = AnomalyDetector(context_length=24, epochs=2, batches_per_epoch=10)
    >>> detection = detector.fit(normal_values).detect(new_values)
    >>> list(detection.window_table())  # one row per anomalous window
    ['start', 'end', 'points', 'peak_score']
"""

from rnnkit.apps.anomaly.autoencoder import AutoencoderScorer
from rnnkit.apps.anomaly.detector import AnomalyDetector, Detection

__all__ = ["AnomalyDetector", "AutoencoderScorer", "Detection"]
