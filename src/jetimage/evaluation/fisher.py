"""Fisher's linear discriminant on the pixels, fit in blocks of bounded memory (arXiv:1407.5675).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jetimage.training.data import iterate_rows

log = logging.getLogger(__name__)

__all__ = ["FISHER_BLOCK_BYTES", "Fisher", "fisher_bytes", "fisher_discriminant", "fit_fisher",
           "image_pixels", "use_fisher"]


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
    from sklearn.discriminant_analysis import (
        LinearDiscriminantAnalysis,  # deferred: scikit-learn loads slowly
    )

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
    from scipy.linalg.blas import dsyrk  # deferred: scipy.linalg only for the fit

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
    from scipy.linalg import lstsq  # deferred: scipy.linalg only for the fit

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
