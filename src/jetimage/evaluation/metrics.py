"""ROC curves, AUC, background rejection and the bootstrap: the figures of ``metrics.json``.

Conventions (HEP): signal efficiency eps_S and background efficiency eps_B of a cut
``score > c``; the background rejection is 1/eps_B. All efficiencies use the event weights.
A figure that cannot be computed is ``None`` (``null`` in JSON), never a made-up number.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jetimage.stats import finite_std

log = logging.getLogger(__name__)

__all__ = ["BOOTSTRAP_STREAM", "FastROC", "ROUNDING", "auc", "bootstrap_factor", "json_safe", "null_keys",
           "rejection_at", "roc_curve", "tagger_metrics", "unit_interval", "working_point"]


#: Seed stream of the bootstrap (see :func:`jetimage.config.derive_seed`).
BOOTSTRAP_STREAM = 3


def roc_curve(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Signal and background efficiencies of cuts ``score >= c`` for every distinct c.

    Returns
    -------
    eps_s, eps_b : np.ndarray
        Increasing arrays from (0, 0) to (1, 1).
    """
    from sklearn.metrics import roc_curve as sk_roc  # deferred: scikit-learn loads slowly

    fpr, tpr, _ = sk_roc(labels, scores, sample_weight=weights, drop_intermediate=False)
    return tpr, fpr


class FastROC:
    """ROC curves of one tagger for many weight vectors (the bootstrap), sorting only once.

    Parameters
    ----------
    scores, labels
        ``(n,)`` tagger output and labels (1 = signal).
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(scores), kind="mergesort")
        s = np.asarray(scores)[self.order]
        # last position of each group of equal scores: one ROC point per distinct cut
        self.last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
        self.signal = np.asarray(labels)[self.order] == 1

    def curve(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(eps_s, eps_b)`` for the per-jet ``weights`` (``(n,)``), from (0, 0) to (1, 1).

        With non-negative weights both increase. Negative weights (NLO generators) are kept: each
        point is still the weighted fraction of its class passing the cut, but the curve may step
        back or leave [0, 1] (the figures computed from it are checked: :func:`unit_interval`). A
        class whose total weight is not positive has no efficiency: its array is NaN.
        """
        w = np.asarray(weights, dtype=np.float64)[self.order]
        ts = np.cumsum(np.where(self.signal, w, 0.0))[self.last]
        fs = np.cumsum(np.where(self.signal, 0.0, w))[self.last]
        # a total <= 0 was floored at 1e-300: AUC -2.8e303 for negative background weights
        return tuple(np.r_[0.0, c / c[-1]] if len(c) and c[-1] > 0 else np.full(len(c) + 1, np.nan)
                     for c in (ts, fs))  # type: ignore[return-value]


#: How far outside [0, 1] a weighted efficiency or AUC may fall by rounding alone.
ROUNDING = 1e-9


def unit_interval(x: float) -> float:
    """``x`` clipped to [0, 1] when it lies within :data:`ROUNDING` of it, else NaN (``null``).

    An efficiency or AUC outside [0, 1] comes from negative weights (a weighted sum over a part
    of a class exceeding the class's positive total): it is no probability, and is not written.
    """
    if not -ROUNDING <= x <= 1.0 + ROUNDING:
        return float("nan")
    return min(max(float(x), 0.0), 1.0)


def auc(eps_s: np.ndarray, eps_b: np.ndarray) -> float:
    """Area under eps_S(eps_B): probability that a signal jet scores above a background jet.

    With negative weights this is still the weighted sum over (signal, background) pairs divided
    by the product of the class totals, which may leave [0, 1]; then NaN (see :func:`unit_interval`).
    """
    return unit_interval(float(np.trapezoid(eps_s, eps_b)))


def rejection_at(eps_s: np.ndarray, eps_b: np.ndarray, target: float) -> float:
    """1/eps_B at signal efficiency ``target``; ``inf`` when no background passes the cut.

    Interpolates linearly between the last ROC point below ``target`` and the first point at
    or above it, so that on a plateau of eps_S (ties) the lowest eps_B is taken. With negative
    weights eps_S may step back: the first cut reaching ``target`` is taken, and an eps_B outside
    [0, 1] gives NaN (``null``).
    """
    if np.isnan(eps_s).any() or np.isnan(eps_b).any():
        return float("nan")
    eps_s = np.maximum.accumulate(eps_s)  # increasing, as searchsorted needs: the first cut reaching it
    i = int(np.searchsorted(eps_s, target, side="left"))
    if i >= len(eps_s):
        return 1.0
    if i == 0 or eps_s[i] == target:
        eps_b_at = float(eps_b[i])
    else:
        f = (target - eps_s[i - 1]) / (eps_s[i] - eps_s[i - 1])
        eps_b_at = float(eps_b[i - 1] + f * (eps_b[i] - eps_b[i - 1]))
    eps_b_at = unit_interval(eps_b_at)
    return 1.0 / eps_b_at if eps_b_at > 0 else float("inf") if eps_b_at == 0 else float("nan")


def tagger_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   efficiencies: Sequence[float], n_bootstrap: int = 0,
                   seed: int = 0) -> dict[str, Any]:
    """``{"auc": ..., "rejection": {"0.3": ..., "0.5": ...}}`` for one tagger.

    With ``n_bootstrap > 0``, ``auc_err`` and ``rejection_err`` hold the standard deviations
    over Poisson-bootstrap replicas of the test jets (each jet's weight times a Poisson(1)
    count, ``seed`` fixing the draws); infinite rejections of replicas are left out of the
    spread. Rejections may be ``inf`` here; :func:`json_safe` turns them into ``null``.

    Negative weights are kept (each class's total must be positive); an AUC or efficiency that
    they push outside [0, 1] is NaN (``null``) with a warning (:func:`unit_interval`), and
    replicas whose figures are NaN are left out of the spread.
    """
    roc = FastROC(scores, labels)
    eps_s, eps_b = roc.curve(weights)
    out: dict[str, Any] = {
        "auc": auc(eps_s, eps_b),
        "rejection": {f"{e:g}": rejection_at(eps_s, eps_b, e) for e in efficiencies},
    }
    figures = {"auc": out["auc"], **{f"rejection.{e}": r for e, r in out["rejection"].items()}}
    nulls = [k for k, v in figures.items() if np.isnan(v)]
    if nulls:
        log.warning("an AUC or efficiency outside [0, 1] (negative weights, or a class total weight <= 0): "
                    "null for %s", ", ".join(nulls))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        rej: dict[str, list[float]]
        aucs, rej = [], {f"{e:g}": [] for e in efficiencies}
        for _ in range(n_bootstrap):
            w = weights * rng.poisson(1.0, len(weights))
            if not (w[labels == 1].sum() > 0 and w[labels == 0].sum() > 0):
                continue  # a replica without one class (or a total weight <= 0) has no ROC curve
            es, eb = roc.curve(w)
            aucs.append(auc(es, eb))
            for e in efficiencies:
                rej[f"{e:g}"].append(rejection_at(es, eb, e))
        if len(aucs) < n_bootstrap:
            log.warning("%d of %d bootstrap replicas hold no signal or no background example (or a "
                        "class total weight <= 0) and are left out of the errors",
                        n_bootstrap - len(aucs), n_bootstrap)
        out["auc_err"] = finite_std(aucs)
        out["rejection_err"] = {k: finite_std(v) for k, v in rej.items()}
        out["n_bootstrap"] = n_bootstrap
    return out


def null_keys(obj: Any, prefix: str = "") -> list[str]:
    """The keys (``cnn.rejection.0.3``) of every non-finite float of ``obj``: nulls of the JSON."""
    if isinstance(obj, float | np.floating):
        return [] if math.isfinite(obj) else [prefix]
    if isinstance(obj, Mapping):
        return [k for key, v in obj.items() for k in null_keys(v, f"{prefix}.{key}" if prefix else str(key))]
    return []


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (``inf``, ``nan``) replaced by ``None`` (JSON null).

    In ``metrics.json`` a ``null`` rejection means that no background jet of the test split
    passes the cut (1/eps_B is infinite: too few test jets); a ``null`` uncertainty means the
    bootstrap could not estimate it (disabled, or fewer than two finite replicas).
    """
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def working_point(eps_s: np.ndarray, eps_b: np.ndarray, target_eps_b: float) -> float:
    """Signal efficiency of the ROC curve at background efficiency ``target_eps_b``.

    The ROC is a step function over thresholds; linear interpolation between its points
    (increasing ``eps_b``) is used, taking the largest ``eps_s`` at ties.
    """
    order = np.lexsort((eps_s, eps_b))
    b, s = eps_b[order], eps_s[order]
    ub, last = np.unique(b[::-1], return_index=True)
    return float(np.interp(target_eps_b, ub, s[::-1][last]))


def factor_at_cut(roc: FastROC, y: np.ndarray, w: np.ndarray, cut: np.ndarray) -> tuple[float, float, float]:
    """(cut-based eps_S, eps_B, CNN eps_S at that eps_B) for weights ``w``; NaN where a class total
    is not positive or negative weights push an efficiency outside [0, 1] (:func:`unit_interval`)."""
    sig, bkg = y == 1, y == 0
    ws, wb = w[sig].sum(), w[bkg].sum()
    if not (ws > 0 and wb > 0):
        return float("nan"), float("nan"), float("nan")
    cs, cb = unit_interval(w[sig & cut].sum() / ws), unit_interval(w[bkg & cut].sum() / wb)
    return cs, cb, unit_interval(working_point(*roc.curve(w), cb)) if np.isfinite(cb) else float("nan")


def bootstrap_factor(score: np.ndarray, y: np.ndarray, w: np.ndarray, cut: np.ndarray,
                     n: int, seed: int) -> dict[str, float]:
    """Spread of the CNN / cut-based signal-efficiency factor over ``n`` Poisson-bootstrap replicas.

    Each replica multiplies every test event's weight by a Poisson(1) count (the method of
    :func:`tagger_metrics`) and recomputes the cut-based efficiencies, the CNN ROC and the working
    point; the model stays fixed. Returns the standard deviation and 16/50/84 % quantiles of the
    factor, the relative spread of the cut-based background efficiency and the fraction of
    replicas with a factor of at least 1.5.
    """
    rng = np.random.default_rng(seed)
    roc = FastROC(score, y)
    factors, cut_bs = [], []
    cb: float | np.ndarray  # one replica's efficiency in the loop, then the array of them
    for _ in range(n):
        cs, cb, cnn_s = factor_at_cut(roc, y, w * rng.poisson(1.0, len(w)), cut)
        if cs > 0 and cb > 0:
            factors.append(cnn_s / cs)
            cut_bs.append(cb)
    f, cb = np.asarray(factors), np.asarray(cut_bs)
    if len(f) < 2:
        log.warning("the factor's bootstrap has %d usable replicas: no uncertainty", len(f))
        return {"n": len(f)}
    q16, q50, q84 = np.percentile(f, [16, 50, 84])
    return {"n": len(f), "factor_std": float(f.std(ddof=1)), "factor_q16": float(q16),
            "factor_median": float(q50), "factor_q84": float(q84),
            "cut_bkg_eff_rel_std": float(cb.std(ddof=1) / cb.mean()) if cb.mean() > 0 else float("nan"),
            "fraction_factor_ge_1p5": float((f >= 1.5).mean())}
