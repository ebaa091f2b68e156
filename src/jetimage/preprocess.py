"""Jet-image preprocessing: centring, rotation, parity flip and normalization, in two modes.

Constituents are ``(n_jets, var)`` awkward records with ``pt, eta, phi, e, charge, pdgid``
(GeV, radians; ``charge`` and ``pdgid`` select the channels of :mod:`jetimage.channels`);
jets are ``(n_jets,)`` records with the jet-level branches of :data:`jetimage.io.JET_BRANCHES`.
Images are ``(n_jets, n_eta, n_phi, n_channels)`` float32, axis 1 is eta (horizontal in
plots), axis 2 is phi (vertical).

Modes
-----
``lorentz`` (mass-preserving)
    Every step is applied to the constituent four-momenta ``(px, py, pz, E)`` *before*
    pixelization, as a Lorentz transformation:

    * translation in eta: a boost along z with velocity ``beta = tanh(eta0)``,
      ``pz' = pz cosh(eta0) - E sinh(eta0)``, ``E' = E cosh(eta0) - pz sinh(eta0)``. It shifts
      every rapidity by exactly ``-eta0`` and sends the (light-like) centre direction to
      ``eta = 0``; the pseudorapidity of a massive constituent shifts by slightly less.
      pT is invariant, E is not.
    * translation in phi: a rotation about z by ``-phi0``; pT, E and eta are invariant.
      After both, the centre direction is the +x axis and sits at the image centre.
    * rotation: a rotation of the 3-momenta about the centre direction (the x axis) by
      ``delta`` in the ``(pz, py)`` plane, which near the centre is the image plane
      ``(eta, phi)``. E is invariant; pT changes at second order in the distance to the centre.
    * flip: the reflection ``pz -> -pz`` (eta -> -eta), an improper but mass-preserving
      transformation; applied twice it is the identity.

    * boost normalization (``normalize: boost``): after the translation the centre direction is
      the +x axis; every constituent of a jet is boosted along it with the rapidity ``y`` that
      gives the jet the reference energy ``E_ref`` (``boost_energy``, GeV):
      ``E' = E cosh(y) - px sinh(y)``, ``px' = px cosh(y) - E sinh(y)``, py and pz unchanged.
      With ``T = sqrt(E_J^2 - px_J^2)`` and ``Y = atanh(px_J / E_J)`` of the jet,
      ``E'_J = T cosh(Y - y)``, so ``y = Y - acosh(E_ref / T)`` (jets with ``T > E_ref`` cannot
      reach it and stop at rest along x: ``y = Y``, ``E'_J = T``). Aberration: a massless
      constituent at angle theta from the axis goes to ``tan(theta'/2) = e^y tan(theta/2)``, with
      ``E' = E (cosh y - sinh y cos theta)``; near the axis ``theta' ~= theta E_J / E_ref``: the image
      is stretched (or shrunk) by the jet's energy over the reference. Invariant: every invariant
      mass (constituents, subjet pairs, the jet), the momentum components transverse to the axis
      (so the rotation angle about it), the light-cone fractions ``(E_i + px_i) / (E_J + px_J)``;
      the energy fractions ``E_i / E_J`` only near the axis. The boost commutes with the rotation
      about x and with the flip, so it is applied right after the translation.

    All of them keep every constituent mass and the jet invariant mass exactly (to rounding,
    below 1e-9 relative in float64). Pixelization comes last, by default with the ``moment``
    kernel of :mod:`jetimage.pixelize`, whose image mass does not depend on where in a pixel a
    constituent falls; so the image mass is also kept. Normalization ``l1`` or ``l2`` divides the
    image by a per-jet scale (stored), which scales the image mass by the same factor; ``boost``
    gives every jet the energy ``E_ref`` (the total of an E image; of a pT image up to
    ``cosh(eta)`` of its pixels) and keeps its mass (the rapidity is stored as ``boost_rapidity``).

``image`` (the published way, kept as the control; arXiv:1407.5675, arXiv:1511.05190)
    The constituents are pixelized on the fixed detector grid (cells of the pixel size with
    edges at multiples of it, nearest-grid-point); translation moves the cell that contains
    the centre to the central pixel (a shift by whole pixels, pixel values unchanged, so an E
    image keeps the detector-frame energies); rotation turns the pixel array about its centre
    with cubic-spline interpolation; flip mirrors the pixel columns. Interpolation smears the
    intensity and moves it off the constituent directions, and a translated E image is no longer
    the image of any set of massless particles of that energy: both change the image mass.

Constituents enter as massless deposits by default (option ``massless``, true): E is replaced
by ``pT cosh(eta)``, as a calorimeter cell sees a particle, so a boost along z shifts every
constituent's pseudorapidity (= rapidity) by exactly ``-eta0`` and the image mass after the
translation equals that of the pixelized jet up to the pixel quantization. With
``massless: false`` the stored (massive) hadron four-vectors are used; their pseudorapidity
shifts by less than ``eta0`` under the boost (see ``docs/preprocessing.md``).

Centre, rotation and flip conventions (both modes): ``centre`` is ``leading_subjet`` (jet axis
if there is none), ``centroid`` (pT-weighted) or ``jet_axis``; ``rotate: subjet`` puts the
second subjet straight below the centre (angle -pi/2 in the (eta, phi) plane), falling back to
``principal`` for jets without one; ``rotate: principal`` turns the major principal axis of the
intensity distribution (central second moments) to the vertical (phi) axis; ``flip: parity``
reflects eta so that the half eta > 0 holds at least the intensity of the half eta < 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from .channels import CODES, channel_weights, record_flags
from .channels import codes as channel_codes
from .jets import delta_phi
from .pixelize import Grid, pixelize_flat, resolve_deposit

#: Preprocessing modes.
MODES = ("lorentz", "image")
#: Jets processed at once in ``lorentz`` mode: the temporaries then fit in the CPU cache.
BLOCK_JETS = 1024
#: Jets rotated at once in ``image`` mode (bounds the float64 spline coefficients in memory).
ROTATE_BLOCK_JETS = 1024
#: Constituents closer than this to the eta = 0 axis (in radians of polar angle) count on
#: neither side in the ``lorentz`` parity decision: far above the float32 rounding of the
#: compiled kernel (~1e-7), far below a pixel (0.1).
PARITY_TOLERANCE = 1e-5
#: Zero padding around an image before the spline prefilter (scipy's ``grid-constant``).
_SPLINE_PAD = 12


# ---------------------------------------------------------------------------------------------
# Flat (columnar) constituents
# ---------------------------------------------------------------------------------------------


@dataclass
class Flat:
    """Constituents of ``n_jets`` jets as flat numpy arrays, consecutive per jet.

    ``pt, eta, phi, e`` are ``(n_constituents,)`` (GeV, radians), ``flags`` is
    ``(n_constituents,)`` int32 (the channel flag bits of :func:`jetimage.channels.flags`),
    ``counts`` ``(n_jets,)`` and ``offsets`` ``(n_jets + 1,)``.
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray
    flags: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_awkward(
        cls, constituents: ak.Array, dtype: Any = np.float64, massless: bool = False,
        energy: bool = True, with_flags: bool = True,
    ) -> Flat:
        """Flatten ``(n_jets, var)`` constituent records.

        With ``massless`` (or without an ``e`` field) the energy is ``E = pT cosh(eta)``: a
        massless deposit at the constituent's (eta, phi), as a calorimeter cell sees it.
        With ``energy=False`` the energy is not computed (``e`` is ``pt``, a placeholder).
        The ``flags`` come from the ``charge`` and ``pdgid`` fields (absent: zero charge,
        no ids, so the ``em`` and ``had`` channels stay empty); with ``with_flags=False``
        they are not computed (zeros, a placeholder for images of one ``total`` channel).
        """
        counts = ak.to_numpy(ak.num(constituents)).astype(np.int64)
        flat = ak.flatten(constituents)
        fields = {f: np.ascontiguousarray(ak.to_numpy(flat[f]), dtype=dtype)
                  for f in ("pt", "eta", "phi")}
        if not energy:
            e = fields["pt"]
        elif massless or "e" not in flat.fields:
            e = fields["pt"] * np.cosh(fields["eta"])
        else:
            e = np.ascontiguousarray(ak.to_numpy(flat.e), dtype=dtype)
        flags = record_flags(flat) if with_flags else np.zeros(len(e), np.int32)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return cls(e=e, flags=flags, counts=counts, offsets=offsets, **fields)

    def block(self, j0: int, j1: int) -> Flat:
        """Jets ``[j0, j1)`` (views, no copy)."""
        c0, c1 = self.offsets[j0], self.offsets[j1]
        return Flat(
            self.pt[c0:c1], self.eta[c0:c1], self.phi[c0:c1], self.e[c0:c1],
            self.flags[c0:c1], self.counts[j0:j1], self.offsets[j0:j1 + 1] - c0,
        )


# ---------------------------------------------------------------------------------------------
# Centre and angles (per jet)
# ---------------------------------------------------------------------------------------------


def centre_of(jets: ak.Array, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The (eta, phi) of each jet that goes to the image centre: two ``(n_jets,)`` float64.

    ``leading_subjet`` falls back to the jet axis for jets without subjets;
    ``centroid`` is the pT-weighted centroid, with phi measured from the jet axis
    so that jets straddling phi = +-pi are averaged correctly. A non-finite jet axis (a jet
    without constituents) gives (0, 0).
    """
    eta = np.nan_to_num(ak.to_numpy(jets.jet_eta).astype(np.float64))
    phi = np.nan_to_num(ak.to_numpy(jets.jet_phi).astype(np.float64))
    if how == "jet_axis":
        return eta, phi
    if how == "leading_subjet":
        s_eta = ak.to_numpy(jets.subjet1_eta).astype(np.float64)
        s_phi = ak.to_numpy(jets.subjet1_phi).astype(np.float64)
        ok = np.isfinite(s_eta) & np.isfinite(s_phi)
        return np.where(ok, s_eta, eta), np.where(ok, s_phi, phi)
    if how == "centroid":
        c = jets.constituents
        w = c.pt
        total = ak.to_numpy(ak.sum(w, axis=1))
        dphi = delta_phi(c.phi, phi)
        with np.errstate(invalid="ignore", divide="ignore"):
            c_eta = ak.to_numpy(ak.sum(w * c.eta, axis=1)) / total
            c_dphi = ak.to_numpy(ak.sum(w * dphi, axis=1)) / total
        ok = total > 0
        return np.where(ok, c_eta, eta), np.where(ok, delta_phi(phi + c_dphi, 0.0), phi)
    raise ValueError(f"images.centre: unknown centre {how!r}")


def _subjet2(jets: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    return (ak.to_numpy(jets.subjet2_eta).astype(np.float64),
            ak.to_numpy(jets.subjet2_phi).astype(np.float64))


def segment_sum(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of ``(n,)`` x: ``x[offsets[i]:offsets[i + 1]]``.

    ``np.add.reduceat`` over contiguous jets is several times faster than ``np.bincount``
    with a jet index. Returns float64 ``(n_segments,)``; empty segments sum to 0.
    """
    n_seg = len(offsets) - 1
    if len(x) == 0 or n_seg == 0:
        return np.zeros(n_seg)
    start = np.minimum(offsets[:-1], len(x) - 1)
    sums = np.add.reduceat(x, start).astype(np.float64)
    return np.where(offsets[1:] > offsets[:-1], sums, 0.0)


def principal_angle(u: np.ndarray, v: np.ndarray, w: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Angle of the major principal axis of a weighted point set, per jet.

    Parameters
    ----------
    u, v
        ``(n,)`` coordinates (horizontal, vertical) of the points.
    w
        ``(n,)`` weights (intensity).
    offsets
        ``(n_jets + 1,)`` the points of jet i are ``[offsets[i], offsets[i + 1])``.

    Returns
    -------
    np.ndarray
        ``(n_jets,)`` angle in [-pi/2, pi/2] of the major axis from the u axis (radians),
        from the weighted central second moments; 0 for jets without points.
    """
    wu, wv = w * u, w * v
    sw, su, sv, suu, svv, suv = (
        segment_sum(x, offsets) for x in (w, wu, wv, wu * u, wv * v, wu * v)
    )
    inv = np.divide(1.0, sw, out=np.zeros_like(sw), where=sw > 0)
    mu, mv = su * inv, sv * inv
    cuu = suu * inv - mu * mu
    cvv = svv * inv - mv * mv
    cuv = suv * inv - mu * mv
    return 0.5 * np.arctan2(2.0 * cuv, cuu - cvv)


def _parity_sign(x: np.ndarray, w: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """-1 for jets whose intensity at x < 0 exceeds that at x > 0, else +1: ``(n_jets,)``."""
    right, left = segment_sum(w * (x > 0), offsets), segment_sum(w * (x < 0), offsets)
    return np.where(left > right, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# lorentz mode
# ---------------------------------------------------------------------------------------------


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
    flat: Flat,
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
        sign = _parity_sign(np.where(on_axis, dt(0.0), pz), e if intensity == "e" else pt, offsets)
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


def _lorentz_images_numpy(
    jets: ak.Array, options: dict[str, Any], grid: Grid, dtype: Any = np.float64
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The readable reference of :func:`_lorentz_images`: whole-array numpy passes over
    blocks of :data:`BLOCK_JETS` jets (:func:`lorentz_frame`, :func:`pixelize_flat`,
    :func:`normalize`), computed in ``dtype``."""
    eta0, phi0 = centre_of(jets, options["centre"])
    rotate, flip = options.get("rotate", "none"), options.get("flip", "none")
    subjet2 = _subjet2(jets) if rotate == "subjet" else None
    channels = options["channels"]
    deposit = resolve_deposit(options.get("deposit"), "lorentz")
    flat = Flat.from_awkward(jets.constituents, dtype, massless=options.get("massless", True))
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
class Boosted:
    """Constituents translated and boosted to ``E_ref`` (float64), ready for the compiled kernel
    with the centre at (0, 0): ``flat``; the second-subjet direction in that frame,
    ``s2_eta, s2_phi`` ``(n_jets,)``; the boost rapidities ``y`` ``(n_jets,)``."""

    flat: Flat
    s2_eta: np.ndarray
    s2_phi: np.ndarray
    y: np.ndarray


def boosted_input(flat: Flat, eta0: np.ndarray, phi0: np.ndarray, s2_eta: np.ndarray,
                  s2_phi: np.ndarray, e_ref: float) -> Boosted:
    """Translate and boost (:func:`lorentz_frame` with ``boost_energy``) in float64, and express
    the result, constituents and the light-like second-subjet direction, as (pT, eta, phi, E)
    about the centre (0, 0). The boost leaves py, pz of the subjet direction, hence the subjet
    rotation angle, unchanged."""
    fr = lorentz_frame(flat, eta0, phi0, boost_energy=e_ref)
    d_eta, d_phi = s2_eta - eta0, delta_phi(s2_phi, phi0)
    ch, sh = np.cosh(fr.boost), np.sinh(fr.boost)
    px = np.cos(d_phi) * ch - np.cosh(d_eta) * sh
    py, pz = np.sin(d_phi), np.sinh(d_eta)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_eta = np.arcsinh(pz / np.hypot(px, py))
    out = Flat(fr.pt, fr.eta, fr.phi, fr.e, flat.flags, flat.counts, flat.offsets)
    return Boosted(out, b_eta, np.arctan2(py, px), fr.boost)


def _code(table: dict[str, int], value: str, message: str) -> int:
    if value not in table:
        raise ValueError(f"{message} {value!r}; choose from {tuple(table)}")
    return table[value]


def _lorentz_images(
    jets: ak.Array, options: dict[str, Any], grid: Grid, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Lorentz-mode images with the fused compiled kernel :func:`jetimage._kernels.lorentz_images`:
    one call for the whole chunk, float32 images (written into ``out[:n]`` when given). Same
    result as :func:`_lorentz_images_numpy` to ~1e-5 of the peak pixel."""
    from . import _kernels as K  # numba is imported (and the kernel loaded) on first use

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
        s2_eta, s2_phi = (np.ascontiguousarray(x) for x in _subjet2(jets))
    else:
        s2_eta = s2_phi = np.full(len(eta0), np.nan)
    massless = bool(options.get("massless", True))
    flat = Flat.from_awkward(jets.constituents, np.float64, energy=not massless or boost,
                             massless=massless, with_flags=not total_only)
    k_eta0, k_phi0, y = np.ascontiguousarray(eta0), np.ascontiguousarray(phi0), None
    if boost:
        b = boosted_input(flat, k_eta0, k_phi0, s2_eta, s2_phi, boost_reference(options))
        flat, s2_eta, s2_phi, y = b.flat, b.s2_eta, b.s2_phi, b.y
        k_eta0, k_phi0 = np.zeros_like(k_eta0), np.zeros_like(k_phi0)
    n = len(flat.counts)
    images = _output(out, (n, *grid.shape, len(channels)))
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


# ---------------------------------------------------------------------------------------------
# image mode
# ---------------------------------------------------------------------------------------------


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
    flat = Flat.from_awkward(jets.constituents, np.float64, massless=options.get("massless", True))
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
    from scipy.ndimage import spline_filter1d

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


def _image_images(
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
            s_eta, s_phi = _subjet2(jets)
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


# ---------------------------------------------------------------------------------------------
# normalization and the entry point
# ---------------------------------------------------------------------------------------------


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


def _output(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out[:shape[0]]`` after checking it, or a new float32 array of ``shape``."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.dtype != np.float32 or out.shape[1:] != shape[1:] or len(out) < shape[0] \
            or not out.flags.c_contiguous:
        raise ValueError(f"out: need a C-contiguous float32 array of shape (>= {shape[0]}, "
                         f"{', '.join(map(str, shape[1:]))}), got {out.dtype} {out.shape}")
    return out[:shape[0]]


def make_images(
    jets: ak.Array, options: dict[str, Any], backend: str = "numba", out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Preprocess and pixelize jets according to the ``images`` section of the configuration.

    Parameters
    ----------
    jets
        ``(n_jets,)`` jet records with ``constituents`` (see the module docstring).
    options
        ``n_eta, n_phi, pixel_eta, pixel_phi, intensity, channels, centre, rotate, flip,
        normalize, mode`` (``boost_energy`` in GeV with ``normalize: boost``); optionally
        ``deposit`` (``ngp`` | ``moment``; default ``moment``
        in ``lorentz`` mode and ``ngp`` in ``image`` mode) and ``massless`` (default true:
        every constituent enters as a massless deposit at its (eta, phi) with its pT, i.e.
        ``E = pT cosh(eta)``, as calorimeter cells see particles; false: the stored hadron
        four-vectors, massive).
    backend
        ``numba`` (default): ``lorentz`` mode runs the fused compiled kernel of
        :mod:`jetimage._kernels`; ``numpy``: the whole-array numpy reference in float64
        (same images to ~1e-5 of the peak pixel, ~5-10x slower). ``image`` mode is numpy either way.
    out
        Optional ``(>= n_jets, n_eta, n_phi, n_channels)`` C-contiguous float32 array that
        receives the images: the returned ``images`` is ``out[:n_jets]``. A loop over chunks
        that reuses one buffer saves allocating and page-faulting fresh memory for each.

    Returns
    -------
    images : np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32.
    extras : dict
        Per-jet ``(n_jets,)`` arrays to store beside the images: ``centre_eta``,
        ``centre_phi`` (the centre, or in ``image`` mode the central pixel's detector position),
        ``rotation`` (radians, if rotating), ``flipped`` (0/1, if flipping),
        ``norm_scale_<channel>`` (``l1``, ``l2``) and ``boost_rapidity`` (``boost``).
    """
    grid = Grid.from_config(options)
    mode = options.get("mode", "lorentz")
    how = options.get("normalize", "none")
    if backend not in ("numba", "numpy"):
        raise ValueError(f"unknown backend {backend!r}; choose numba or numpy")
    kernel = mode == "lorentz" and backend == "numba"  # writes into ``out`` itself
    if kernel:
        images, extras, scale = _lorentz_images(jets, options, grid, out)
    elif mode == "lorentz":
        images, extras, scale = _lorentz_images_numpy(jets, options, grid)
    elif mode == "image":
        if how == "boost":
            raise ValueError("images.normalize: boost is a Lorentz transformation of the "
                             "constituents; it needs images.mode: lorentz")
        images, extras = _image_images(jets, options, grid)
        images, scale = normalize(images, how)
    else:
        raise ValueError(f"images.mode: unknown mode {mode!r}; choose from {MODES}")
    if out is not None and not kernel:
        target = _output(out, images.shape)
        target[...] = images
        images = target
    if how in ("l1", "l2"):
        for k, name in enumerate(options["channels"]):
            extras[f"norm_scale_{name}"] = scale[:, k]
    return images, extras
