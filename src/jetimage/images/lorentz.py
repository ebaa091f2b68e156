"""The mass-preserving (``lorentz``) preprocessing: centring, rotation, flip and boost normalization
as Lorentz transformations of the constituent four-momenta, applied before pixelization (see
:mod:`jetimage.images.preprocess` for the conventions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from jetimage.images.channels import CODES, channel_weights
from jetimage.images.channels import codes as channel_codes
from jetimage.images.constituents import (
    FlatConstituents,
    centre_of,
    output_array,
    parity_sign,
    principal_angle,
    second_subjet,
    segment_sum,
)
from jetimage.images.normalize import normalize
from jetimage.images.pixelize import Grid, pixelize_flat, resolve_deposit
from jetimage.physics.jets import delta_phi

__all__ = ["BLOCK_JETS", "BoostedInput", "Frame", "PARITY_TOLERANCE", "boost_along_x", "boost_rapidity",
           "boost_reference", "boosted_input", "lorentz_frame", "rotate_about_x"]


#: Jets processed at once in ``lorentz`` mode: the temporaries then fit in the CPU cache.
BLOCK_JETS = 1024


#: Constituents closer than this to the eta = 0 axis (in radians of polar angle) count on
#: neither side in the ``lorentz`` parity decision: far above the float32 rounding of the
#: compiled kernel (~1e-7), far below a pixel (0.1).
PARITY_TOLERANCE = 1e-5


def rotate_about_x(
    pz: np.ndarray, py: np.ndarray, cos: np.ndarray, sin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate 3-momenta about the x axis (the centre direction after translation).

    Counter-clockwise by the angle with the given cosine and sine in the ``(pz, py)`` plane,
    which at the image centre is the ``(eta, phi)`` plane. px, E and |p| are unchanged.
    Returns ``(pz', py')``.
    """
    return pz * cos - py * sin, pz * sin + py * cos


def boost_rapidity(e_jet: np.ndarray, px_jet: np.ndarray, e_ref: float) -> np.ndarray:
    """Rapidity of the boost along +x that gives each jet the energy ``e_ref``.

    Parameters
    ----------
    e_jet, px_jet
        ``(n_jets,)`` jet energy and momentum along the boost axis (GeV), ``e_jet >= |px_jet|``.
    e_ref
        Reference energy (GeV).

    Returns
    -------
    np.ndarray
        ``(n_jets,)`` float64 ``y = Y - acosh(e_ref / T)`` with ``T = sqrt(E^2 - px^2)`` and
        ``Y = atanh(px / E)``, so that ``E cosh(y) - px sinh(y) = e_ref``; ``y = Y`` (the jet at
        rest along x, energy ``T``) where ``T > e_ref``; 0 for empty or light-like jets (T = 0).
    """
    e_jet, px_jet = np.asarray(e_jet, np.float64), np.asarray(px_jet, np.float64)
    t2 = (e_jet - px_jet) * (e_jet + px_jet)
    ok = (t2 > 0) & (e_jet > 0)
    t = np.sqrt(np.where(ok, t2, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        big_y = 0.5 * np.log(np.where(ok, (e_jet + px_jet) / (e_jet - px_jet), 1.0))
    return np.where(ok, big_y - np.arccosh(np.maximum(e_ref / t, 1.0)), 0.0)


def boost_along_x(px: np.ndarray, e: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boost ``(n,)`` momenta along +x by rapidity ``y`` (``(n,)``): returns ``(px', E')``."""
    ch, sh = np.cosh(y), np.sinh(y)
    return px * ch - e * sh, e * ch - px * sh


@dataclass
class Frame:
    """Constituents after the Lorentz-mode preprocessing.

    ``px, py, pz, e, pt, eta, phi`` are ``(n_constituents,)`` in the image frame (GeV,
    radians); ``angle`` ``(n_jets,)`` the
    rotation about the centre direction (radians) and ``flip`` ``(n_jets,)`` +1 or -1.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    angle: np.ndarray
    flip: np.ndarray
    boost: np.ndarray | None = None


def lorentz_frame(
    flat: FlatConstituents,
    eta0: np.ndarray,
    phi0: np.ndarray,
    rotate: str = "none",
    flip: str = "none",
    intensity: str = "pt",
    subjet2: tuple[np.ndarray, np.ndarray] | None = None,
    boost_energy: float | None = None,
) -> Frame:
    """Apply the Lorentz-mode translation, boost, rotation and flip to the constituents.

    Computations run in the dtype of ``flat`` (float64 for exact checks, float32 for
    images); per-jet parameters are computed in float64.

    Parameters
    ----------
    flat
        Constituents of ``n_jets`` jets.
    eta0, phi0
        ``(n_jets,)`` centre direction (treated as light-like) moved to the image centre.
    rotate
        ``none``, ``subjet`` (needs ``subjet2``) or ``principal``.
    flip
        ``none`` or ``parity``.
    intensity
        ``pt`` or ``e``: the weight of the principal axis and the parity decision.
    subjet2
        ``(eta, phi)`` ``(n_jets,)`` of the second subjet, NaN where absent.
    boost_energy
        If given, the reference energy ``E_ref`` (GeV) of the boost normalization (module
        docstring): after the translation every jet is boosted along the centre direction to
        energy ``E_ref``; ``Frame.boost`` holds the rapidities ``(n_jets,)``.

    Returns
    -------
    Frame
    """
    dt = flat.pt.dtype.type
    n_jets, counts, offsets = len(flat.counts), flat.counts, flat.offsets

    def per_constituent(x: np.ndarray) -> np.ndarray:
        return np.repeat(x.astype(dt), counts)

    # translation: rotation about z by -phi0, boost along z by rapidity eta0 (they commute)
    dphi = flat.phi - per_constituent(phi0)
    px = flat.pt * np.cos(dphi)
    py = flat.pt * np.sin(dphi)
    pz0 = flat.pt * np.sinh(flat.eta)
    ch, sh = per_constituent(np.cosh(eta0)), per_constituent(np.sinh(eta0))
    pz = pz0 * ch - flat.e * sh
    e = flat.e * ch - pz0 * sh
    y = None
    if boost_energy is not None:
        y = boost_rapidity(segment_sum(e, offsets), segment_sum(px, offsets), boost_energy)
        px, e = boost_along_x(px, e, per_constituent(y))

    angle = np.zeros(n_jets)
    if rotate != "none":
        w = e if intensity == "e" else (flat.pt if y is None else np.sqrt(px * px + py * py))
        angle = _rotation_angle(rotate, px, py, pz, w, offsets, eta0, phi0, subjet2)
        pz, py = rotate_about_x(pz, py, per_constituent(np.cos(angle)),
                                per_constituent(np.sin(angle)))
    pt = np.sqrt(px * px + py * py)

    sign = np.ones(n_jets)
    if flip == "parity":
        # constituents within PARITY_TOLERANCE (radians) of the eta = 0 axis count on neither
        # side: their side would be decided by rounding (a one-particle second subjet lands
        # on the axis by construction)
        on_axis = np.abs(pz) <= dt(PARITY_TOLERANCE) * np.sqrt(pt * pt + pz * pz)
        sign = parity_sign(np.where(on_axis, dt(0.0), pz), e if intensity == "e" else pt, offsets)
        pz = pz * per_constituent(sign)
    elif flip != "none":
        raise ValueError(f"images.flip: unknown flip {flip!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    return Frame(px, py, pz, e, pt, eta, phi, angle, sign, y)


def _rotation_angle(rotate: str, px: np.ndarray, py: np.ndarray, pz: np.ndarray, w: np.ndarray,
                    offsets: np.ndarray, eta0: np.ndarray, phi0: np.ndarray,
                    subjet2: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Per-jet rotation angle (radians, ``(n_jets,)``) about the jet axis: the second subjet down
    (``subjet``; jets without one fall back to the principal axis) or the principal axis of
    the weights ``w`` up (``principal``), from the translated constituent momenta."""
    n_jets = len(offsets) - 1
    angle, need_principal = np.zeros(n_jets), np.ones(n_jets, dtype=bool)
    if rotate == "subjet":
        if subjet2 is None:
            raise ValueError("rotate: subjet needs the second-subjet directions")
        s_eta, s_phi = subjet2
        # the subjet as a light-like direction after the same translation: pT = 1,
        # pz = sinh(eta2 - eta0), py = sin(phi2 - phi0); send it to pz = 0, py < 0
        angle = -0.5 * np.pi - np.arctan2(np.sin(s_phi - phi0), np.sinh(s_eta - eta0))
        need_principal = ~np.isfinite(angle)
    elif rotate != "principal":
        raise ValueError(f"images.rotate: unknown rotation {rotate!r}")
    if need_principal.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = pz.dtype.type(1.0) / np.sqrt(px * px + py * py + pz * pz)
        theta = principal_angle(pz * norm, py * norm, w, offsets)
        angle = np.where(need_principal, 0.5 * np.pi - theta, angle)
    return angle


def lorentz_images_numpy(
    jets: ak.Array, options: dict[str, Any], grid: Grid, dtype: Any = np.float64
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The readable reference of :func:`lorentz_images`: whole-array numpy passes over
    blocks of :data:`BLOCK_JETS` jets (:func:`lorentz_frame`, :func:`pixelize_flat`,
    :func:`normalize`), computed in ``dtype``."""
    eta0, phi0 = centre_of(jets, options["centre"])
    rotate, flip = options.get("rotate", "none"), options.get("flip", "none")
    subjet2 = second_subjet(jets) if rotate == "subjet" else None
    channels = options["channels"]
    deposit = resolve_deposit(options.get("deposit"), "lorentz")
    flat = FlatConstituents.from_awkward(jets.constituents, dtype, massless=options.get("massless", True))
    n = len(flat.counts)
    images = np.empty((n, *grid.shape, len(channels)), dtype=np.float32)
    angle, sign, scale = np.zeros(n), np.ones(n), np.ones((n, len(channels)))
    how = options.get("normalize", "none")
    e_ref = boost_reference(options) if how == "boost" else None
    boost = np.zeros(n)
    for j0 in range(0, n, BLOCK_JETS):
        j1 = min(j0 + BLOCK_JETS, n)
        sl = slice(j0, j1)
        fr = lorentz_frame(
            flat.block(j0, j1), eta0[sl], phi0[sl], rotate, flip, options["intensity"],
            None if subjet2 is None else (subjet2[0][sl], subjet2[1][sl]), e_ref,
        )
        value = fr.e if options["intensity"] == "e" else fr.pt
        weights = value if list(channels) == ["total"] else channel_weights(
            value, flat.block(j0, j1).flags, channels)
        pixelize_flat(fr.eta, fr.phi, weights, flat.counts[sl], grid, deposit, out=images[sl])
        # normalize while the block is in the cache
        scale[sl] = normalize(images[sl], "none" if e_ref is not None else how)[1]
        angle[sl], sign[sl] = fr.angle, fr.flip
        if e_ref is not None:
            boost[sl] = fr.boost
    extras = _lorentz_extras(eta0, phi0, rotate, flip, angle, sign)
    if e_ref is not None:
        extras["boost_rapidity"] = boost
    return images, extras, scale


def _lorentz_extras(
    eta0: np.ndarray, phi0: np.ndarray, rotate: str, flip: str, angle: np.ndarray, sign: np.ndarray
) -> dict[str, np.ndarray]:
    extras = {"centre_eta": eta0, "centre_phi": phi0}
    if rotate != "none":
        extras["rotation"] = angle
    if flip != "none":
        extras["flipped"] = (sign < 0).astype(np.int8)
    return extras


def boost_reference(options: dict[str, Any]) -> float:
    """The reference energy ``E_ref`` (GeV) of ``normalize: boost``: ``options["boost_energy"]``
    (the configuration fills it with the middle of the jet pT window when null)."""
    e_ref = options.get("boost_energy")
    if e_ref is None or not np.isfinite(e_ref) or e_ref <= 0:
        raise ValueError(f"images.boost_energy: normalize: boost needs a positive reference energy "
                         f"in GeV, got {e_ref!r}")
    return float(e_ref)


@dataclass
class BoostedInput:
    """Constituents translated and boosted to ``E_ref`` (float64), ready for the compiled kernel
    with the centre at (0, 0): ``flat``; the second-subjet direction in that frame,
    ``s2_eta, s2_phi`` ``(n_jets,)``; the boost rapidities ``y`` ``(n_jets,)``."""

    flat: FlatConstituents
    s2_eta: np.ndarray
    s2_phi: np.ndarray
    y: np.ndarray


def boosted_input(flat: FlatConstituents, eta0: np.ndarray, phi0: np.ndarray, s2_eta: np.ndarray,
                  s2_phi: np.ndarray, e_ref: float) -> BoostedInput:
    """Translate and boost (:func:`lorentz_frame` with ``boost_energy``) in float64, and express
    the result, constituents and the light-like second-subjet direction, as (pT, eta, phi, E)
    about the centre (0, 0). The boost leaves py, pz of the subjet direction, hence the subjet
    rotation angle, unchanged."""
    fr = lorentz_frame(flat, eta0, phi0, boost_energy=e_ref)
    assert fr.boost is not None  # set whenever boost_energy is
    d_eta, d_phi = s2_eta - eta0, delta_phi(s2_phi, phi0)
    ch, sh = np.cosh(fr.boost), np.sinh(fr.boost)
    px = np.cos(d_phi) * ch - np.cosh(d_eta) * sh
    py, pz = np.sin(d_phi), np.sinh(d_eta)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_eta = np.arcsinh(pz / np.hypot(px, py))
    out = FlatConstituents(fr.pt, fr.eta, fr.phi, fr.e, flat.flags, flat.counts, flat.offsets)
    return BoostedInput(out, b_eta, np.arctan2(py, px), fr.boost)


def _code(table: dict[str, int], value: str, message: str) -> int:
    if value not in table:
        raise ValueError(f"{message} {value!r}; choose from {tuple(table)}")
    return table[value]


def lorentz_images(
    jets: ak.Array, options: dict[str, Any], grid: Grid, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Lorentz-mode images with the fused compiled kernel :func:`jetimage._kernels.lorentz_images`:
    one call for the whole chunk, float32 images (written into ``out[:n]`` when given). Same
    result as :func:`lorentz_images_numpy` to ~1e-5 of the peak pixel."""
    from jetimage.images import _kernels as K  # numba is imported (and the kernel loaded) on first use

    rotate, flip = options.get("rotate", "none"), options.get("flip", "none")
    boost = options.get("normalize", "none") == "boost"
    normalize_how = "none" if boost else options.get("normalize", "none")
    codes = dict(
        rotate=_code(K.ROTATE_CODES, rotate, "images.rotate: unknown rotation"),
        flip=_code(K.FLIP_CODES, flip, "images.flip: unknown flip"),
        deposit=_code(K.DEPOSIT_CODES, resolve_deposit(options.get("deposit"), "lorentz"),
                      "unknown deposit"),
        normalize=_code(K.NORMALIZE_CODES, normalize_how, "images.normalize: unknown normalization"),
    )
    channels = channel_codes(options["channels"])  # ValueError naming unknown channels
    # the flags are read only for channels other than one total (1-2 us per jet to compute)
    total_only = channels.tolist() == [CODES["total"]]
    eta0, phi0 = centre_of(jets, options["centre"])
    if rotate == "subjet":
        s2_eta, s2_phi = (np.ascontiguousarray(x) for x in second_subjet(jets))
    else:
        s2_eta = s2_phi = np.full(len(eta0), np.nan)
    massless = bool(options.get("massless", True))
    flat = FlatConstituents.from_awkward(jets.constituents, np.float64, energy=not massless or boost,
                             massless=massless, with_flags=not total_only)
    k_eta0, k_phi0, y = np.ascontiguousarray(eta0), np.ascontiguousarray(phi0), None
    if boost:
        b = boosted_input(flat, k_eta0, k_phi0, s2_eta, s2_phi, boost_reference(options))
        flat, s2_eta, s2_phi, y = b.flat, b.s2_eta, b.s2_phi, b.y
        k_eta0, k_phi0 = np.zeros_like(k_eta0), np.zeros_like(k_phi0)
    n = len(flat.counts)
    images = output_array(out, (n, *grid.shape, len(channels)))
    angle, sign, scale = np.empty(n), np.empty(n), np.empty((n, len(channels)))
    K.lorentz_images(
        flat.pt, flat.eta, flat.phi, flat.e, flat.flags, flat.offsets.astype(np.int64),
        k_eta0, k_phi0, s2_eta, s2_phi,
        codes["rotate"], codes["flip"], options["intensity"] == "e", massless, channels,
        codes["deposit"], codes["normalize"], float(grid.pixel_eta), float(grid.pixel_phi),
        images, angle, sign, scale,
    )
    extras = _lorentz_extras(eta0, phi0, rotate, flip, angle, sign)
    if y is not None:
        extras["boost_rapidity"] = y
    return images, extras, scale
