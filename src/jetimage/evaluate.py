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
  validation split (the CNN was trained on the training split, so its scores there are biased);
- ``tau21_ddt``: the designed decorrelated tau21' = tau21 - M rho' (arXiv:1603.00027), with
  rho' = log(m^2 / (pT * 1 GeV)) and the slope M fit to the QCD profile of the training split.

Options (``evaluate`` config section): ``mass_window`` restricts the fits and the metrics to jets
with ``lo < m < hi`` GeV; ``reweight_pt`` multiplies the signal weights by the ratio of the
background and signal pT spectra, so that pT cannot discriminate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .apply import check_definition, stored_definition
from .config import Config, ConfigError, derive_seed
from .decorrelation import ddt_score, fit_ddt, mass_edges, rho_prime, sculpting_metrics
from .fatjets import EVENT_VARIABLES
from .io import InputError, atomic_paths, contiguous_reads, finite_images, image_attrs, read_columns
from .train import dataset_split, file_rows

log = logging.getLogger(__name__)

#: Single-variable baselines: metrics name -> HDF5 column, with the range of the histogram.
BASELINES: dict[str, tuple[str, tuple[float, float]]] = {
    "mass": ("jet_m", (0.0, 300.0)),
    "tau21": ("tau21", (0.0, 1.0)),
    "delta_r": ("delta_r", (0.0, 1.5)),
}
#: Every tagger of ``metrics.json``, in the order of the plots' legends.
TAGGERS = ("cnn", "cnn_mass", "fisher", "mass_tau21", "tau21", "delta_r", "mass", "tau21_ddt")
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
            w = weights * rng.poisson(1.0, len(weights))
            if not (w[labels == 1].sum() > 0 and w[labels == 0].sum() > 0):
                continue  # a replica without one class has no ROC curve
            es, eb = roc.curve(w)
            aucs.append(auc(es, eb))
            for e in efficiencies:
                rej[f"{e:g}"].append(rejection_at(es, eb, e))
        if len(aucs) < n_bootstrap:
            log.warning("%d of %d bootstrap replicas hold no signal or no background example and are "
                        "left out of the errors", n_bootstrap - len(aucs), n_bootstrap)
        out["auc_err"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else float("nan")
        out["rejection_err"] = {k: _finite_std(v) for k, v in rej.items()}
        out["n_bootstrap"] = n_bootstrap
    return out


def _finite_std(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


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


def fisher_discriminant(train_images: np.ndarray, train_y: np.ndarray) -> Any:
    """Fisher's linear discriminant on the pixels (arXiv:1407.5675), fit with scikit-learn in memory.

    The reference of :func:`fit_fisher` (which streams and gives the same scores): kept for
    tests and small studies.

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


#: Bytes of float64 pixels handled at once by the streamed Fisher fit (a sub-block of images).
FISHER_BLOCK_BYTES = 64 * 2**20


def fisher_bytes(n_pixels: int) -> int:
    """Peak bytes of :func:`fit_fisher` beyond the image blocks: two ``n_pixels^2`` float64 matrices
    (one class's scatter, the pooled covariance; the solve works in place) and a third for the
    solver's workspace and temporaries, counted in full to stay on the safe side."""
    return 3 * 8 * n_pixels**2


def image_pixels(path: str | Path) -> int:
    """Values per image of an HDF5 image file: ``n_eta * n_phi * n_channels``."""
    import h5py

    with h5py.File(path, "r") as f:
        return int(np.prod(f["images"].shape[1:]))


def use_fisher(ecfg: Mapping[str, Any], n_pixels: int) -> bool:
    """Whether the ``fisher`` tagger is computed: ``evaluate.fisher`` true, or ``auto`` with at most
    ``evaluate.fisher_max_pixels`` pixels. A skipped tagger is ``null`` in ``metrics.json``, with
    the reason in the log."""
    mode = ecfg.get("fisher", "auto")
    if mode is False:
        log.info("evaluate.fisher is false: the fisher tagger is not computed (null in metrics.json)")
        return False
    limit = ecfg.get("fisher_max_pixels", 10000)
    if mode == "auto" and n_pixels > limit:
        log.warning("the Fisher discriminant on %d pixels would need %.1f GiB (its pixel covariance), over "
                    "evaluate.fisher_max_pixels = %d: skipped, fisher is null in metrics.json (set "
                    "evaluate.fisher: true to compute it anyway)",
                    n_pixels, fisher_bytes(n_pixels) / 2**30, limit)
        return False
    return True


@dataclass
class Fisher:
    """A fitted two-class Fisher discriminant: ``score = x . coef + intercept`` on flattened
    ``(n, n_pixels)`` images (the log likelihood ratio of the signal class under Gaussian
    classes of common covariance, as scikit-learn's ``decision_function``)."""

    coef: np.ndarray
    intercept: float

    def decision_function(self, flat: np.ndarray) -> np.ndarray:
        """``(n,)`` float64 scores of ``(n, n_pixels)`` images."""
        return np.asarray(flat, np.float64) @ self.coef + self.intercept


def _sub_blocks(blocks: Iterator[np.ndarray], n_pixels: int, block_bytes: int) -> Iterator[np.ndarray]:
    """Float64 ``(m, n_pixels)`` pieces of the image blocks, at most ``block_bytes`` each."""
    step = max(1, block_bytes // (8 * n_pixels))
    for images in blocks:
        flat = images.reshape(len(images), -1)
        for i in range(0, len(flat), step):
            yield flat[i:i + step].astype(np.float64)


def _moments(blocks: Iterator[np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """(n, mean, variance) per pixel of streamed ``(m, p)`` blocks (Chan's pairwise merge)."""
    n, mean, m2 = 0, 0.0, 0.0
    for x in blocks:
        k, bm = len(x), x.mean(axis=0)
        bm2 = ((x - bm) ** 2).sum(axis=0)
        delta = bm - mean
        mean = mean + delta * k / (n + k)
        m2 = m2 + bm2 + delta**2 * n * k / (n + k)
        n += k
    return n, np.asarray(mean), np.asarray(m2) / n


def _scale(n: int, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """scikit-learn's StandardScaler scale: the standard deviation, 1 for (near-)constant pixels."""
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return np.where(constant, 1.0, np.sqrt(var))


def _shrunk_class_cov(blocks: Any, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """The Ledoit-Wolf shrunk covariance of one class in pixel units, as scikit-learn's LDA with
    ``shrinkage="auto"`` computes it (on standardized pixels, then rescaled), from two streamed
    passes; and the class mean. ``blocks()`` yields the class's float64 ``(m, p)`` pieces."""
    from scipy.linalg.blas import dsyrk

    n, mean, var = _moments(blocks())
    scale = _scale(n, mean, var)
    s = np.zeros((n_pixels, n_pixels), order="F")
    quartic = 0.0  # sum over examples of |z|^4
    for x in blocks():
        z = (x - mean) / scale
        s = dsyrk(1.0, z, beta=1.0, c=s, trans=1, lower=0, overwrite_c=1)
        quartic += float(((z * z).sum(axis=1) ** 2).sum())
    for j in range(0, n_pixels, 1024):  # the lower triangle from the upper, block by block
        s[j + 1024:, j:j + 1024] = s[j:j + 1024, j + 1024:].T
        d = s[j:j + 1024, j:j + 1024]
        d[...] = np.triu(d) + np.triu(d, 1).T
    trace = float(np.trace(s)) / n  # of the empirical covariance S / n
    frob2 = sum(float((s[:, j:j + 1024] ** 2).sum()) for j in range(0, n_pixels, 1024)) / n**2
    mu = trace / n_pixels
    beta = (quartic / n - frob2) / (n_pixels * n)
    delta = (frob2 - 2.0 * mu * trace + n_pixels * mu**2) / n_pixels
    shrinkage = 0.0 if beta == 0 else min(beta, delta) / delta
    s *= (1.0 - shrinkage) / n
    s[np.diag_indices(n_pixels)] += shrinkage * mu
    s *= scale[:, None]
    s *= scale[None, :]
    return s, mean


def fit_fisher(paths: Sequence[str | Path], rows: np.ndarray, labels: np.ndarray, n_pixels: int,
               block_bytes: int = FISHER_BLOCK_BYTES) -> Fisher:
    """Fisher's linear discriminant of the images at the sorted global ``rows``, streamed.

    The same discriminant as :func:`fisher_discriminant` (scikit-learn's LDA with the ``lsqr``
    solver, Ledoit-Wolf shrinkage and equal priors; tests check the scores agree), computed
    from sums over blocks of images (two passes per class), so memory is
    :func:`fisher_bytes` ``(n_pixels)`` plus one block, whatever the number of examples.

    Parameters
    ----------
    rows
        ``(n,)`` sorted global rows of the fitting split.
    labels
        ``(n,)`` labels of those rows (1 signal, 0 background).
    n_pixels
        ``n_eta * n_phi * n_channels``.
    block_bytes
        Float64 pixels handled at once (bytes).
    """
    from scipy.linalg import lstsq

    cov, means = None, []
    for cls in (0, 1):
        sel = rows[labels == cls]

        def blocks(sel: np.ndarray = sel) -> Iterator[np.ndarray]:
            return _sub_blocks((im for _, im in iterate_rows(paths, sel)), n_pixels, block_bytes)

        s, mean = _shrunk_class_cov(blocks, n_pixels)
        means.append(mean)
        s *= 0.5  # equal priors
        if cov is None:
            cov = s
        else:
            cov += s
            del s
    m = np.stack(means, axis=1)  # (p, 2)
    coef = lstsq(cov, m, overwrite_a=True, check_finite=False)[0].T  # (2, p); cov is symmetric
    w = coef[1] - coef[0]
    return Fisher(w, float(-0.5 * (m[:, 1] @ coef[1] - m[:, 0] @ coef[0])))


class ImageSummary:
    """Per-class weighted mean images and the per-pixel correlation of a score with the pixel
    intensity, accumulated block by block (float64 sums), so the images need not fit in memory.

    The pixel intensity is the sum over the energy channels (every channel but ``charged_count``).
    """

    def __init__(self, channels: Sequence[str]) -> None:
        self.use = [c != "charged_count" for c in channels] if len(channels) > 1 else [True]
        self.sums: dict[str, Any] = {}

    def add(self, images: np.ndarray, score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> None:
        """Accumulate ``(n, n_eta, n_phi, n_channels)`` images with their ``(n,)`` score, labels, weights."""
        pix = images[..., np.asarray(self.use)].sum(axis=-1, dtype=np.float64)
        flat = pix.reshape(len(pix), -1)
        w = np.asarray(weights, np.float64)
        terms = {"w": w.sum(), "ws": w @ score, "wss": w @ (score * score), "wp": w @ flat,
                 "wpp": w @ (flat * flat), "wsp": (w * score) @ flat,
                 "sig": (w * (labels == 1)) @ flat, "w_sig": w[labels == 1].sum(),
                 "bkg": (w * (labels == 0)) @ flat, "w_bkg": w[labels == 0].sum()}
        self.shape = pix.shape[1:]
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def result(self) -> dict[str, np.ndarray]:
        """``mean_image_signal``, ``mean_image_background`` and ``corr_cnn_pixel``, ``(n_eta, n_phi)``;
        pixels without spread get correlation 0."""
        t = self.sums
        mean_s, mean_p = t["ws"] / t["w"], t["wp"] / t["w"]
        cov = t["wsp"] / t["w"] - mean_s * mean_p
        var = (t["wpp"] / t["w"] - mean_p**2) * (t["wss"] / t["w"] - mean_s**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.nan_to_num(cov / np.sqrt(np.maximum(var, 0.0)), nan=0.0, posinf=0.0, neginf=0.0)
        mean = {c: t[c] / t[f"w_{c}"] if t[f"w_{c}"] > 0 else np.zeros_like(t["wp"]) for c in ("sig", "bkg")}
        return {"mean_image_signal": mean["sig"].reshape(self.shape),
                "mean_image_background": mean["bkg"].reshape(self.shape),
                "corr_cnn_pixel": corr.reshape(self.shape)}


def iterate_rows(paths: Sequence[str | Path], rows: np.ndarray, block: int = 4096
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, images)`` of the sorted global ``rows`` of several HDF5 image files, at most
    ``block`` rows at a time, each piece read with one contiguous slice of bounded span
    (:func:`jetimage.io.contiguous_reads`): memory is bounded whatever the file size."""
    import h5py

    offsets = np.r_[0, np.cumsum(file_rows(paths))]
    for f, path in enumerate(paths):
        local = rows[(rows >= offsets[f]) & (rows < offsets[f + 1])] - offsets[f]
        with h5py.File(path, "r") as h5:
            ds = h5["images"]
            row_bytes = 4 * int(np.prod(ds.shape[1:]))
            for i in range(0, len(local), block):
                part = local[i:i + block]
                for a, b in contiguous_reads(part, row_bytes, max_gap=block):
                    lo, hi = int(part[a]), int(part[b - 1]) + 1
                    span = finite_images(ds[lo:hi], path, lo)
                    yield part[a:b] + offsets[f], span[part[a:b] - lo]


def predict(model: Any, paths: Sequence[str | Path], rows: np.ndarray,
            summary: tuple[ImageSummary, np.ndarray, np.ndarray] | None = None,
            batch_size: int = 256) -> np.ndarray:
    """Model scores ``(len(rows),)`` of the sorted ``rows``, streamed from the image files.

    With ``summary = (ImageSummary, labels, weights)`` (per global row) the images are also
    accumulated into the summary, in the same pass. Memory: a block of 4096 images plus the
    activations of ``batch_size`` images.
    """
    out = []
    for r, images in iterate_rows(paths, rows):
        score = model.predict(images, batch_size=batch_size, verbose=0).ravel().astype(np.float64)
        if summary is not None:
            summary[0].add(images, score, summary[1][r], summary[2][r])
        out.append(score)
    return np.concatenate(out) if out else np.zeros(0)


def working_point(eps_s: np.ndarray, eps_b: np.ndarray, target_eps_b: float) -> float:
    """Signal efficiency of the ROC curve at background efficiency ``target_eps_b``.

    The ROC is a step function over thresholds; linear interpolation between its points
    (increasing ``eps_b``) is used, taking the largest ``eps_s`` at ties.
    """
    order = np.lexsort((eps_s, eps_b))
    b, s = eps_b[order], eps_s[order]
    ub, last = np.unique(b[::-1], return_index=True)
    return float(np.interp(target_eps_b, ub, s[::-1][last]))


def _factor(roc: FastROC, y: np.ndarray, w: np.ndarray, cut: np.ndarray) -> tuple[float, float, float]:
    """(cut-based eps_S, eps_B, CNN eps_S at that eps_B) for weights ``w``."""
    sig, bkg = y == 1, y == 0
    ws, wb = w[sig].sum(), w[bkg].sum()
    cs, cb = (w[sig & cut].sum() / ws, w[bkg & cut].sum() / wb) if ws > 0 and wb > 0 else (0.0, 0.0)
    return cs, cb, working_point(*roc.curve(w), cb)


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
    for _ in range(n):
        cs, cb, cnn_s = _factor(roc, y, w * rng.poisson(1.0, len(w)), cut)
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


def _class_sigma(paths: Sequence[str | Path]) -> dict[int, float]:
    """Cross section (pb) of all generated examples per class (1 signal), from the file attributes."""
    out = {0: 0.0, 1: 0.0}
    for path in paths:
        attrs = image_attrs(path)
        out[1 if attrs["class"] == "signal" else 0] += float(attrs.get("sigma_pb", float("nan")))
    return out


@dataclass
class Examples:
    """What evaluation reads of the test examples: labels, weights, per-example columns, split."""

    labels: np.ndarray
    weights: np.ndarray
    columns: dict[str, np.ndarray]
    split: dict[str, np.ndarray]
    selected: np.ndarray  # (n,) bool: inside the selection (the jets' mass window; else all)


def _jet_examples(cfg: Config, paths: Sequence[str | Path]) -> Examples:
    ecfg = cfg["evaluate"]
    data = read_columns(paths, ["labels", "weights", "jet_m", "tau21", "delta_r", "jet_pt"])
    labels, weights = data.pop("labels").astype(int), data.pop("weights").astype(np.float64)
    window = ecfg["mass_window"]
    if window is not None and not window[0] < window[1]:
        raise ConfigError(f"evaluate.mass_window: {window} must be [lo, hi] with lo < hi (GeV)")
    mass = data["jet_m"].astype(np.float64)
    inside = (mass > window[0]) & (mass < window[1]) if window is not None else np.ones(len(mass), bool)
    if ecfg["reweight_pt"]:
        j = cfg["jets"]
        weights[inside] = pt_weights(data["jet_pt"][inside].astype(np.float64), labels[inside],
                                     weights[inside], ecfg["pt_bins"], (j["pt_min"], j["pt_max"]))
    return Examples(labels, weights, data, dataset_split(cfg, len(labels)), inside)


def _event_examples(cfg: Config, paths: Sequence[str | Path]) -> Examples:
    data = read_columns(paths, ["labels", "weights", *EVENT_VARIABLES])
    labels, weights = data.pop("labels").astype(int), data.pop("weights").astype(np.float64)
    return Examples(labels, weights, data, dataset_split(cfg, len(labels)), np.ones(len(labels), bool))


def _jet_baselines(cfg: Config, paths: Sequence[str | Path], ex: Examples, cnn: dict[str, np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Jet taggers on every test jet: likelihood ratios of the jet variables, Fisher, CNN + mass."""
    ecfg, y, w, c = cfg["evaluate"], ex.labels, ex.weights, ex.columns
    tr, va = (ex.split[k][ex.selected[ex.split[k]]] for k in ("train", "validation"))
    te = ex.split["test"]
    scores = {}
    for name, (column, value_range) in BASELINES.items():
        x = c[column].astype(np.float64)
        scores[name] = likelihood_ratio(x[tr], y[tr], w[tr], x[te], ecfg["likelihood_bins"], value_range)
    b2 = bins_2d(ecfg["likelihood_bins_2d"], len(tr))
    mt = np.c_[c["jet_m"], c["tau21"]].astype(np.float64)
    scores["mass_tau21"] = likelihood_ratio_2d(mt[tr], y[tr], w[tr], mt[te],
                                               (quantile_edges(mt[tr, 0], b2), quantile_edges(mt[tr, 1], b2)))
    n_pixels = image_pixels(paths[0])
    if use_fisher(ecfg, n_pixels):
        fisher = fit_fisher(paths, tr, y[tr], n_pixels)
        scores["fisher"] = np.concatenate([fisher.decision_function(im.reshape(len(im), -1))
                                           for _, im in iterate_rows(paths, te)])
    b2, mass = bins_2d(ecfg["likelihood_bins_2d"], len(va)), c["jet_m"].astype(np.float64)
    cm_val = np.c_[cnn["validation"], mass[va]]
    scores["cnn_mass"] = likelihood_ratio_2d(cm_val, y[va], w[va], np.c_[cnn["test"], mass[te]],
                                             (quantile_edges(cm_val[:, 0], b2), quantile_edges(mass[va], b2)))
    scores["tau21_ddt"], ddt = _ddt(ecfg["ddt"], c, y, w, tr, te)
    extra = {"selection": {"mass_window": ecfg["mass_window"], "reweight_pt": ecfg["reweight_pt"]},
             "ddt": ddt}
    return scores, extra


def _ddt(dcfg: dict[str, Any], c: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray,
         tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """DDT tau21 scores of the test jets, the slope fit to the QCD profile of the training split."""
    rho = rho_prime(c["jet_m"], c["jet_pt"])
    tau = c["tau21"].astype(np.float64)
    bkg = tr[y[tr] == 0]
    slope, intercept = fit_ddt(tau[bkg], rho[bkg], w[bkg], dcfg["fit_range"], dcfg["bins"])
    log.info("DDT: <tau21>(rho') = %.4f + %.4f rho' on %d QCD training jets", intercept, slope, len(bkg))
    return ddt_score(tau[te], rho[te], slope), {"slope": slope, "intercept": intercept,
                                                "fit_range": list(dcfg["fit_range"])}


def _event_baselines(cfg: Config, paths: Sequence[str | Path], ex: Examples, cnn: dict[str, np.ndarray]
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Event taggers: the number of fat jets, M_J; and the cut-based working point with the factor."""
    te = ex.split["test"]
    scores = {k: ex.columns[k][te].astype(np.float64) for k in ("n_fatjets", "mj")}
    return scores, cut_based(cfg, paths, cnn["test"], ex.labels[te], ex.weights[te],
                             ex.columns["cut_pass"][te].astype(bool), (ex.labels, ex.weights))


def cut_based(cfg: Config, paths: Sequence[str | Path], score: np.ndarray, y: np.ndarray,
              w: np.ndarray, cut: np.ndarray, stored: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """The CNN against the cut-based selection of arXiv:1711.03573 on the test events.

    Efficiencies are weighted. ``*_presel`` efficiencies are relative to the stored
    (preselected) events; the others are absolute: times the preselection efficiency (stored
    weight / cross section of the class). The CNN selection is "preselection and score > c", so
    its working point at the cut-based background efficiency compares like with like.
    ``factor`` = CNN signal efficiency / cut-based signal efficiency at that working point.
    ``stored`` holds the labels and weights of every stored event (all splits).
    """
    sigma = _class_sigma(paths)
    labels, weights = stored
    presel = {c: float(weights[labels == c].sum() / sigma[c])
              if np.isfinite(sigma[c]) and sigma[c] > 0 else float("nan") for c in (0, 1)}
    unknown = [n for c, n in ((1, "signal"), (0, "background")) if not np.isfinite(presel[c])]
    if unknown:  # was taken as 1, which made the absolute efficiencies the preselected ones
        log.warning("%s: no cross section of the %s class (an input without the run summary): the "
                    "absolute efficiencies are null", ", ".join(map(str, paths)), " and ".join(unknown))
    cs, cb, cnn_s = _factor(FastROC(score, y), y, w, cut)
    bkg_pass = (y == 0) & cut
    out: dict[str, Any] = {
        "cut_sig_eff": cs * presel[1], "cut_bkg_eff": cb * presel[0],
        "cnn_sig_eff_at_cut_bkg_eff": cnn_s * presel[1],
        "factor": cnn_s / cs if cs > 0 else float("nan"),
        "cut_sig_eff_presel": cs, "cut_bkg_eff_presel": cb, "cnn_sig_eff_at_cut_bkg_eff_presel": cnn_s,
        "presel_eff": {"signal": presel[1], "background": presel[0]},
        "n_passing_cuts": {"signal": int(((y == 1) & cut).sum()), "background": int(bkg_pass.sum())},
        "background_effective_entries_passing_cuts": float(
            w[bkg_pass].sum() ** 2 / max((w[bkg_pass] ** 2).sum(), 1e-300)),
        "sigma_pb": {"signal": sigma[1], "background": sigma[0]},
    }
    if cs <= 0:
        log.warning("no signal test event passes the cut-based selection: the factor is null")
        return out
    if cb <= 0:  # the CNN's working point at eps_B = 0 does not exist
        log.warning("no background test event passes the cut-based selection: the CNN working point "
                    "and the factor are null")
        out.update(factor=float("nan"), cnn_sig_eff_at_cut_bkg_eff=float("nan"),
                   cnn_sig_eff_at_cut_bkg_eff_presel=float("nan"))
        return out
    out["bootstrap"] = bootstrap_factor(score, y, w, cut, cfg["evaluate"]["bootstrap"],
                                        derive_seed(cfg["seed"], BOOTSTRAP_STREAM))
    out["factor_err"] = out["bootstrap"].get("factor_std", float("nan"))
    log.info("cut-based eps_S %.4g eps_B %.3g; CNN eps_S at that eps_B %.4g: factor %.2f +- %.2f; "
             "%d background test events pass the cuts", out["cut_sig_eff"], out["cut_bkg_eff"],
             out["cnn_sig_eff_at_cut_bkg_eff"], out["factor"], out["factor_err"], bkg_pass.sum())
    return out


#: Per study kind: how the test examples are read, and the physics baselines beside the CNN.
KINDS = {"jets": (_jet_examples, _jet_baselines), "events": (_event_examples, _event_baselines)}
#: Every tagger of ``metrics.json`` per kind, in the order of the plots' legends.
TAGGERS_OF = {"jets": TAGGERS, "events": ("cnn", "n_fatjets", "mj")}


def load_model(path: str | Path) -> Any:
    """A trained model, in Keras' safe mode.

    Raises
    ------
    InputError
        Naming the file when it is missing, truncated or not a Keras model.
    """
    import keras

    from . import models  # noqa: F401  (registers the model's custom layers for loading)

    if not Path(path).is_file():
        raise InputError(f"{path}: no such model file; run the train rule first")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt archive
        reason = " ".join(str(err).split())[:300]
        raise InputError(f"{path}: not a readable Keras model ({type(err).__name__}: {reason}); "
                         "delete it and rerun the train rule") from err


def check_inputs(model_path: str | Path, attrs: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse image files made differently from the model's training images: ``attrs`` (image file
    -> its :func:`~jetimage.io.image_attrs`) against the model's input definition; one line naming
    the file and the first setting. A model or file that does not say how its images were made (a
    model not trained by jetimage, a file not written by the images stage) is used with a warning."""
    definition = stored_definition(model_path)
    if definition is None:
        log.warning("%s: the model holds no input definition: the images are not checked against it",
                    model_path)
        return
    for path, a in attrs.items():
        if "kind" not in a or "images" not in a:
            log.warning("%s: no image settings in its attributes (not made by the images stage): not "
                        "checked against the model %s", path, model_path)
            continue
        check_definition(definition, a["kind"], a["images"], a.get("jets"), model_path, path)


def _check_classes(ex: Examples, paths: Sequence[str | Path]) -> None:
    te = ex.split["test"][ex.selected[ex.split["test"]]]
    for cls, name in ((1, "signal"), (0, "background")):
        if not (ex.labels[te] == cls).any():
            raise InputError(f"{', '.join(map(str, paths))}: the test split holds no {name} example "
                             f"(of {len(te)}): no efficiency can be computed; generate more examples "
                             "or enlarge train.split.test")


def evaluate(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
             metrics_path: str | Path, scores_path: str | Path | None = None,
             preprocessing_path: str | Path | None = None,
             variants: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Score the test split with the CNN and the baselines of the study's kind; write ``metrics.json``.

    Returns
    -------
    dict
        ``{tagger: {"auc": x, "auc_err": dx, "rejection": {"0.3": r, ...},
        "rejection_err": {"0.3": dr, ...}, "n_bootstrap": b}}`` (jets also ``"inv_jsd":
        {"0.5": x}, "inv_jsd_err"``: :func:`jetimage.decorrelation.sculpting_metrics`) for every
        tagger of the kind
        (:data:`TAGGERS_OF`); ``n_test`` (test examples per class, inside the jets' mass window if
        any); the kind's own keys: jets ``selection`` (mass window, pT reweighting) and, with
        ``preprocessing_path``, ``preprocessing`` (:func:`jetimage.diagnostics.run_study`);
        events the cut-based working point and ``factor`` (:func:`cut_based`). Non-finite numbers
        are written as ``null`` (:func:`json_safe`).

    The scores file (``.npz``) holds every test example, also those outside the mass window
    (``in_window`` flags them): ``labels``, ``weights``, ``score_<tagger>``, the kind's variables,
    and from the selected test examples ``mean_image_signal``, ``mean_image_background`` and
    ``corr_cnn_pixel`` (:class:`ImageSummary`), and the index of each test example
    (:func:`example_index`: ``index_sample``, ``index_file``, ``index_entry``) to match the scores
    back to the ROOT trees (and to the friend trees of ``jetimage apply``).

    ``variants`` maps ``train.variants`` names to their models: each is scored as the tagger
    ``cnn_<name>`` beside the others.
    """
    read_examples, baselines = KINDS[cfg.kind]
    ex = read_examples(cfg, inputs)
    _check_classes(ex, inputs)
    model = load_model(model_path)
    attrs = {str(p): image_attrs(p) for p in inputs}  # read once, checked against every model
    check_inputs(model_path, attrs)
    te = ex.split["test"]
    sel = ex.selected[te]
    summary = ImageSummary(cfg["images"]["channels"])
    w_summary = np.where(ex.selected, ex.weights, 0.0)
    cnn = {"test": predict(model, inputs, te, (summary, ex.labels, w_summary))}
    if cfg.kind == "jets":
        va = ex.split["validation"]
        cnn["validation"] = predict(model, inputs, va[ex.selected[va]])
    scores, extra = baselines(cfg, inputs, ex, cnn)
    scores = {"cnn": cnn["test"], **scores}
    for name, path in (variants or {}).items():  # the mass-decorrelated CNNs (train.variants)
        variant = load_model(path)
        check_inputs(path, attrs)
        scores[f"cnn_{name}"] = predict(variant, inputs, te)
    mass = ex.columns["jet_m"][te][sel].astype(np.float64) if cfg.kind == "jets" else None
    metrics = _metrics(cfg, scores, ex.labels[te][sel], ex.weights[te][sel], sel, mass)
    metrics.update(extra)
    if preprocessing_path is not None:
        metrics["preprocessing"] = json.loads(Path(preprocessing_path).read_text())
    if nulls := null_keys(metrics):
        log.warning("%s: null (not computable from the test split) for %s", metrics_path, ", ".join(nulls))
    outputs = [metrics_path] if scores_path is None else [metrics_path, scores_path]
    with atomic_paths(*outputs) as tmps:  # both files or neither
        tmps[0].write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
        if scores_path is not None:
            columns = {k: v[te] for k, v in ex.columns.items()}
            if cfg.kind == "jets":
                columns = {"mass": columns.pop("jet_m"), **columns}
            np.savez(tmps[1], labels=ex.labels[te], weights=ex.weights[te], in_window=sel,
                     **{f"score_{k}": v for k, v in scores.items()}, **columns, **summary.result(),
                     **example_index(inputs, te))
    return metrics


def example_index(paths: Sequence[str | Path], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Where the examples ``rows`` (global, sorted) come from: ``index_sample``, ``index_file`` (the
    ROOT file) and ``index_entry`` (its tree's entry), ``(len(rows),)`` each; empty for image files
    written before the image stage recorded ``file`` and ``entry``."""
    import h5py

    samples, files, entries = [], [], []
    for path in paths:
        attrs = image_attrs(path)
        with h5py.File(path, "r") as f:
            if "entry" not in f or "inputs" not in attrs:
                return {}
            n = len(f["entry"])
            samples.append(np.full(n, attrs["sample"]))
            files.append(np.asarray(attrs["inputs"])[f["file"][...]])
            entries.append(f["entry"][...].astype(np.int64))
    return {f"index_{k}": np.concatenate(v)[rows] for k, v in
            (("sample", samples), ("file", files), ("entry", entries))}


def sculpting_edges(cfg: Config) -> np.ndarray:
    """Mass bins of the sculpting metric: ``evaluate.sculpting.bin_width`` GeV over the study's
    mass range (the mass window if any, else the range of the mass baseline)."""
    window = cfg["evaluate"]["mass_window"] or BASELINES["mass"][1]
    return mass_edges(window, cfg["evaluate"]["sculpting"]["bin_width"])


def _metrics(cfg: Config, scores: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray,
             sel: np.ndarray, mass: np.ndarray | None = None) -> dict[str, Any]:
    ecfg = cfg["evaluate"]
    seed = derive_seed(cfg["seed"], BOOTSTRAP_STREAM)
    taggers = [*TAGGERS_OF[cfg.kind], *(k for k in scores if k not in TAGGERS_OF[cfg.kind])]
    metrics: dict[str, Any] = {
        name: tagger_metrics(scores[name][sel], y, w, ecfg["efficiencies"], ecfg["bootstrap"], seed)
        if name in scores else None
        for name in taggers
    }
    for name in [t for t in taggers if metrics[t] is None]:
        log.warning("%-10s not computed: null in metrics.json", name)
    if mass is not None:  # jets: how much each tagger's cut sculpts the QCD mass
        edges = sculpting_edges(cfg)
        for name in [t for t in taggers if metrics[t] is not None]:
            metrics[name].update(sculpting_metrics(
                scores[name][sel], y, w, mass, edges, ecfg["sculpting"]["efficiencies"],
                ecfg["bootstrap"], seed, name))
    for name in [t for t in taggers if metrics[t] is not None]:
        log.info("%-10s AUC %.4f  1/eps_B %s  1/JSD %s", name, metrics[name]["auc"],
                 metrics[name]["rejection"], metrics[name].get("inv_jsd"))
    metrics["n_test"] = {"signal": int((y == 1).sum()), "background": int((y == 0).sum())}
    return metrics
