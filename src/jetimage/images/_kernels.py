"""Fused numba kernel of the ``lorentz`` preprocessing: translation, rotation, flip, deposit, norm.

:func:`lorentz_images` does for a whole chunk of jets, in one compiled call, what
:func:`jetimage.preprocess.lorentz_frame` + :func:`jetimage.pixelize.pixelize_flat` +
:func:`jetimage.preprocess.normalize` do with whole-array numpy passes (those stay as the
readable reference in float64; the tests check that both give the same images to 1e-5 of the
peak pixel). The loop is over jets, and per jet over its constituents, which stay in the L1
cache:

1. translation (vectorized): massless constituents (the default) directly in the centre's
   frame, ``px, py, pz, E = pT (cos dphi, sin dphi, sinh deta, cosh deta)`` with
   ``deta = eta - eta0`` (exact for light-like momenta: the boost shifts rapidity); massive
   ones as ``pz = pT sinh(eta)`` boosted along z with rapidity ``eta0``,
   ``E' = E cosh(eta0) - pz sinh(eta0)``, in float64 (the boost cancels large terms);
2. the rotation angle (second subjet, or principal axis of the constituents' directions);
3. rotation about the x axis and the new ``pT' = sqrt(px^2 + py'^2)`` (vectorized; cos/sin of
   the angle once per jet);
4. parity: the sign of ``sum(+-w)`` over the two halves (a vectorized reduction); the
   reflection ``pz -> -pz`` is not a pass of its own but the sign applied to pz in step 5;
5. image coordinates ``eta' = asinh(pz / pT')``, ``phi' = atan2(py, px)`` (vectorized, one
   division per constituent for both);
6. deposit (``ngp`` or ``moment``) into a float32 scratch image that stays in the L1 cache,
   and per-channel normalization into the float32 output (the scratch is cleared in the same
   pass). For one ``total`` channel (the usual case) a vectorized pass first computes, for
   every constituent whose taps all fall inside the image, its pixel index and the five
   ``moment`` weights (or the ``ngp`` pixel); the scatter loop then only adds them, and the
   general, bounds-checked path is left to the constituents near the edges or outside.
   Other channel sets go through that general path, with each constituent's channel weights
   computed first from its flag bits (:func:`jetimage.channels.flags`: charged, EM, hadron)
   as :func:`jetimage.channels.channel_weights` does.

Precision: the pixel contents are float32, so from step 1 (massless) or step 3 (massive) on the
arithmetic is float32 as well: eight constituents per AVX2 instruction instead of four. Image
coordinates are good to ~1e-6 of a pixel; the image of a jet agrees with the float64 numpy
reference to ~1e-6 of its peak pixel (``moment``), and with ``ngp`` a constituent within ~1e-6
pixel of a pixel edge may land on the other side of it. The Lorentz invariance of the
transformations (constituent and jet masses to 1e-6) is a property of the mathematics, checked
in float64 on :func:`jetimage.preprocess.lorentz_frame`. Norms are summed in float64.

The elementary functions are evaluated with branch-free range reductions and Taylor series,
which LLVM vectorizes: in float32 exp by ``exp(x / 4) ** 4`` (``|x| <= 2``), sin/cos of a
quarter angle and two doublings, log by powers of two and ``2 atanh``, atan by the half-angle
formula and a reduction to ``|r| <= tan(pi/16)`` about 0, tan(pi/8) or 1, each accurate to a
few float32 ulps; in float64 (massive translation) exp by ``exp(x / 32) ** 32`` and the same
sin/cos to a few 1e-15. Inputs outside those domains (``|deta| > 2`` or ``|eta| > 16``,
unwrapped ``phi``, ``|eta'| > 3.4``, ``|phi'| > pi/2``, zero or non-finite momenta) are
flagged and redone with libm (``math.*``) in a scalar loop.

The loops over constituents run to the next multiple of :data:`PAD` with harmless padding
(zero pT), so that no scalar remainder loop runs after the vector loop.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from jetimage.images.channels import CHARGED, CODES, EM, HADRON, PILEUP

#: Codes of the options passed to :func:`lorentz_images` (channels: :data:`jetimage.channels.CODES`).
ROTATE_CODES = {"none": 0, "subjet": 1, "principal": 2}
FLIP_CODES = {"none": 0, "parity": 1}
DEPOSIT_CODES = {"ngp": 0, "moment": 1}
NORMALIZE_CODES = {"none": 0, "l1": 1, "l2": 2}
# channel codes and flag bits as compile-time constants of the kernel
_TOTAL, _CHARGED_CH, _NEUTRAL = CODES["total"], CODES["charged"], CODES["neutral"]
_COUNT, _EM_CH, _HAD_CH = CODES["charged_count"], CODES["em"], CODES["had"]
_CHARGED_LV, _CHARGED_PU, _NEUTRAL_LV = CODES["charged_lv"], CODES["charged_pu"], CODES["neutral_lv"]

#: As :data:`jetimage.preprocess.PARITY_TOLERANCE` (radians).
PARITY_TOLERANCE = 1e-5

#: Constituent loops run over a multiple of this many entries (8 float32 lanes of AVX2).
PAD = 8

#: LLVM fast-math flags: reassociation (vectorized sums), FMA contraction, reciprocals and
#: signed zeros; not ``nnan``/``ninf``, since NaN and inf inputs are detected by comparisons.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

_PI = math.pi
_TWO_PI = 2.0 * math.pi

# float32 constants (numba types module-level numpy scalars as float32 constants; a Python
# float literal would promote float32 arithmetic to float64)
F = np.float32
_F0, _F1, _F2, _FH, _FQ = F(0.0), F(1.0), F(2.0), F(0.5), F(0.25)
_F4, _F16, _F32 = F(4.0), F(16.0), F(32.0)
_FLN2 = F(math.log(2.0))
_FSQRT2 = F(math.sqrt(2.0))
_FTAN_PI_8 = F(math.tan(math.pi / 8.0))
_FTAN_PI_16 = F(math.tan(math.pi / 16.0))
_FTAN_3PI_16 = F(math.tan(3.0 * math.pi / 16.0))
_FPI = F(math.pi)  # rounded up: |y| <= pi in float64 stays <= _FPI in float32
_FPI_4 = F(0.25 * math.pi)
_FPI_8 = F(0.125 * math.pi)
_FPARITY_TOL2 = F(PARITY_TOLERANCE * PARITY_TOLERANCE)
# Taylor coefficients 1/n! and 1/n
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11 = (F(1.0 / math.factorial(n)) for n in range(2, 12))
_I3, _I5, _I7, _I9, _I11 = (F(1.0 / n) for n in (3, 5, 7, 9, 11))


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _exp_pm(x: float) -> tuple[float, float]:
    """``(exp(x), exp(-x))`` for ``|x| <= 16``: Taylor series of ``exp(x / 32)`` to degree 14
    (error < 3e-17 at ``|x / 32| <= 1/2``) split in even and odd parts, squared five times."""
    r = x * 0.03125
    r2 = r * r
    even = 1.0 + r2 * (1.0 / 2 + r2 * (1.0 / 24 + r2 * (1.0 / 720 + r2 * (
        1.0 / 40320 + r2 * (1.0 / 3628800 + r2 * (1.0 / 479001600 + r2 * (1.0 / 87178291200)))))))
    odd = r * (1.0 + r2 * (1.0 / 6 + r2 * (1.0 / 120 + r2 * (1.0 / 5040 + r2 * (
        1.0 / 362880 + r2 * (1.0 / 39916800 + r2 * (1.0 / 6227020800)))))))
    a, b = even + odd, even - odd
    for _ in range(5):
        a, b = a * a, b * b
    return a, b


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _sincos(y: float) -> tuple[float, float]:
    """``(sin y, cos y)`` for ``|y| <= pi``: Taylor series of the quarter angle
    (``|y / 4| <= pi / 4``, degrees 17 and 18, error < 1e-18) and two angle doublings."""
    z = 0.25 * y
    z2 = z * z
    s = z * (1.0 - z2 * (1.0 / 6 - z2 * (1.0 / 120 - z2 * (1.0 / 5040 - z2 * (
        1.0 / 362880 - z2 * (1.0 / 39916800 - z2 * (1.0 / 6227020800 - z2 * (
            1.0 / 1307674368000 - z2 * (1.0 / 355687428096000)))))))))
    c = 1.0 - z2 * (1.0 / 2 - z2 * (1.0 / 24 - z2 * (1.0 / 720 - z2 * (1.0 / 40320 - z2 * (
        1.0 / 3628800 - z2 * (1.0 / 479001600 - z2 * (1.0 / 87178291200 - z2 * (
            1.0 / 20922789888000 - z2 * (1.0 / 6402373705728000)))))))))
    s, c = 2.0 * s * c, (c - s) * (c + s)
    return 2.0 * s * c, (c - s) * (c + s)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _wrap(y: float) -> float:
    """``y`` moved into ``[-pi, pi]`` by one turn at most (branch-free)."""
    y = y - _TWO_PI if y > _PI else y
    return y + _TWO_PI if y < -_PI else y


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cosh_sinh(x: float) -> tuple[float, float]:
    """``(cosh x, sinh x)``: the series for ``|x| <= 16``, else libm."""
    if abs(x) <= 16.0:
        a, b = _exp_pm(x)
        return 0.5 * (a + b), 0.5 * (a - b)
    return math.cosh(x), math.sinh(x)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _momentum64(p: float, eta: float, dphi: float, e: float, eta0: float,
                massless: bool) -> tuple[float, float, float, float]:
    """float64 ``(px, py, pz, E)`` of one constituent after the translation (libm)."""
    px, py = p * math.cos(dphi), p * math.sin(dphi)
    if massless:
        return px, py, p * math.sinh(eta - eta0), p * math.cosh(eta - eta0)
    pz = p * math.sinh(eta)
    return px, py, pz * math.cosh(eta0) - e * math.sinh(eta0), e * math.cosh(eta0) - pz * math.sinh(eta0)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _axis_terms(x: float, y: float, z: float, w: float) -> tuple[float, float, float, float, float, float]:
    """The terms of one constituent in the principal-axis sums: ``(w, w u, w v, w u^2, w v^2,
    w u v)`` of its direction ``(u, v) = (z, y) / |p|`` with weight ``w``."""
    nrm = 1.0 / math.sqrt(x * x + y * y + z * z)
    u, v = z * nrm, y * nrm
    wu, wv = w * u, w * v
    return w, wu, wv, wu * u, wv * v, wu * v


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _add_tap(acc: np.ndarray, at: int, wch: np.ndarray, k: int, kw: np.float32) -> np.float32:
    """Add constituent ``k``'s channel weights times the tap weight ``kw`` at flat index ``at``
    of the scratch image; return ``kw``."""
    for cc in range(wch.shape[1]):
        acc[at + cc] += wch[k, cc] * kw
    return kw


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _exp_pm32(x: np.float32) -> tuple[np.float32, np.float32]:
    """float32 ``(exp(x), exp(-x))`` for ``|x| <= 2``: Taylor series of ``exp(x / 4)`` to degree
    9 (error < 3e-9 at ``|x / 4| <= 1/2``) split in even and odd parts, squared twice."""
    r = x * _FQ
    r2 = r * r
    even = _F1 + r2 * (_C2 + r2 * (_C4 + r2 * (_C6 + r2 * _C8)))
    odd = r * (_F1 + r2 * (_C3 + r2 * (_C5 + r2 * (_C7 + r2 * _C9))))
    a, b = even + odd, even - odd
    a, b = a * a, b * b
    return a * a, b * b


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _sincos32(y: np.float32) -> tuple[np.float32, np.float32]:
    """float32 ``(sin y, cos y)`` for ``|y| <= pi``: Taylor series of the quarter angle
    (``|y / 4| <= pi / 4``, degrees 11 and 10, error < 2e-10) and two angle doublings."""
    z = _FQ * y
    z2 = z * z
    s = z * (_F1 - z2 * (_C3 - z2 * (_C5 - z2 * (_C7 - z2 * (_C9 - z2 * _C11)))))
    c = _F1 - z2 * (_C2 - z2 * (_C4 - z2 * (_C6 - z2 * (_C8 - z2 * _C10))))
    s, c = _F2 * s * c, (c - s) * (c + s)
    return _F2 * s * c, (c - s) * (c + s)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _eta_phi32(q: np.float32, x: np.float32, y: np.float32, z: np.float32,
               p: np.float32) -> tuple[np.float32, np.float32]:
    """float32 ``(asinh(z / q), atan2(y, x))`` of a momentum with ``pT = q = sqrt(x^2 + y^2)``
    and ``|p| = p``, for ``x > 0`` and ``(p + |z|) / q < 32``, with one division.

    eta: ``log((p + |z|) / q)``, reduced by powers of two to a ratio ``a / b`` in
    ``[1/sqrt(2), sqrt(2))``, then ``2 atanh(t)``, ``t = (a - b) / (a + b)``, to ``t^9``
    (``|t| <= 0.172``). phi: ``2 atan(h)``, ``h = y / (q + x)`` in ``[-1, 1]``, reduced to
    ``r = (|h| - c) / (1 + |h| c)``, ``c`` the nearest of 0, tan(pi/8), 1, and the series to
    ``r^11`` (``|r| <= 0.199``). Both quotients share the reciprocal of the product of their
    denominators."""
    a, b = p + abs(z), q
    k = _F0
    big = a >= _F16 * b
    b = b * _F16 if big else b
    k = k + _F4 if big else k
    big = a >= _F4 * b
    b = b * _F4 if big else b
    k = k + _F2 if big else k
    big = a >= _F2 * b
    b = b * _F2 if big else b
    k = k + _F1 if big else k
    big = a >= _FSQRT2 * b
    b = b * _F2 if big else b
    k = k + _F1 if big else k
    den, ay = q + x, abs(y)  # |h| = ay / den, compared without dividing
    mid = ay > _FTAN_PI_16 * den
    top = ay > _FTAN_3PI_16 * den
    c = _F1 if top else (_FTAN_PI_8 if mid else _F0)
    base = _FPI_4 if top else (_FPI_8 if mid else _F0)
    d1, d2 = a + b, den + ay * c
    inv = _F1 / (d1 * d2)
    t = (a - b) * d2 * inv
    r = (ay - c * den) * d1 * inv
    t2 = t * t
    eta = k * _FLN2 + _F2 * t * (_F1 + t2 * (_I3 + t2 * (_I5 + t2 * (_I7 + t2 * _I9))))
    r2 = r * r
    phi = _F2 * (base + r * (_F1 - r2 * (_I3 - r2 * (_I5 - r2 * (_I7 - r2 * (_I9 - r2 * _I11))))))
    return (-eta if z < _F0 else eta), (-phi if y < _F0 else phi)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def lorentz_images(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, e: np.ndarray, flags: np.ndarray,
    offsets: np.ndarray, eta0: np.ndarray, phi0: np.ndarray, s2_eta: np.ndarray,
    s2_phi: np.ndarray, rotate: int, flip: int, use_e: bool, massless: bool,
    channels: np.ndarray, deposit: int, normalize: int, pixel_eta: float, pixel_phi: float,
    out: np.ndarray, angle_out: np.ndarray, sign_out: np.ndarray, scale_out: np.ndarray,
) -> None:
    """Lorentz-mode images of a chunk of jets, in place.

    Parameters
    ----------
    pt, eta, phi, e
        ``(n_constituents,)`` float64 constituents (GeV, radians), consecutive per jet; ``e``
        is read only when ``massless`` is false (pass ``pt`` otherwise).
    flags
        ``(n_constituents,)`` int32 flag bits of :func:`jetimage.channels.flags` (read only
        for channels other than one ``total``).
    offsets
        ``(n_jets + 1,)`` int64: jet ``j`` holds constituents ``[offsets[j], offsets[j + 1])``.
    eta0, phi0
        ``(n_jets,)`` float64 centre direction (light-like) sent to the image centre.
    s2_eta, s2_phi
        ``(n_jets,)`` float64 second-subjet direction (NaN: none, use the principal axis).
    rotate, flip, deposit, normalize
        Option codes of :data:`ROTATE_CODES`, :data:`FLIP_CODES`, :data:`DEPOSIT_CODES`,
        :data:`NORMALIZE_CODES`.
    use_e
        Intensity E' (the boosted energy) instead of pT'.
    massless
        Take ``E = pT cosh(eta)`` (calorimeter deposits) instead of ``e``.
    channels
        ``(n_channels,)`` int64 codes of :data:`jetimage.channels.CODES`.
    pixel_eta, pixel_phi
        Pixel size (eta, radians).
    out
        ``(n_jets, n_eta, n_phi, n_channels)`` float32, overwritten with the images.
    angle_out, sign_out
        ``(n_jets,)`` float64, set to the rotation angle (radians) and the flip sign (+-1).
    scale_out
        ``(n_jets, n_channels)`` float64, set to the normalization scale (1 for none).
    """
    n_jets = offsets.size - 1
    n_total = offsets[n_jets]
    ne, nph, nch = out.shape[1], out.shape[2], out.shape[3]
    maxc = 0
    for j in range(n_jets):
        maxc = max(maxc, offsets[j + 1] - offsets[j])
    maxc += PAD
    # per-constituent scratch (float32), padded entries stay harmless: px = 1, all else 0
    xs, ys, ps = np.zeros(maxc, dtype=F), np.zeros(maxc, dtype=F), np.zeros(maxc, dtype=F)
    px = np.zeros(maxc, dtype=F)
    py = np.zeros(maxc, dtype=F)
    pz = np.zeros(maxc, dtype=F)
    en = np.zeros(maxc, dtype=F)
    ptn = np.zeros(maxc, dtype=F)
    uu = np.zeros(maxc, dtype=F)
    vv = np.zeros(maxc, dtype=F)
    ib = np.zeros(maxc, dtype=F)
    bad = np.zeros(maxc, dtype=np.bool_)
    edge = np.zeros(maxc, dtype=np.int64)
    t0, t1, t2 = np.zeros(maxc, dtype=F), np.zeros(maxc, dtype=F), np.zeros(maxc, dtype=F)
    t3, t4 = np.zeros(maxc, dtype=F), np.zeros(maxc, dtype=F)
    wch = np.zeros((maxc, nch), dtype=F)
    npix = ne * nph
    step_u = nph * nch
    flat_out = out.reshape(n_jets, npix * nch)
    acc = np.zeros(npix * nch, dtype=F)  # the scratch image, kept zero between jets
    invs = np.empty(nch, dtype=F)
    single = nch == 1
    total_only = single and channels[0] == _TOTAL
    inv_pe, inv_pp = F(1.0 / pixel_eta), F(1.0 / pixel_phi)
    off_u, off_v = F(0.5 * ne), F(0.5 * nph)
    u_hi1, v_hi1 = F(ne - 1.0), F(nph - 1.0)  # last pixel index
    u_hi2, v_hi2 = F(ne - 2.0), F(nph - 2.0)  # last index with both neighbours inside
    f_nph = F(nph)
    ring = 0 if deposit == 0 else 1
    for j in range(n_jets):
        c0 = offsets[j]
        m = offsets[j + 1] - c0
        mp = (m + PAD - 1) // PAD * PAD
        # the translation reads on into the next jet's constituents (finite values, replaced
        # by the padding below), so that its vector loop has no scalar remainder
        mv = min(mp, n_total - c0)
        e0, p0 = eta0[j], phi0[j]
        pt_j, eta_j, phi_j = pt[c0:c0 + mv], eta[c0:c0 + mv], phi[c0:c0 + mv]
        e_j, flags_j = e[c0:c0 + mv], flags[c0:c0 + mv]
        # 2. (first) the rotation angle of the second subjet: without one, the principal
        # axis is summed during the translation
        ang = 0.0
        if rotate == 1:
            # sinh(deta), sin(dphi) of the subjet by the inline series (libm calls cost ~5% here)
            deta_s, dphi_s = s2_eta[j] - e0, _wrap(s2_phi[j] - p0)
            if abs(deta_s) <= 16.0 and abs(dphi_s) <= _PI:
                a, b = _exp_pm(deta_s)
                y_s, x_s = _sincos(dphi_s)[0], 0.5 * (a - b)
            else:
                y_s, x_s = math.sin(s2_phi[j] - p0), math.sinh(deta_s)
            ang = -0.5 * _PI - math.atan2(y_s, x_s)
        # (tested on the inputs: `not math.isfinite(ang)` came out false for a NaN angle here,
        # numba 0.68 / LLVM with these fast-math flags)
        no_subjet = not (abs(s2_eta[j]) < np.inf and abs(s2_phi[j]) < np.inf)
        axis = rotate == 2 or (rotate == 1 and no_subjet)
        # 1. translation: rotation about z by -phi0, boost along z by eta0 (vectorized)
        sw = su = sv = suu = svv = suv = 0.0
        if massless and not axis:  # light-like: the boost shifts eta; float32 from here on
            # the differences in float64, then float32 copies: a loop that reads float64
            # would be vectorized 4 lanes wide, this one runs the series 8 wide
            for k in range(mv):  # slices indexed by the range variable: no wraparound
                xs[k] = F(eta_j[k] - e0)
                ys[k] = F(_wrap(phi_j[k] - p0))
                ps[k] = F(pt_j[k])
            for k in range(mv):
                x, y, p = xs[k], ys[k], ps[k]
                # a, b, s, c: float32 here, float64 below; numba types each assignment on its own (SSA)
                a, b = _exp_pm32(x)  # type: ignore[assignment]
                s, c = _sincos32(y)
                px[k] = p * c
                py[k] = p * s
                pz[k] = p * (_FH * (a - b))
                en[k] = p * (_FH * (a + b))
                bad[k] = not (abs(x) <= _F2 and abs(y) <= _FPI)
        else:  # float64 until the store: the massive boost cancels large terms, and the
            # principal axis of a nearly round jet is ill-conditioned
            ch, sh = _cosh_sinh(e0)
            for k in range(mv):
                p = pt_j[k]
                x = eta_j[k] - e0 if massless else eta_j[k]
                y = _wrap(phi_j[k] - p0)
                a, b = _exp_pm(x)
                s, c = _sincos(y)  # type: ignore[assignment]  # float64 here, see above
                zz, ee = p * (0.5 * (a - b)), p * (0.5 * (a + b))
                if not massless:
                    zz, ee = zz * ch - e_j[k] * sh, e_j[k] * ch - zz * sh
                xx, yy = p * c, p * s
                px[k], py[k], pz[k], en[k] = F(xx), F(yy), F(zz), F(ee)
                ok = abs(x) <= 16.0 and abs(y) <= _PI
                bad[k] = not ok
                # principal-axis sums (unused without axis)
                w = ee if use_e else p
                t_w, t_u, t_v, t_uu, t_vv, t_uv = _axis_terms(xx, yy, zz, w if ok and k < m else 0.0)
                sw, su, sv = sw + t_w, su + t_u, sv + t_v
                suu, svv, suv = suu + t_uu, svv + t_vv, suv + t_uv
        for k in range(m):  # outside the series' domains: libm
            if bad[k]:
                xx, yy, zz, ee = _momentum64(pt_j[k], eta_j[k], phi_j[k] - p0, e_j[k], e0, massless)
                px[k], py[k], pz[k], en[k] = F(xx), F(yy), F(zz), F(ee)
                if axis:
                    t_w, t_u, t_v, t_uu, t_vv, t_uv = _axis_terms(xx, yy, zz, ee if use_e else pt_j[k])
                    sw, su, sv = sw + t_w, su + t_u, sv + t_v
                    suu, svv, suv = suu + t_uu, svv + t_vv, suv + t_uv
        for k in range(m, mp):  # padding: pT = |p| = 0 along +x, on neither side of the flip
            px[k], py[k], pz[k], en[k] = _F1, _F0, _F0, _F0
        # 2. (then) the principal axis
        if axis:
            inv = 1.0 / sw if sw > 0 else 0.0
            mean_u, mean_v = su * inv, sv * inv
            theta = 0.5 * math.atan2(2.0 * (suv * inv - mean_u * mean_v),
                                     (suu * inv - mean_u * mean_u) - (svv * inv - mean_v * mean_v))
            ang = 0.5 * _PI - theta
        # 3-5. rotation about x, pT', the parity sum and the image coordinates in one
        # vectorized pass (ang = 0 without rotation: the identity, exactly). The flip pz -> -pz
        # only negates eta' (asinh is odd), so its sign is applied after the sum is known.
        sn, cs = _sincos(_wrap(ang))
        ca, sa = F(cs), F(sn)
        diff = _F0  # right - left as one sum of +-w: a reduction LLVM vectorizes
        for k in range(mp):
            z, y, x = pz[k], py[k], px[k]
            y2 = z * sa + y * ca
            z2 = z * ca - y * sa
            q = math.sqrt(x * x + y2 * y2)
            pa = en[k] if massless else math.sqrt(q * q + z2 * z2)  # |p|
            w = en[k] if use_e else q
            # on the axis (see preprocess.PARITY_TOLERANCE): on neither side
            w = _F0 if z2 * z2 <= _FPARITY_TOL2 * (q * q + z2 * z2) else w
            diff += math.copysign(w, z2)
            # math.sqrt of float32 stays float32 under numba (the stubs say float)
            et, ph = _eta_phi32(q, x, y2, z2, pa)  # type: ignore[arg-type]
            pz[k], py[k], ptn[k] = z2, y2, q
            uu[k] = et * inv_pe
            vv[k] = ph * inv_pp + off_v
            bad[k] = not (pa + abs(z2) < _F32 * q and x > _F0)
        # 4. parity: the half eta > 0 holds at least the intensity of eta < 0
        sign = -1.0 if flip == 1 and diff < _F0 else 1.0
        angle_out[j], sign_out[j] = ang, sign
        fsign = F(sign)
        for k in range(mp):
            uu[k] = fsign * uu[k] + off_u
        # 6. deposit into the float32 scratch image (pixel (a, b), channel c at
        # (a * n_phi + b) * n_ch + c), channel contributions first (as channels.channel_weights)
        for k in range(0 if total_only else m):
            value = en[k] if use_e else ptn[k]
            fl = flags_j[k]
            charged = (fl & CHARGED) != 0
            for cc in range(nch):
                code = channels[cc]
                if code == _TOTAL:
                    wch[k, cc] = value
                elif code == _CHARGED_CH:
                    wch[k, cc] = value if charged else _F0
                elif code == _NEUTRAL:
                    wch[k, cc] = _F0 if charged else value
                elif code == _COUNT:
                    wch[k, cc] = _F1 if charged else _F0
                elif code == _EM_CH:
                    wch[k, cc] = value if (fl & EM) != 0 else _F0
                elif code == _HAD_CH:
                    wch[k, cc] = value if (fl & HADRON) != 0 else _F0
                else:  # the vertex channels
                    pileup = (fl & PILEUP) != 0
                    if code == _CHARGED_LV:
                        wch[k, cc] = value if charged and not pileup else _F0
                    elif code == _CHARGED_PU:
                        wch[k, cc] = value if charged and pileup else _F0
                    else:  # neutral_lv
                        wch[k, cc] = _F0 if charged or pileup else value
        stencil = total_only and deposit == 1
        # the L1 norm of one total channel: the sum of what is deposited (the five moment
        # weights of a constituent add up to its intensity), no pass over the pixels
        l1_sum = total_only and normalize == 1
        l1 = _F0
        if stencil:  # the five weights of the constituents well inside the image (vectorized)
            for k in range(mp):
                u, v, w = uu[k], vv[k], en[k] if use_e else ptn[k]
                fu, fv = np.floor(u), np.floor(v)
                du, dv = u - fu - _FH, v - fv - _FH
                inner = (fu >= _F1) & (fu <= u_hi2) & (fv >= _F1) & (fv <= v_hi2) & (not bad[k])
                l1 += w if inner & (k < m) else _F0
                # the flat pixel index as a float (exact): int conversions stop the vectorizer
                ib[k] = fu * f_nph + fv if inner else -_F1
                t0[k] = w * (_FH - du * du - dv * dv)
                t1[k] = w * (_FH * ((du + _FH) * (du + _FH)))
                t2[k] = w * (_FH * ((du - _FH) * (du - _FH)))
                t3[k] = w * (_FH * ((dv + _FH) * (dv + _FH)))
                t4[k] = w * (_FH * ((dv - _FH) * (dv - _FH)))
        if total_only and deposit == 0:  # the pixel of each constituent inside (vectorized)
            for k in range(mp):
                fu, fv = np.floor(uu[k]), np.floor(vv[k])
                inner = (fu >= _F0) & (fu <= u_hi1) & (fv >= _F0) & (fv <= v_hi1) & (not bad[k])
                ib[k] = fu * f_nph + fv if inner else -_F1
                l1 += (en[k] if use_e else ptn[k]) if inner & (k < m) else _F0
        # the scatter of the precomputed taps, a tight loop; the other constituents are listed
        # for the general path
        n_edge = 0
        if stencil:
            for k in range(m):
                if ib[k] >= _F0:
                    base = int(ib[k])
                    acc[base] += t0[k]
                    acc[base + nph] += t1[k]
                    acc[base - nph] += t2[k]
                    acc[base + 1] += t3[k]
                    acc[base - 1] += t4[k]
                else:
                    edge[n_edge] = k
                    n_edge += 1
        elif total_only and deposit == 0:
            for k in range(m):
                if ib[k] >= _F0:
                    acc[int(ib[k])] += en[k] if use_e else ptn[k]
                else:
                    edge[n_edge] = k
                    n_edge += 1
        else:
            for k in range(m):
                edge[k] = k
            n_edge = m
        edge_l1 = 0.0  # what the general path below deposits
        for i_edge in range(n_edge):
            k = edge[i_edge]
            if total_only:
                wch[k, 0] = en[k] if use_e else ptn[k]
            if bad[k]:  # libm, in float64
                zz, qq = sign * float(pz[k]), float(ptn[k])
                u = math.asinh(zz / qq) / pixel_eta + 0.5 * ne
                v = math.atan2(float(py[k]), float(px[k])) / pixel_phi + 0.5 * nph
            else:
                u, v = float(uu[k]), float(vv[k])
            if not math.isfinite(u + v):
                continue
            fu, fv = math.floor(u), math.floor(v)
            if not (fu >= -ring and fu < ne + ring and fv >= -ring and fv < nph + ring):
                continue
            iu, iv = int(fu), int(fv)
            base = (iu * nph + iv) * nch
            if deposit == 0:
                if single:
                    acc[base] += wch[k, 0]
                    edge_l1 += float(wch[k, 0])
                    continue
                for cc in range(nch):
                    acc[base + cc] += wch[k, cc]
                continue
            du, dv = F(u - fu - 0.5), F(v - fv - 0.5)
            u_in, v_in = 0 <= iu < ne, 0 <= iv < nph
            kw_in = _F0  # the sum of the weights of the taps inside the image
            if u_in and v_in:
                kw_in += _add_tap(acc, base, wch, k, _FH - du * du - dv * dv)
            if v_in and iu + 1 < ne:
                kw_in += _add_tap(acc, base + step_u, wch, k, _FH * ((du + _FH) * (du + _FH)))
            if v_in and iu >= 1:
                kw_in += _add_tap(acc, base - step_u, wch, k, _FH * ((du - _FH) * (du - _FH)))
            if u_in and iv + 1 < nph:
                kw_in += _add_tap(acc, base + nch, wch, k, _FH * ((dv + _FH) * (dv + _FH)))
            if u_in and iv >= 1:
                kw_in += _add_tap(acc, base - nch, wch, k, _FH * ((dv - _FH) * (dv - _FH)))
            edge_l1 += float(wch[k, 0] * kw_in)
        # normalization by the L1 or L2 norm of each channel (summed in float64), and the
        # output image; the scratch image is cleared in the same pass
        row = flat_out[j]
        for cc in range(nch):
            scale = 1.0
            if l1_sum:
                scale = float(l1) + edge_l1
            elif normalize != 0:
                total = 0.0
                if single:  # contiguous: vectorized
                    for q in range(npix):
                        x = float(acc[q])
                        total += abs(x) if normalize == 1 else x * x
                else:
                    for q in range(npix):
                        x = float(acc[q * nch + cc])
                        total += abs(x) if normalize == 1 else x * x
                scale = total if normalize == 1 else math.sqrt(total)
            scale_out[j, cc] = scale
            invs[cc] = _F1 if normalize == 0 else (F(1.0 / scale) if scale > 0 else _F0)
        if nch == 1:  # contiguous: vectorized
            f = invs[0]
            for q in range(npix):
                row[q] = acc[q] * f
                acc[q] = _F0
        else:
            for q in range(npix * nch):
                row[q] = acc[q] * invs[q % nch]
                acc[q] = _F0
