"""Anomaly detection: forecast-residual scores from an rnnkit model, a label-free threshold.

Example:
    >>> from rnnkit.apps.anomaly import AnomalyDetector
    >>> detection = AnomalyDetector().fit(normal_values).detect(new_values)
    >>> detection.window_table()
"""

from rnnkit.apps.anomaly.detector import AnomalyDetector, Detection

__all__ = ["AnomalyDetector", "Detection"]
