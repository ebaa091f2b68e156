"""Constituents -> jet images.

A :class:`Grid` is a rectangle of pixels centred on (0, 0) in (eta, phi); constituents are
given in coordinates relative to the image centre (see :mod:`jetimage.preprocess`). Filling is
one ``np.bincount`` over all constituents of all jets: no Python loop over jets or particles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np

#: Image channels and what each pixel sums.
CHANNELS = ("total", "charged", "neutral", "charged_count")


@dataclass(frozen=True)
class Grid:
    """Pixel grid: ``n_eta x n_phi`` pixels of ``pixel_eta x pixel_phi``, centred on (0, 0)."""

    n_eta: int = 25
    n_phi: int = 25
    pixel_eta: float = 0.1
    pixel_phi: float = 0.1

    @classmethod
    def from_config(cls, images: dict) -> Grid:
        return cls(images["n_eta"], images["n_phi"], images["pixel_eta"], images["pixel_phi"])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_eta, self.n_phi)

    @property
    def half_width(self) -> tuple[float, float]:
        """Half extent of the image in eta and phi."""
        return (0.5 * self.n_eta * self.pixel_eta, 0.5 * self.n_phi * self.pixel_phi)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates: ``(n_eta,)`` in eta and ``(n_phi,)`` in phi."""
        he, hp = self.half_width
        eta = -he + (np.arange(self.n_eta) + 0.5) * self.pixel_eta
        phi = -hp + (np.arange(self.n_phi) + 0.5) * self.pixel_phi
        return eta, phi


def pixelize_flat(
    eta: np.ndarray,
    phi: np.ndarray,
    weights: np.ndarray,
    counts: np.ndarray,
    grid: Grid,
) -> np.ndarray:
    """Fill images from flat constituent arrays.

    Parameters
    ----------
    eta, phi
        ``(n_constituents,)`` coordinates relative to the image centre (phi in radians,
        already wrapped into [-pi, pi)).
    weights
        ``(n_constituents, n_channels)`` pixel contributions (GeV or counts).
    counts
        ``(n_jets,)`` constituents per jet; they are consecutive in the flat arrays.
    grid
        The pixel grid.

    Returns
    -------
    np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32. Constituents outside the grid are dropped.
    """
    n_jets = len(counts)
    n_ch = weights.shape[1]
    he, hp = grid.half_width
    ieta = np.floor((eta + he) / grid.pixel_eta).astype(np.int64)
    iphi = np.floor((phi + hp) / grid.pixel_phi).astype(np.int64)
    inside = (ieta >= 0) & (ieta < grid.n_eta) & (iphi >= 0) & (iphi < grid.n_phi)
    jet = np.repeat(np.arange(n_jets), counts)
    pixel = (jet * grid.n_eta + ieta) * grid.n_phi + iphi
    n_pix = n_jets * grid.n_eta * grid.n_phi
    out = np.empty((n_jets, grid.n_eta, grid.n_phi, n_ch), dtype=np.float32)
    for c in range(n_ch):
        out[..., c] = np.bincount(
            pixel[inside], weights=weights[inside, c], minlength=n_pix
        ).reshape(n_jets, grid.n_eta, grid.n_phi)
    return out


def channel_weights(
    intensity: np.ndarray, charge: np.ndarray, channels: Sequence[str]
) -> np.ndarray:
    """Per-constituent contributions to each channel: ``(n_constituents, n_channels)``."""
    charged = charge != 0
    table = {
        "total": lambda: intensity,
        "charged": lambda: np.where(charged, intensity, 0.0),
        "neutral": lambda: np.where(charged, 0.0, intensity),
        "charged_count": lambda: charged.astype(np.float64),
    }
    unknown = [c for c in channels if c not in table]
    if unknown:
        raise ValueError(f"unknown image channels {unknown}; choose from {CHANNELS}")
    return np.stack([table[c]() for c in channels], axis=1)


def pixelize(
    constituents: ak.Array,
    grid: Grid,
    channels: Sequence[str] = ("total",),
    intensity: str = "pt",
) -> np.ndarray:
    """Jet images from jagged constituents.

    Parameters
    ----------
    constituents
        ``(n_jets, var)`` records with ``eta``, ``phi`` relative to the image centre, the
        intensity field (``pt`` or ``e``, GeV) and, for charged/neutral channels, ``charge``.
    grid
        The pixel grid.
    channels
        Channel names from :data:`CHANNELS`.
    intensity
        ``"pt"`` or ``"e"``.

    Returns
    -------
    np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32.
    """
    counts = ak.to_numpy(ak.num(constituents))
    flat = ak.flatten(constituents)
    eta = ak.to_numpy(flat.eta).astype(np.float64)
    phi = ak.to_numpy(flat.phi).astype(np.float64)
    value = ak.to_numpy(flat[intensity]).astype(np.float64)
    charge = ak.to_numpy(flat.charge) if "charge" in flat.fields else np.zeros(len(value))
    return pixelize_flat(eta, phi, channel_weights(value, charge, channels), counts, grid)
