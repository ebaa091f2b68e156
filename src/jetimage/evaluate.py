"""Evaluation on the test split: CNN scores, physics baselines, ROC curves and metrics.

Conventions (HEP): signal efficiency eps_S and background efficiency eps_B of a cut
``score > c``; the background rejection is 1/eps_B. All efficiencies use the event weights.

Taggers, all scored on the same test jets (arXiv:1511.05190, arXiv:1407.5675):

- ``mass``, ``tau21``, ``delta_r``: one jet variable each (trimmed mass, tau21 with
  winner-take-all axes, Delta R of the two leading subjets), used through its binned likelihood
  ratio p_S(x)/p_B(x) from the training split, the optimal use of one variable;
- ``mass_tau21``: the 2D binned likelihood ratio of mass and tau21 (training split);
- ``fisher``: Fisher's linear discriminant on the pixels (scikit-learn, training split);
- ``cnn``: the trained network;
- ``cnn_mass``: the 2D binned likelihood ratio of the CNN output and the mass, fit on the
  validation split (the CNN was trained on the training split, so its scores there are biased).

Options (``evaluate`` config section): ``mass_window`` restricts the fits and the metrics to jets
with ``lo < m < hi`` GeV; ``reweight_pt`` multiplies the signal weights by the ratio of the
background and signal pT spectra, so that pT cannot discriminate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, ConfigError, derive_seed
from .io import atomic_path, read_images
from .train import dataset_split

log = logging.getLogger(__name__)

#: Single-variable baselines: metrics name -> HDF5 column, with the range of the histogram.
BASELINES: dict[str, tuple[str, tuple[float, float]]] = {
    "mass": ("jet_m", (0.0, 300.0)),
    "tau21": ("tau21", (0.0, 1.0)),
    "delta_r": ("delta_r", (0.0, 1.5)),
}
#: Every tagger of ``metrics.json``, in the order of the plots' legends.
TAGGERS = ("cnn", "cnn_mass", "fisher", "mass_tau21", "tau21", "delta_r", "mass")
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
    from sklearn.metrics import roc_curve as sk_roc

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
        """``(eps_s, eps_b)`` for the per-jet ``weights`` (``(n,)``), increasing from (0, 0)."""
        w = np.asarray(weights, dtype=np.float64)[self.order]
        ts = np.cumsum(np.where(self.signal, w, 0.0))[self.last]
        fs = np.cumsum(np.where(self.signal, 0.0, w))[self.last]
        return (np.r_[0.0, ts / max(ts[-1], 1e-300)], np.r_[0.0, fs / max(fs[-1], 1e-300)])


def auc(eps_s: np.ndarray, eps_b: np.ndarray) -> float:
    """Area under eps_S(eps_B): probability that a signal jet scores above a background jet."""
    return float(np.trapezoid(eps_s, eps_b))


def rejection_at(eps_s: np.ndarray, eps_b: np.ndarray, target: float) -> float:
    """1/eps_B at signal efficiency ``target``; ``inf`` when no background passes the cut.

    Interpolates linearly between the last ROC point below ``target`` and the first point at
    or above it, so that on a plateau of eps_S (ties) the lowest eps_B is taken.
    """
    i = int(np.searchsorted(eps_s, target, side="left"))
    if i >= len(eps_s):
        return 1.0
    if i == 0 or eps_s[i] == target:
        eps_b_at = float(eps_b[i])
    else:
        f = (target - eps_s[i - 1]) / (eps_s[i] - eps_s[i - 1])
        eps_b_at = float(eps_b[i - 1] + f * (eps_b[i] - eps_b[i - 1]))
    return 1.0 / eps_b_at if eps_b_at > 0 else float("inf")


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


def tagger_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   efficiencies: Sequence[float], n_bootstrap: int = 0,
                   seed: int = 0) -> dict[str, Any]:
    """``{"auc": ..., "rejection": {"0.3": ..., "0.5": ...}}`` for one tagger.

    With ``n_bootstrap > 0``, ``auc_err`` and ``rejection_err`` hold the standard deviations
    over Poisson-bootstrap replicas of the test jets (each jet's weight times a Poisson(1)
    count, ``seed`` fixing the draws); infinite rejections of replicas are left out of the
    spread. Rejections may be ``inf`` here; :func:`json_safe` turns them into ``null``.
    """
    roc = FastROC(scores, labels)
    eps_s, eps_b = roc.curve(weights)
    out: dict[str, Any] = {
        "auc": auc(eps_s, eps_b),
        "rejection": {f"{e:g}": rejection_at(eps_s, eps_b, e) for e in efficiencies},
    }
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        aucs, rej = [], {f"{e:g}": [] for e in efficiencies}
        for _ in range(n_bootstrap):
            es, eb = roc.curve(weights * rng.poisson(1.0, len(weights)))
            aucs.append(auc(es, eb))
            for e in efficiencies:
                rej[f"{e:g}"].append(rejection_at(es, eb, e))
        out["auc_err"] = float(np.std(aucs, ddof=1)) if n_bootstrap > 1 else float("nan")
        out["rejection_err"] = {k: _finite_std(v) for k, v in rej.items()}
        out["n_bootstrap"] = n_bootstrap
    return out


def _finite_std(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


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


def fisher_discriminant(train_images: np.ndarray, train_y: np.ndarray) -> Any:
    """Fisher's linear discriminant on the pixels (arXiv:1407.5675), fit with scikit-learn.

    Parameters
    ----------
    train_images
        ``(n, n_eta, n_phi, n_channels)`` images of the fitting jets.
    train_y
        ``(n,)`` labels.

    Returns
    -------
    sklearn.discriminant_analysis.LinearDiscriminantAnalysis
        Fit with equal class priors and Ledoit-Wolf shrinkage of the pixel covariance (stable
        when pixels are empty or jets are fewer than pixels); score with ``decision_function``
        on images flattened to ``(n, n_pixels)``. Event weights are not used (scikit-learn's
        LDA takes none); the classes are balanced by the priors.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=[0.5, 0.5])
    lda.fit(train_images.reshape(len(train_images), -1).astype(np.float64), train_y)
    return lda


def weighted_correlation(score: np.ndarray, pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted Pearson correlation of ``score`` (``(n,)``) with ``pixels``
    (``(n, ...)``); pixels without spread get 0. Returns an array of shape ``pixels.shape[1:]``."""
    w = weights / max(weights.sum(), 1e-300)
    p = pixels.reshape(len(pixels), -1).astype(np.float64)
    ds = score - (w * score).sum()
    dp = p - w @ p
    cov = (w * ds) @ dp
    var_p = w @ (dp * dp)
    var_s = (w * ds * ds).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.sqrt(var_p * var_s)
    return np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0).reshape(pixels.shape[1:])


def _predict(model: Any, images: np.ndarray, rows: np.ndarray, batch: int = 4096) -> np.ndarray:
    out = [model.predict(images[rows[i:i + batch]], batch_size=1024, verbose=0).ravel()
           for i in range(0, len(rows), batch)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def evaluate(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
             metrics_path: str | Path, scores_path: str | Path | None = None,
             preprocessing_path: str | Path | None = None) -> dict[str, Any]:
    """Score the test split with the CNN and every baseline; write ``metrics.json``.

    Returns
    -------
    dict
        ``{tagger: {"auc": x, "auc_err": dx, "rejection": {"0.3": r, ...},
        "rejection_err": {"0.3": dr, ...}, "n_bootstrap": b}}`` for every name of
        :data:`TAGGERS`; ``n_test`` (test jets per class, inside the mass window if any);
        ``selection`` (the mass window and pT reweighting used); and, when
        ``preprocessing_path`` is given, ``preprocessing``: the image-mass study of
        :func:`jetimage.diagnostics.run_study`. Non-finite numbers are written as ``null``
        (:func:`json_safe`).

    The scores file (``.npz``) holds every test jet, also those outside the mass window
    (``in_window`` flags them), so that the plots can show what a CNN cut does to the mass:
    ``labels``, ``weights`` (pT-reweighted if configured), ``score_<tagger>``, the jet
    variables ``mass``, ``tau21``, ``delta_r``, ``jet_pt``, and, from the test jets in the
    window, ``mean_image_signal``, ``mean_image_background`` (weighted means of the images
    summed over channels, ``(n_eta, n_phi)``) and ``corr_cnn_pixel`` (correlation of the CNN
    output with each pixel's intensity).
    """
    import keras

    ecfg = cfg["evaluate"]
    effs = ecfg["efficiencies"]
    data = read_images(inputs, columns=["jet_m", "tau21", "delta_r", "jet_pt"])
    images = data["images"]
    labels, weights = data["labels"].astype(int), data["weights"].astype(np.float64)
    mass = data["jet_m"].astype(np.float64)
    window = ecfg["mass_window"]
    if window is not None and not window[0] < window[1]:
        raise ConfigError(f"evaluate.mass_window: {window} must be [lo, hi] with lo < hi (GeV)")
    in_window = ((mass > window[0]) & (mass < window[1]) if window is not None
                 else np.ones(len(labels), bool))
    if ecfg["reweight_pt"]:
        j = cfg["jets"]
        weights = weights.copy()
        weights[in_window] = pt_weights(data["jet_pt"][in_window].astype(np.float64),
                                        labels[in_window], weights[in_window], ecfg["pt_bins"],
                                        (j["pt_min"], j["pt_max"]))
    split = dataset_split(cfg, len(labels))
    tr = split["train"][in_window[split["train"]]]
    va = split["validation"][in_window[split["validation"]]]
    te_all = split["test"]
    te = te_all[in_window[te_all]]
    log.info("evaluating on %d test jets (%d in the mass window %s), pT reweighting %s",
             len(te_all), len(te), window, ecfg["reweight_pt"])

    model = keras.saving.load_model(model_path, safe_mode=True)
    cnn_val = _predict(model, images, va)
    scores: dict[str, np.ndarray] = {"cnn": _predict(model, images, te_all)}
    for name, (column, value_range) in BASELINES.items():
        x = data[column].astype(np.float64)
        scores[name] = likelihood_ratio(x[tr], labels[tr], weights[tr], x[te_all],
                                        ecfg["likelihood_bins"], value_range)
    b2 = bins_2d(ecfg["likelihood_bins_2d"], len(tr))
    mt = np.c_[mass, data["tau21"].astype(np.float64)]
    scores["mass_tau21"] = likelihood_ratio_2d(
        mt[tr], labels[tr], weights[tr], mt[te_all],
        (quantile_edges(mt[tr, 0], b2), quantile_edges(mt[tr, 1], b2)))
    b2 = bins_2d(ecfg["likelihood_bins_2d"], len(va))
    fisher = fisher_discriminant(images[tr], labels[tr])
    scores["fisher"] = fisher.decision_function(
        images[te_all].reshape(len(te_all), -1).astype(np.float64))
    cm_val = np.c_[cnn_val, mass[va]]
    scores["cnn_mass"] = likelihood_ratio_2d(
        cm_val, labels[va], weights[va], np.c_[scores["cnn"], mass[te_all]],
        (quantile_edges(cnn_val, b2), quantile_edges(mass[va], b2)))

    sel = in_window[te_all]
    seed = derive_seed(cfg["seed"], BOOTSTRAP_STREAM)
    metrics: dict[str, Any] = {
        name: tagger_metrics(scores[name][sel], labels[te], weights[te], effs,
                             ecfg["bootstrap"], seed)
        for name in TAGGERS
    }
    metrics["n_test"] = {"signal": int((labels[te] == 1).sum()),
                         "background": int((labels[te] == 0).sum())}
    metrics["selection"] = {"mass_window": window, "reweight_pt": ecfg["reweight_pt"]}
    if preprocessing_path is not None:
        metrics["preprocessing"] = json.loads(Path(preprocessing_path).read_text())
    for name in TAGGERS:
        log.info("%-10s AUC %.4f  1/eps_B %s", name, metrics[name]["auc"], metrics[name]["rejection"])
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    if scores_path is not None:
        img = images[te].sum(axis=-1)
        sig = labels[te] == 1
        extra = {
            "mean_image_signal": np.average(img[sig], axis=0, weights=weights[te][sig])
            if sig.any() else np.zeros(img.shape[1:]),
            "mean_image_background": np.average(img[~sig], axis=0, weights=weights[te][~sig])
            if (~sig).any() else np.zeros(img.shape[1:]),
            "corr_cnn_pixel": weighted_correlation(scores["cnn"][sel], img, weights[te]),
        }
        with atomic_path(scores_path) as tmp:
            np.savez(tmp, labels=labels[te_all], weights=weights[te_all], in_window=sel,
                     **{f"score_{k}": v for k, v in scores.items()},
                     mass=mass[te_all], tau21=data["tau21"][te_all], delta_r=data["delta_r"][te_all],
                     jet_pt=data["jet_pt"][te_all], **extra)
    return metrics
