"""Binned likelihood ratios p_S(x)/p_B(x) of one or two variables (the optimal use of few variables),
and the pT reweighting of the signal.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bins_2d", "likelihood_ratio", "likelihood_ratio_2d", "pt_weights", "quantile_edges"]


def _floor(train_y: np.ndarray, train_w: np.ndarray) -> float:
    """Content given to empty background bins: half the mean background weight."""
    return 0.5 * float(train_w[train_y == 0].mean()) if (train_y == 0).any() else 1.0


def likelihood_ratio(
    train_x: np.ndarray, train_y: np.ndarray, train_w: np.ndarray, x: np.ndarray,
    bins: int, value_range: tuple[float, float],
) -> np.ndarray:
    """Binned likelihood ratio p_S(x)/p_B(x) from the training split, evaluated at ``x``.

    Values outside the range fall into the first or last bin; NaNs get the lowest score.
    Empty background bins get a ratio as if they held half an entry, so they rank highest
    but stay finite.
    """
    edges = np.linspace(*value_range, bins + 1)
    ok = np.isfinite(train_x)
    hs, _ = np.histogram(np.clip(train_x[ok & (train_y == 1)], *value_range), edges,
                         weights=train_w[ok & (train_y == 1)])
    hb, _ = np.histogram(np.clip(train_x[ok & (train_y == 0)], *value_range), edges,
                         weights=train_w[ok & (train_y == 0)])
    ps = hs / max(hs.sum(), 1e-300)
    pb = np.maximum(hb, _floor(train_y, train_w)) / max(hb.sum(), 1e-300)
    ratio = ps / pb
    idx = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
    return np.where(np.isfinite(x), ratio[idx], -1.0)


def quantile_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges at the quantiles of the finite values of ``x`` (``bins`` bins or fewer on ties)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    return edges if len(edges) > 1 else np.array([edges[0] - 0.5, edges[0] + 0.5])


def likelihood_ratio_2d(
    train_x: np.ndarray, train_y: np.ndarray, train_w: np.ndarray, x: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Binned 2D likelihood ratio p_S(x1, x2)/p_B(x1, x2), evaluated at ``x``.

    Parameters
    ----------
    train_x, x
        ``(n, 2)`` fitting and evaluation points.
    train_y, train_w
        ``(n,)`` labels (1 = signal) and weights of the fitting points.
    edges
        Bin edges of each variable (e.g. :func:`quantile_edges`); values outside fall into the
        first or last bin.

    Returns
    -------
    np.ndarray
        ``(len(x),)`` ratios; rows with a NaN get -1, the lowest score. Empty background bins
        are treated as holding half an average entry, as in :func:`likelihood_ratio`.
    """
    def index(values: np.ndarray) -> np.ndarray:
        i = [np.clip(np.searchsorted(e, values[:, k], side="right") - 1, 0, len(e) - 2)
             for k, e in enumerate(edges)]
        return i[0] * (len(edges[1]) - 1) + i[1]

    n_bins = (len(edges[0]) - 1) * (len(edges[1]) - 1)
    ok = np.isfinite(train_x).all(axis=1)
    hs = np.bincount(index(train_x[ok & (train_y == 1)]), train_w[ok & (train_y == 1)], n_bins)
    hb = np.bincount(index(train_x[ok & (train_y == 0)]), train_w[ok & (train_y == 0)], n_bins)
    ratio = (hs / max(hs.sum(), 1e-300)) / (np.maximum(hb, _floor(train_y, train_w))
                                            / max(hb.sum(), 1e-300))
    good = np.isfinite(x).all(axis=1)
    out = np.full(len(x), -1.0)
    out[good] = ratio[index(x[good])]
    return out


def bins_2d(max_bins: int, n_fit: int, per_bin: int = 20) -> int:
    """Bins per axis of a 2D likelihood ratio fit on ``n_fit`` jets: ``max_bins``, fewer when
    the jets are too few to give about ``per_bin`` jets per bin on average (at least 2)."""
    return int(min(max_bins, max(2, math.isqrt(max(n_fit // per_bin, 0)))))


def pt_weights(pt: np.ndarray, labels: np.ndarray, weights: np.ndarray, bins: int,
               value_range: tuple[float, float]) -> np.ndarray:
    """Weights with the signal pT spectrum reweighted to the background's.

    Each signal jet's weight is multiplied by h_B(pT)/h_S(pT), the ratio of the normalized
    weighted background and signal histograms (``bins`` bins over ``value_range`` in GeV;
    values outside fall into the edge bins; bins without signal keep factor 1). Background
    weights are unchanged; the total signal weight is kept.

    Returns
    -------
    np.ndarray
        ``(n,)`` new weights.
    """
    edges = np.linspace(*value_range, bins + 1)
    idx = np.clip(np.digitize(pt, edges) - 1, 0, bins - 1)
    sig = labels == 1
    hs = np.bincount(idx[sig], weights[sig], bins)
    hb = np.bincount(idx[~sig], weights[~sig], bins)
    factor = np.where(hs > 0, (hb / max(hb.sum(), 1e-300)) / np.where(hs > 0, hs, 1.0)
                      * max(hs.sum(), 1e-300), 1.0)
    out = np.asarray(weights, dtype=np.float64).copy()
    out[sig] *= factor[idx[sig]]
    if out[sig].sum() > 0:
        out[sig] *= weights[sig].sum() / out[sig].sum()
    return out
