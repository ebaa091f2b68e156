"""The jet mass and the taggers: how much a cut sculpts the background's mass, and taggers made
not to (arXiv:1603.00027, arXiv:1709.10106, arXiv:2001.05310).

Sculpting metric (the convention of arXiv:2001.05310 and the ATLAS decorrelation studies): at the
cut ``score >= c`` that keeps the signal efficiency eps_S, the Jensen-Shannon divergence
(log base 2, in [0, 1]) between the unit-normalized mass histograms of the background jets that
pass and of those that fail; a tagger that leaves the background's mass alone has JSD ~ 0, i.e. a
large 1/JSD. Quoted beside 1/eps_B at the same cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

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
        out["inv_jsd_err"] = {k: _finite_std(reps[:, i]) for i, k in enumerate(keys)}
    return out


def _finite_std(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


# ---------------------------------------------------------------------------------------------
# DDT: designed decorrelated tau21 (arXiv:1603.00027)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# planing (arXiv:1709.10106)
# ---------------------------------------------------------------------------------------------


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
