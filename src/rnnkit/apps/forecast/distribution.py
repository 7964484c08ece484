"""Network -> distribution: predicted distributions and quantiles in the data's units.

The network predicts, for every window and step, the parameters of a Gaussian or Student-t
in the window's scaled (and deseasonalised) units. `to_data_units` maps them back; the
quantiles of an ensemble are the average of its members' quantiles (Vincentization) or, for
autoregressive members, the quantiles of their pooled sample paths.
"""

from __future__ import annotations

import numpy as np


def level_quantiles(level: float) -> tuple[float, float]:
    """The lower and upper quantiles of a central interval of ``level`` percent.

    Example:
        >>> level_quantiles(80)
        (0.1, 0.9)
    """
    tail = (1 - level / 100) / 2
    return round(tail, 6), round(1 - tail, 6)


def quantile(params: dict, q: float, likelihood: str) -> np.ndarray:
    """The ``q`` quantile of each (window, step) distribution ``params`` (loc, scale, df)."""
    from scipy import stats

    z = stats.t.ppf(q, params["df"]) if likelihood == "student_t" else stats.norm.ppf(q)
    return params["loc"] + params["scale"] * z


def to_data_units(
    params: dict,
    location: np.ndarray,
    scale: np.ndarray,
    seasonal: np.ndarray,
    shift: np.ndarray | float = 0.0,
) -> dict[str, np.ndarray]:
    """Distribution parameters (B, H) from the window's units to the data's.

    Args:
        params: ``loc``, ``scale`` (and ``df``), (B, H), in scaled units.
        location, scale: (B,) of each window (`windows.location_scale`).
        seasonal: (B, H) the seasonal factor of each step (ones when not deseasonalised).
        shift: (B, H) the seasonal shift of each step (`series.seasonal_components`).
    """
    out = dict(params)
    out["loc"] = (location[:, None] + scale[:, None] * params["loc"] + shift) * seasonal
    out["scale"] = scale[:, None] * params["scale"] * seasonal
    return out


def pooled_quantiles(
    members: list[dict], quantiles: tuple[float, ...], likelihood: str
) -> dict[float, np.ndarray]:
    """The average of the members' quantiles (q -> (B, H)): it keeps the quantiles ordered
    and is as wide as a typical member."""
    return {q: np.mean([quantile(p, q, likelihood) for p in members], 0) for q in quantiles}
