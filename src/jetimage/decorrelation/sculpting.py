"""SCULPTDOC
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from jetimage.stats import finite_std

__all__ = ["Sculpting", "jensen_shannon", "mass_edges", "sculpting_metrics"]


log = logging.getLogger(__name__)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (log base 2, in [0, 1]) of two histograms.

    Parameters
    ----------
    p, q
        ``(n_bins,)`` non-negative bin contents (weights); each is normalized to unity here.

    Returns
    -------
    float
        ``JSD = KL(P || M) / 2 + KL(Q || M) / 2`` with ``M = (P + Q) / 2`` (0 log 0 = 0); NaN when
        either histogram is empty (the divergence is undefined).
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if not p.sum() > 0 or not q.sum() > 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        ok = a > 0
        return float(np.sum(a[ok] * np.log2(a[ok] / m[ok])))

    return max(0.5 * kl(p) + 0.5 * kl(q), 0.0)


class Sculpting:
    """1/JSD of the background mass between passing and failing jets, for many weight vectors
    (the bootstrap), sorting the scores once.

    Parameters
    ----------
    scores, labels, mass
        ``(n,)`` tagger output (higher = more signal-like), labels (1 = signal), jet mass (GeV).
    edges
        Mass bin edges (GeV); background jets outside them are left out of both histograms.
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray, mass: np.ndarray,
                 edges: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
        s = np.asarray(scores)[self.order]
        # last position of each group of equal scores: a cut never splits a tie
        self.last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
        self.signal = np.asarray(labels)[self.order] == 1
        m = np.asarray(mass, np.float64)[self.order]
        self.n_bins = len(edges) - 1
        b = np.searchsorted(edges, m, side="right") - 1
        b[m == edges[-1]] = self.n_bins - 1
        self.background = ~self.signal & (b >= 0) & (b < self.n_bins) & np.isfinite(m)
        self.bins = np.where(self.background, b, 0)

    def _n_pass(self, w: np.ndarray, efficiency: float) -> int:
        """Jets (in score order) passing the first cut whose signal efficiency reaches
        ``efficiency``, for the weights ``w`` in score order."""
        ts = np.cumsum(np.where(self.signal, w, 0.0))[self.last]
        g = min(int(np.searchsorted(ts / max(ts[-1], 1e-300), efficiency, side="left")),
                len(self.last) - 1)
        return int(self.last[g]) + 1

    def passing(self, weights: np.ndarray, efficiency: float) -> np.ndarray:
        """``(n,)`` bool in the input order: the jets passing the cut at ``efficiency``."""
        out = np.zeros(len(self.order), bool)
        out[self.order[:self._n_pass(np.asarray(weights, np.float64)[self.order], efficiency)]] = True
        return out

    def histograms(self, weights: np.ndarray, efficiency: float) -> tuple[np.ndarray, np.ndarray]:
        """Background mass histograms ``(n_bins,)`` of the jets passing and failing the cut that
        keeps the signal efficiency ``efficiency`` (the first cut reaching it), for ``weights``."""
        w = np.asarray(weights, np.float64)[self.order]
        n_pass = self._n_pass(w, efficiency)
        wb = np.where(self.background, w, 0.0)
        return (np.bincount(self.bins[:n_pass], wb[:n_pass], self.n_bins),
                np.bincount(self.bins[n_pass:], wb[n_pass:], self.n_bins))

    def inv_jsd(self, weights: np.ndarray, efficiency: float) -> float:
        """1/JSD at ``efficiency``: ``inf`` for JSD = 0 (no sculpting seen), NaN when the passing
        or the failing background is empty."""
        jsd = jensen_shannon(*self.histograms(weights, efficiency))
        return 1.0 / jsd if jsd > 0 else (float("inf") if jsd == 0 else float("nan"))


def mass_edges(value_range: Sequence[float], width: float) -> np.ndarray:
    """Bin edges of ``width`` GeV from ``value_range[0]`` covering ``value_range`` (GeV)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    n = max(1, int(np.ceil((hi - lo) / width - 1e-9)))
    return lo + width * np.arange(n + 1)


def sculpting_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                      mass: np.ndarray, edges: np.ndarray, efficiencies: Sequence[float],
                      n_bootstrap: int = 0, seed: int = 0, name: str = "") -> dict[str, Any]:
    """``{"inv_jsd": {"0.5": x}, "inv_jsd_err": {"0.5": dx}}`` of one tagger.

    The uncertainty is the standard deviation over ``n_bootstrap`` Poisson-bootstrap replicas
    (each jet's weight times a Poisson(1) count, ``seed`` fixing the draws), as for the other
    figures of ``metrics.json``; non-finite replicas are left out. A JSD of 0 (1/JSD infinite) or
    an empty passing or failing background is logged as a warning and written as null.
    """
    sc = Sculpting(scores, labels, mass, edges)
    keys = [f"{e:g}" for e in efficiencies]
    out: dict[str, Any] = {"inv_jsd": {k: sc.inv_jsd(weights, e) for k, e in zip(keys, efficiencies,
                                                                                  strict=True)}}
    for k, v in out["inv_jsd"].items():
        if not np.isfinite(v):
            log.warning("%s: 1/JSD at eps_S = %s is %s (%s): written as null", name or "tagger", k, v,
                        "JSD = 0: passing and failing background masses identical" if v == np.inf
                        else "no background jet passes or fails the cut")
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        reps = np.array([[sc.inv_jsd(weights * rng.poisson(1.0, len(weights)), e)
                          for e in efficiencies] for _ in range(n_bootstrap)])
        out["inv_jsd_err"] = {k: finite_std(cast(Sequence[float], reps[:, i])) for i, k in enumerate(keys)}
    return out
