"""The ``image`` preprocessing (the published way, arXiv:1407.5675, arXiv:1511.05190): pixelize on
the fixed detector grid, translate by whole pixels, rotate the pixel array with cubic-spline
interpolation and mirror the columns. Kept as the control: it changes the image mass.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from jetimage.images.channels import channel_weights
from jetimage.images.constituents import FlatConstituents, centre_of, principal_angle, second_subjet
from jetimage.images.pixelize import Grid, pixelize_flat, resolve_deposit
from jetimage.physics.jets import delta_phi

__all__ = ["ROTATE_BLOCK_JETS", "detector_images", "mirror_eta", "rotate_images"]


#: Jets rotated at once in ``image`` mode (bounds the float64 spline coefficients in memory).
ROTATE_BLOCK_JETS = 1024


#: Zero padding around an image before the spline prefilter (scipy's ``grid-constant``).
_SPLINE_PAD = 12


def detector_images(
    jets: ak.Array, options: dict[str, Any], grid: Grid | None = None, deposit: str = "ngp"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixelize on the fixed detector grid, in the window whose central pixel holds the centre.

    The detector cells have the pixel size and edges at multiples of it in eta and phi (in
    phi measured from the centre cell, so that a jet across phi = +-pi stays whole). The
    window is the ``n_eta x n_phi`` cells around the cell containing the centre, which is
    put in pixel ``(n_eta // 2, n_phi // 2)``: this is pixelization followed by the
    published translation by whole pixels. Pixel values are the detector-frame pT or E.

    Returns
    -------
    images : np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32.
    eta_c, phi_c : np.ndarray
        ``(n_jets,)`` detector position of the central pixel's centre; add them to
        :meth:`Grid.centres` to get the detector position of every pixel.
    """
    grid = grid or Grid.from_config(options)
    eta0, phi0 = centre_of(jets, options["centre"])
    pe, pp = grid.pixel_eta, grid.pixel_phi
    # offset of the central pixel's centre from the grid origin (0 for odd sizes)
    off_e, off_p = grid.centres()[0][grid.n_eta // 2], grid.centres()[1][grid.n_phi // 2]
    eta_c = (np.floor(eta0 / pe) + 0.5) * pe - off_e
    phi_c = delta_phi((np.floor(phi0 / pp) + 0.5) * pp - off_p, 0.0)
    flat = FlatConstituents.from_awkward(jets.constituents, np.float64,
                                         massless=options.get("massless", True))
    jet = np.repeat(np.arange(len(flat.counts)), flat.counts)
    # phi unwrapped next to the centre, exact where no wrap is needed
    dphi0 = flat.phi - phi0[jet]
    phi = np.where(dphi0 > np.pi, flat.phi - 2 * np.pi,
                   np.where(dphi0 < -np.pi, flat.phi + 2 * np.pi, flat.phi))
    if deposit == "ngp":
        # integer cell offsets from the centre's cell, then the pixel centres: a constituent
        # on a cell edge goes to the same cell as the centre would, whatever the rounding
        ke = np.floor(flat.eta / pe) - np.floor(eta0 / pe)[jet]
        kp = np.floor(phi / pp) - np.floor(phi0 / pp)[jet]
        deta, dphi = ke * pe + off_e, kp * pp + off_p
    else:
        deta = flat.eta - eta_c[jet]
        dphi = phi - (phi0 + delta_phi(phi_c, phi0))[jet]  # phi_c unwrapped next to phi0
    value = flat.e if options["intensity"] == "e" else flat.pt
    images = pixelize_flat(
        deta, dphi, channel_weights(value, flat.flags, options["channels"]), flat.counts,
        grid, deposit,
    )
    return images, eta_c, phi_c


def _bspline3(t: np.ndarray) -> list[np.ndarray]:
    """Cubic B-spline weights of the taps at offsets -1, 0, 1, 2 for fractional position t."""
    t2, t3 = t * t, t * t * t
    return [
        (1.0 - t) ** 3 / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    ]


def rotate_images(images: np.ndarray, angle: np.ndarray, grid: Grid) -> np.ndarray:
    """Rotate each image about its central pixel by its own angle, cubic-spline interpolated.

    This is what ``scipy.ndimage.rotate(image, order=3, reshape=False, mode="grid-constant")``
    does to one image (zero outside the window), vectorized over the batch: the spline
    prefilter runs along the two image axes of the whole batch, then each output pixel sums
    the 4 x 4 spline coefficients around its source position. Positions are in physical
    units, so non-square pixels rotate correctly.

    Parameters
    ----------
    images
        ``(n, n_eta, n_phi, n_channels)``.
    angle
        ``(n,)`` counter-clockwise rotation in the (eta, phi) plane (radians).
    grid
        The pixel grid (pixel sizes).

    Returns
    -------
    np.ndarray
        ``(n, n_eta, n_phi, n_channels)`` float32.
    """
    from scipy.ndimage import spline_filter1d  # deferred: scipy.ndimage only for the image mode

    n, ne, nph, nch = images.shape
    out = np.empty(images.shape, dtype=np.float32)
    ci, cj = ne // 2, nph // 2
    pad = _SPLINE_PAD
    i, j = np.meshgrid(np.arange(ne) - ci, np.arange(nph) - cj, indexing="ij")
    x, y = i * grid.pixel_eta, j * grid.pixel_phi
    for b0 in range(0, n, ROTATE_BLOCK_JETS):
        b1 = min(b0 + ROTATE_BLOCK_JETS, n)
        m = b1 - b0
        coeff = np.pad(images[b0:b1].astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        coeff = spline_filter1d(coeff, 3, axis=1, mode="grid-constant")
        coeff = spline_filter1d(coeff, 3, axis=2, mode="grid-constant")
        c = np.cos(angle[b0:b1])[:, None, None]
        s = np.sin(angle[b0:b1])[:, None, None]
        # pull: the source of output position r is R(-angle) r
        us = (c * x + s * y) / grid.pixel_eta + ci + pad
        vs = (-s * x + c * y) / grid.pixel_phi + cj + pad
        fu, fv = np.floor(us), np.floor(vs)
        wu, wv = _bspline3(us - fu), _bspline3(vs - fv)
        fu, fv = fu.astype(np.int64), fv.astype(np.int64)
        flat = coeff.reshape(m * (ne + 2 * pad) * (nph + 2 * pad), nch)
        base = np.arange(m)[:, None, None] * (ne + 2 * pad)
        acc = np.zeros((m, ne, nph, nch))
        for a in range(4):
            ku = fu + (a - 1)
            okU = (ku >= 0) & (ku < ne + 2 * pad)
            for bb in range(4):
                kv = fv + (bb - 1)
                ok = okU & (kv >= 0) & (kv < nph + 2 * pad)
                idx = np.where(ok, (base + ku) * (nph + 2 * pad) + kv, 0)
                acc += (wu[a] * wv[bb] * ok)[..., None] * flat[idx]
        out[b0:b1] = acc
    return out


def _image_moments_angle(images: np.ndarray, grid: Grid) -> np.ndarray:
    """Principal-axis angle of channel 0 of each image about its central pixel: ``(n,)``."""
    n, ne, nph, _ = images.shape
    i, j = np.meshgrid(np.arange(ne) - ne // 2, np.arange(nph) - nph // 2, indexing="ij")
    u = np.broadcast_to(i * grid.pixel_eta, (n, ne, nph)).ravel()
    v = np.broadcast_to(j * grid.pixel_phi, (n, ne, nph)).ravel()
    offsets = np.arange(n + 1) * (ne * nph)
    return principal_angle(u, v, images[..., 0].ravel().astype(np.float64), offsets)


def mirror_eta(images: np.ndarray) -> np.ndarray:
    """Reflect images eta -> -eta about the central pixel column (``n_eta // 2``).

    For odd ``n_eta`` this is ``images[:, ::-1]``; for even sizes the column that would leave
    the window is dropped and the one that would enter is zero. Applied twice it is the
    identity (for odd sizes exactly).
    """
    ne = images.shape[1]
    if ne % 2:
        return images[:, ::-1]
    out = np.zeros_like(images)
    out[:, 1:] = images[:, :0:-1]  # i -> 2 (ne // 2) - i = ne - i
    return out


def image_mode_images(
    jets: ak.Array, options: dict[str, Any], grid: Grid
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    deposit = resolve_deposit(options.get("deposit"), "image")
    images, eta_c, phi_c = detector_images(jets, options, grid, deposit)
    n = len(images)
    # detector position of the central pixel, the rotation centre
    e_mid, p_mid = (c[len(c) // 2] for c in grid.centres())
    eta_c, phi_c = eta_c + e_mid, delta_phi(phi_c + p_mid, 0.0)
    rotate, flip = options.get("rotate", "none"), options.get("flip", "none")
    extras = {"centre_eta": eta_c, "centre_phi": phi_c}
    if rotate != "none":
        if rotate == "subjet":
            s_eta, s_phi = second_subjet(jets)
            angle = -0.5 * np.pi - np.arctan2(delta_phi(s_phi, phi_c), s_eta - eta_c)
        elif rotate == "principal":
            angle = np.full(n, np.nan)
        else:
            raise ValueError(f"images.rotate: unknown rotation {rotate!r}")
        missing = ~np.isfinite(angle)
        if missing.any():
            theta = _image_moments_angle(images[missing], grid)
            angle[missing] = 0.5 * np.pi - theta
        images = rotate_images(images, angle, grid)
        extras["rotation"] = angle
    if flip == "parity":
        ci = images.shape[1] // 2
        col = images[..., 0].sum(axis=2, dtype=np.float64)  # (n, n_eta)
        left, right = col[:, :ci].sum(axis=1), col[:, ci + 1:].sum(axis=1)
        flipped = left > right
        images[flipped] = mirror_eta(images[flipped])
        extras["flipped"] = flipped.astype(np.int8)
    elif flip != "none":
        raise ValueError(f"images.flip: unknown flip {flip!r}")
    return images, extras
