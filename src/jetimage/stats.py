"""Statistics shared by the evaluation and the decorrelation metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["finite_std"]


def finite_std(values: Sequence[float]) -> float:
    """Sample standard deviation of the finite values (NaN with fewer than two): the spread of
    bootstrap replicas, some of which may have no figure."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
