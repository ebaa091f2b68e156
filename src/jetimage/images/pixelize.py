"""Constituents -> jet images.

A :class:`Grid` is a rectangle of pixels centred on (0, 0) in (eta, phi); constituents are
given in coordinates relative to the image centre (see :mod:`jetimage.preprocess`). Filling is
one ``np.add.at`` scatter per channel (and kernel tap) over all constituents of a block of
jets: no Python loop over jets or particles. Blocks of ~1000 jets keep the temporaries in the
CPU cache.

Two deposition kernels:

``ngp`` (nearest grid point)
    The whole intensity goes to the pixel that contains the constituent: the usual jet image.
``moment``
    A five-pixel "plus" stencil around the nearest pixel centre. With the offset
    ``f = (x - x_centre) / pixel`` in [-1/2, 1/2) per axis, the weights are
    ``1/2 - f_eta^2 - f_phi^2`` (centre) and ``(f +- 1/2)^2 / 2`` (the neighbours on each
    axis). They are non-negative and reproduce the intensity, its first moments exactly and its
    second moment ``eta^2 + phi^2`` up to the constant ``(pixel_eta^2 + pixel_phi^2) / 4``,
    whatever the position inside the pixel. The image mass in the small-angle limit,
    ``m^2 ~= P sum_i pT_i |x_i - x_mean|^2``, depends only on those moments, so a ``moment``
    image has a mass that does not jump when the constituents move by a fraction of a pixel
    (a translation or rotation before pixelization); an ``ngp`` image mass jumps by a few
    percent under such moves, as the pixel quantization of each constituent changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np

from jetimage.images.channels import channel_weights, record_flags

#: Deposition kernels.
DEPOSITS = ("ngp", "moment")


def resolve_deposit(deposit: str | None, mode: str) -> str:
    """The deposit kernel to use: ``auto`` (or none) means ``moment`` in the mass-preserving
    ``lorentz`` mode and ``ngp`` in the published ``image`` mode."""
    if deposit in (None, "auto"):
        return "moment" if mode == "lorentz" else "ngp"
    return deposit
#: Jets per block: the block's temporaries then stay in the CPU cache.
BLOCK_JETS = 1024


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


def _fill_block(
    eta: np.ndarray,
    phi: np.ndarray,
    weights: np.ndarray,
    counts: np.ndarray,
    grid: Grid,
    deposit: str,
    out: np.ndarray,
) -> None:
    """Fill ``out`` ``(n_jets, n_eta, n_phi, n_channels)`` from one block of constituents.

    The scatter is ``np.add.at`` straight into float32 (no float64 ``bincount`` image to
    convert); deposits outside the window get index 0 and weight 0 rather than being
    compressed away, which is cheaper.
    """
    n_jets, n_ch = len(counts), weights.shape[1]
    dt = eta.dtype.type
    he, hp = grid.half_width
    ne, nph = grid.n_eta, grid.n_phi
    # continuous pixel coordinates: pixel k spans [k, k + 1)
    u = eta * dt(1.0 / grid.pixel_eta) + dt(he / grid.pixel_eta)
    v = phi * dt(1.0 / grid.pixel_phi) + dt(hp / grid.pixel_phi)
    with np.errstate(invalid="ignore"):  # NaN coordinates are dropped by the masks below
        fu, fv = np.floor(u), np.floor(v)
        # constituents with their nearest pixel inside the window or (moment) its first ring
        ring = 0 if deposit == "ngp" else 1
        ok = (fu >= -ring) & (fu < ne + ring) & (fv >= -ring) & (fv < nph + ring)
    if deposit not in DEPOSITS:
        raise ValueError(f"unknown deposit {deposit!r}; choose from {DEPOSITS}")
    iu = np.where(ok, fu, 0).astype(np.intp)
    iv = np.where(ok, fv, 0).astype(np.intp)
    index = np.repeat(np.arange(n_jets, dtype=np.intp) * (ne * nph), counts) + iu * nph + iv
    target = out.reshape(n_jets * ne * nph, n_ch)
    target[...] = 0.0
    if deposit == "ngp":
        okw = ok.astype(dt)
        for c in range(n_ch):
            np.add.at(target[:, c], index, weights[:, c] * okw)
        return
    du, dv = u - fu - dt(0.5), v - fv - dt(0.5)  # offset from the pixel centre, [-1/2, 1/2)
    half = dt(0.5)
    u_in = {d: (iu + d >= 0) & (iu + d < ne) for d in (-1, 0, 1)}
    v_in = {d: (iv + d >= 0) & (iv + d < nph) for d in (-1, 0, 1)}
    taps = (  # (d_eta, d_phi, weight)
        (0, 0, half - du * du - dv * dv),
        (1, 0, half * (du + half) ** 2),
        (-1, 0, half * (du - half) ** 2),
        (0, 1, half * (dv + half) ** 2),
        (0, -1, half * (dv - half) ** 2),
    )
    for d_eta, d_phi, k in taps:
        hit = ok & u_in[d_eta] & v_in[d_phi]
        idx = np.where(hit, index + (d_eta * nph + d_phi), 0)
        k = k * hit
        for c in range(n_ch):
            np.add.at(target[:, c], idx, weights[:, c] * k)


def pixelize_flat(
    eta: np.ndarray,
    phi: np.ndarray,
    weights: np.ndarray,
    counts: np.ndarray,
    grid: Grid,
    deposit: str = "ngp",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Fill images from flat constituent arrays.

    Parameters
    ----------
    eta, phi
        ``(n_constituents,)`` coordinates relative to the image centre (phi in radians,
        already wrapped into [-pi, pi)); float32 or float64 (the arithmetic uses this type).
    weights
        ``(n_constituents, n_channels)`` or ``(n_constituents,)`` pixel contributions
        (GeV or counts).
    counts
        ``(n_jets,)`` constituents per jet; they are consecutive in the flat arrays.
    grid
        The pixel grid.
    deposit
        ``"ngp"`` or ``"moment"`` (see the module docstring).
    out
        Optional ``(n_jets, n_eta, n_phi, n_channels)`` float32 array to fill.

    Returns
    -------
    np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32. Deposits outside the grid are dropped.
    """
    weights = weights[:, None] if weights.ndim == 1 else weights
    counts = np.asarray(counts, dtype=np.int64)
    n_jets, n_ch = len(counts), weights.shape[1]
    if out is None:
        out = np.empty((n_jets, grid.n_eta, grid.n_phi, n_ch), dtype=np.float32)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for j0 in range(0, n_jets, BLOCK_JETS):
        j1 = min(j0 + BLOCK_JETS, n_jets)
        c0, c1 = offsets[j0], offsets[j1]
        _fill_block(eta[c0:c1], phi[c0:c1], weights[c0:c1], counts[j0:j1], grid, deposit,
                    out[j0:j1])
    return out


def pixelize(
    constituents: ak.Array,
    grid: Grid,
    channels: Sequence[str] = ("total",),
    intensity: str = "pt",
    deposit: str = "ngp",
) -> np.ndarray:
    """Jet images from jagged constituents.

    Parameters
    ----------
    constituents
        ``(n_jets, var)`` records with ``eta``, ``phi`` relative to the image centre, the
        intensity field (``pt`` or ``e``, GeV) and, for the channels other than ``total``,
        ``charge`` and ``pdgid`` (see :func:`jetimage.channels.flags`; absent: zero charge, no
        ids).
    grid
        The pixel grid.
    channels
        Channel names from :data:`jetimage.channels.CHANNELS`.
    intensity
        ``"pt"`` or ``"e"``.
    deposit
        ``"ngp"`` or ``"moment"`` (see the module docstring).

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
    return pixelize_flat(
        eta, phi, channel_weights(value, record_flags(flat), channels), counts, grid, deposit
    )
