"""DDT: the designed decorrelated tau21 (arXiv:1603.00027), tau21' = tau21 - M rho', with
rho' = log(m^2 / (pT mu)) and the slope M fit to the QCD profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ddt_score", "fit_ddt", "rho_prime"]


def rho_prime(mass: np.ndarray, pt: np.ndarray, mu: float = 1.0) -> np.ndarray:
    """``rho' = log(m^2 / (pT mu))`` of each jet (m, pT, mu in GeV): ``(n,)``; NaN for m <= 0."""
    m, p = np.asarray(mass, np.float64), np.asarray(pt, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((m > 0) & (p > 0), np.log(m * m / (p * mu)), np.nan)


def fit_ddt(tau21: np.ndarray, rho: np.ndarray, weights: np.ndarray,
            fit_range: Sequence[float], bins: int) -> tuple[float, float]:
    """Slope M and intercept of the QCD profile <tau21>(rho'), a straight line.

    The weighted mean of tau21 in ``bins`` equal bins of rho' over ``fit_range`` is fit with a
    line by least squares, each bin weighted by its summed jet weight (a bin's error ~ 1/sqrt
    of it). Pass the background jets of the training split.

    Returns
    -------
    slope, intercept : float
        ``<tau21> ~= intercept + slope * rho'``.

    Raises
    ------
    ValueError
        With fewer than two filled bins (no line can be fit).
    """
    edges = np.linspace(fit_range[0], fit_range[1], bins + 1)
    ok = np.isfinite(rho) & np.isfinite(tau21) & (rho >= edges[0]) & (rho < edges[-1])
    idx = np.clip(np.searchsorted(edges, rho[ok], side="right") - 1, 0, bins - 1)
    sw = np.bincount(idx, weights[ok], bins)
    st = np.bincount(idx, weights[ok] * tau21[ok], bins)
    filled = sw > 0
    if filled.sum() < 2:
        raise ValueError(f"evaluate.ddt: fewer than two filled rho' bins in {list(fit_range)}: "
                         "no DDT slope can be fit (too few background training jets)")
    centres = 0.5 * (edges[1:] + edges[:-1])
    slope, intercept = np.polyfit(centres[filled], st[filled] / sw[filled], 1, w=np.sqrt(sw[filled]))
    return float(slope), float(intercept)


def ddt_score(tau21: np.ndarray, rho: np.ndarray, slope: float) -> np.ndarray:
    """The DDT tagger's score ``-(tau21 - M rho')`` (higher = more W-like): ``(n,)``; jets without
    a finite tau21' (m = 0, tau21 undefined) get the lowest score."""
    x = -(np.asarray(tau21, np.float64) - slope * rho)
    ok = np.isfinite(x)
    return np.where(ok, x, (x[ok].min() - 1.0) if ok.any() else -1.0)
