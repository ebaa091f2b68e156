"""Image normalization: each image divided by a per-jet scale (``l1``, ``l2``), which is returned so
that the image can be unnormalized (``boost`` normalization is a Lorentz boost: see
:mod:`jetimage.images.lorentz`)."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize"]


def normalize(images: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Divide each image channel by its L1 (sum of |pixels|) or L2 (root of sum of squares) norm.

    Parameters
    ----------
    images
        ``(n, n_eta, n_phi, n_channels)``; normalized in place when float32.
    how
        ``none``, ``l1`` or ``l2``.

    Returns
    -------
    images : np.ndarray
        The normalized images (empty images stay zero).
    scale : np.ndarray
        ``(n, n_channels)`` float64: the norm divided out (GeV, or counts, per channel; 1 for
        ``none``, 0 for empty images), so ``images * scale`` restores the input.
    """
    n, n_ch = len(images), images.shape[-1]
    if how == "none":
        return images, np.ones((n, n_ch))
    if how not in ("l1", "l2"):
        raise ValueError(f"images.normalize: unknown normalization {how!r}")
    scale = np.empty((n, n_ch))
    for c in range(n_ch):
        x = images[..., c].reshape(n, -1)  # a view for one channel, else a copy
        scale[:, c] = np.abs(x).sum(axis=1) if how == "l1" else np.sqrt((x * x).sum(axis=1))
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
    images *= inv[:, None, None, :].astype(images.dtype)
    return images, scale
