"""Planing (arXiv:1709.10106): training weights that flatten the mass (and pT) of each class, so that
the network cannot learn the mass from its distribution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["planing_weights"]


def _bin_of(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value; values outside the edges (or NaN) go to the edge bins."""
    return np.clip(np.searchsorted(edges, np.nan_to_num(x, nan=edges[0]), side="right") - 1,
                   0, len(edges) - 2)


def planing_weights(labels: np.ndarray, mass: np.ndarray, pt: np.ndarray, weights: np.ndarray,
                    mass_edges: np.ndarray, pt_edges: np.ndarray) -> np.ndarray:
    """Training weights under which neither the jet mass nor pT tells the classes apart.

    Each jet's weight is divided by its class's weighted mass histogram at its mass, so both
    classes have flat mass spectra over ``mass_edges``; then the signal weights are multiplied by
    the ratio of the normalized background and signal pT histograms (``pt_edges``, after the
    mass planing), so the pT spectra agree; finally each class has total weight n/2 (mean 1).

    Parameters
    ----------
    labels, mass, pt, weights
        ``(n,)`` labels (1 = signal), jet mass and pT (GeV), event weights.
    mass_edges, pt_edges
        Bin edges (GeV); values outside fall into the edge bins.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64 weights.
    """
    w = np.asarray(weights, np.float64).copy()
    mb, pb = _bin_of(mass, mass_edges), _bin_of(pt, pt_edges)
    for cls in (0, 1):
        c = labels == cls
        h = np.bincount(mb[c], w[c], len(mass_edges) - 1)
        w[c] /= np.where(h[mb[c]] > 0, h[mb[c]], 1.0)
    sig, bkg = labels == 1, labels == 0
    hs = np.bincount(pb[sig], w[sig], len(pt_edges) - 1)
    hb = np.bincount(pb[bkg], w[bkg], len(pt_edges) - 1)
    ratio = np.where(hs > 0, (hb / max(hb.sum(), 1e-300)) / np.where(hs > 0, hs / max(hs.sum(), 1e-300), 1.0),
                     1.0)
    w[sig] *= ratio[pb[sig]]
    for c in (sig, bkg):
        if w[c].sum() > 0:
            w[c] *= 0.5 * len(w) / w[c].sum()
    return w
