"""Fused numba kernel of the ``lorentz`` preprocessing: translation, rotation, flip, deposit, norm.

:func:`lorentz_images` does for a whole chunk of jets, in one compiled call, what
:func:`jetimage.preprocess.lorentz_frame` + :func:`jetimage.pixelize.pixelize_flat` +
:func:`jetimage.preprocess.normalize` do with whole-array numpy passes (those stay as the
readable reference; the tests check that both give the same images to float32 rounding).
The loop is over jets, and per jet over its constituents, which stay in the L1 cache:

1. translation (vectorized): ``px, py = pT cos(dphi), pT sin(dphi)``, ``pz = pT sinh(eta)``
   boosted along z with rapidity ``eta0``, ``E' = E cosh(eta0) - pz sinh(eta0)``;
2. the rotation angle (second subjet, or principal axis of the constituents' directions);
3. rotation about the x axis and the new ``pT' = sqrt(px^2 + py'^2)`` in one vectorized pass
   (cos/sin of the angle once per jet);
4. parity sums (branch-free, vectorized); the reflection ``pz -> -pz`` is not a pass of its
   own but the sign applied to pz in step 5;
5. image coordinates ``eta' = asinh(pz / pT')``, ``phi' = atan2(py, px)`` (vectorized);
6. deposit (``ngp`` or ``moment``) into a float64 scratch image and per-channel
   normalization into the float32 output. For one ``total`` channel (the usual case) a
   vectorized pass first computes, for every constituent whose taps all fall inside the
   image, its pixel index and the five ``moment`` weights (or the ``ngp`` pixel); the
   scatter loop then only adds them, and the general, bounds-checked path is left to the
   constituents near the edges or outside.

The elementary functions of steps 1 and 5 are evaluated with branch-free range reductions and
Taylor series (exp by ``exp(x / 32) ** 32``, sin/cos of a quarter angle and two doublings,
log by powers of two and ``2 atanh``, atan by the half-angle formula and a reduction to
``|r| <= tan(pi/16)`` about 0, tan(pi/8) or 1),
which LLVM vectorizes; they are accurate to a few 1e-15 (relative) on their domains. Inputs
outside those domains (``|eta| > 16``, unwrapped ``phi``, ``|eta'| > 3.4``, ``|phi'| > pi/2``,
zero or non-finite momenta) are flagged and redone with libm (``math.*``) in a scalar loop.
All arithmetic is float64; only the image is float32.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Codes of the options passed to :func:`lorentz_images`.
ROTATE_CODES = {"none": 0, "subjet": 1, "principal": 2}
FLIP_CODES = {"none": 0, "parity": 1}
DEPOSIT_CODES = {"ngp": 0, "moment": 1}
NORMALIZE_CODES = {"none": 0, "l1": 1, "l2": 2}
CHANNEL_CODES = {"total": 0, "charged": 1, "neutral": 2, "charged_count": 3}

#: As :data:`jetimage.preprocess.PARITY_TOLERANCE` (radians).
PARITY_TOLERANCE = 1e-9

#: LLVM fast-math flags: reassociation (vectorized sums), FMA contraction, reciprocals and
#: signed zeros; not ``nnan``/``ninf``, since NaN and inf inputs are detected by comparisons.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

_PI = math.pi
_TWO_PI = 2.0 * math.pi
_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_TAN_PI_8 = math.tan(math.pi / 8.0)
_TAN_PI_16 = math.tan(math.pi / 16.0)
_TAN_3PI_16 = math.tan(3.0 * math.pi / 16.0)


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
def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for ``1 <= a / b < 32``: reduction by powers of two to
    ``[1/sqrt(2), sqrt(2))``, then ``2 atanh(t)``, ``t = (a - b) / (a + b)``, to ``t^23``
    (``|t| <= 0.172``, error < 1e-18)."""
    k = 0.0
    big = a >= 16.0 * b
    b = b * 16.0 if big else b
    k = k + 4.0 if big else k
    big = a >= 4.0 * b
    b = b * 4.0 if big else b
    k = k + 2.0 if big else k
    big = a >= 2.0 * b
    b = b * 2.0 if big else b
    k = k + 1.0 if big else k
    big = a >= _SQRT2 * b
    b = b * 2.0 if big else b
    k = k + 1.0 if big else k
    t = (a - b) / (a + b)
    t2 = t * t
    series = 1.0 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (
        1.0 / 11 + t2 * (1.0 / 13 + t2 * (1.0 / 15 + t2 * (1.0 / 17 + t2 * (
            1.0 / 19 + t2 * (1.0 / 21 + t2 * (1.0 / 23)))))))))))
    return k * _LN2 + 2.0 * t * series


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _atan_unit(a: float) -> float:
    """``atan(a)`` for ``0 <= a <= 1``: ``atan(c) + atan((a - c) / (1 + a c))`` with ``c`` the
    nearest of 0, tan(pi/8), 1 (boundaries tan(pi/16), tan(3 pi/16)), then the Taylor series
    to ``r^21`` (``|r| <= tan(pi/16) = 0.199``, error < 4e-18)."""
    mid = a > _TAN_PI_16
    big = a > _TAN_3PI_16
    c = 1.0 if big else (_TAN_PI_8 if mid else 0.0)
    base = 0.25 * _PI if big else (0.125 * _PI if mid else 0.0)
    r = (a - c) / (1.0 + a * c)
    r2 = r * r
    # alternating series sum_{n=0}^{10} (-1)^n r^(2n+1) / (2n+1), Horner form
    s = 1.0 / 21
    s = 1.0 / 19 - r2 * s
    s = 1.0 / 17 - r2 * s
    s = 1.0 / 15 - r2 * s
    s = 1.0 / 13 - r2 * s
    s = 1.0 / 11 - r2 * s
    s = 1.0 / 9 - r2 * s
    s = 1.0 / 7 - r2 * s
    s = 1.0 / 5 - r2 * s
    s = 1.0 / 3 - r2 * s
    s = 1.0 / 1 - r2 * s
    return base + r * s


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def lorentz_images(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, e: np.ndarray, charge: np.ndarray,
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
    charge
        ``(n_constituents,)`` int32 (units of e).
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
        ``(n_channels,)`` int64 codes of :data:`CHANNEL_CODES`.
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
    ne, nph, nch = out.shape[1], out.shape[2], out.shape[3]
    maxc = 0
    for j in range(n_jets):
        maxc = max(maxc, offsets[j + 1] - offsets[j])
    px = np.empty(maxc)
    py = np.empty(maxc)
    pz = np.empty(maxc)
    en = np.empty(maxc)
    ptn = np.empty(maxc)
    uu = np.empty(maxc)
    vv = np.empty(maxc)
    bad = np.zeros(maxc, dtype=np.bool_)
    ib = np.empty(maxc, dtype=np.int64)
    t0, t1, t2, t3, t4 = np.empty(maxc), np.empty(maxc), np.empty(maxc), np.empty(maxc), np.empty(maxc)
    wch = np.empty((maxc, nch))
    npix = ne * nph
    step_u = nph * nch
    flat_out = out.reshape(n_jets, npix * nch)
    acc64 = np.empty(npix * nch)
    invs = np.empty(nch)
    single = nch == 1
    total_only = single and channels[0] == 0
    inv_pe, inv_pp = 1.0 / pixel_eta, 1.0 / pixel_phi
    off_u = (0.5 * ne * pixel_eta) / pixel_eta
    off_v = (0.5 * nph * pixel_phi) / pixel_phi
    ring = 0 if deposit == 0 else 1
    for j in range(n_jets):
        c0 = offsets[j]
        m = offsets[j + 1] - c0
        ch, sh, p0 = math.cosh(eta0[j]), math.sinh(eta0[j]), phi0[j]
        # 1. translation: rotation about z by -phi0, boost along z by eta0 (vectorized)
        pt_j, eta_j, phi_j = pt[c0:c0 + m], eta[c0:c0 + m], phi[c0:c0 + m]
        e_j, charge_j = e[c0:c0 + m], charge[c0:c0 + m]
        for k in range(m):  # slices indexed by the range variable: no wraparound, vectorized
            x, p = eta_j[k], pt_j[k]
            y = phi_j[k] - p0
            y = y - _TWO_PI if y > _PI else y
            y = y + _TWO_PI if y < -_PI else y
            a, b = _exp_pm(x)
            s, c = _sincos(y)
            pz0 = p * (0.5 * (a - b))
            ei = e_j[k]  # read unconditionally (``pt`` when massless): keeps the loop vectorized
            ee = p * (0.5 * (a + b)) if massless else ei
            px[k] = p * c
            py[k] = p * s
            pz[k] = pz0 * ch - ee * sh
            en[k] = ee * ch - pz0 * sh
            bad[k] = not (abs(x) <= 16.0 and abs(y) <= _PI)
        for k in range(m):  # outside the series' domains: libm
            if bad[k]:
                i = c0 + k
                p, dphi = pt[i], phi[i] - p0
                pz0 = p * math.sinh(eta[i])
                ee = p * math.cosh(eta[i]) if massless else e[i]
                px[k], py[k] = p * math.cos(dphi), p * math.sin(dphi)
                pz[k], en[k] = pz0 * ch - ee * sh, ee * ch - pz0 * sh
        # 2. rotation angle
        ang = 0.0
        if rotate != 0:
            ang = np.nan
            if rotate == 1:
                ang = -0.5 * _PI - math.atan2(math.sin(s2_phi[j] - p0), math.sinh(s2_eta[j] - eta0[j]))
            if not math.isfinite(ang):  # principal axis of the directions (pz, py) / |p|
                sw = su = sv = suu = svv = suv = 0.0
                for k in range(m):
                    nrm = 1.0 / math.sqrt(px[k] * px[k] + py[k] * py[k] + pz[k] * pz[k])
                    u, v = pz[k] * nrm, py[k] * nrm
                    w = en[k] if use_e else pt_j[k]
                    wu, wv = w * u, w * v
                    sw += w
                    su += wu
                    sv += wv
                    suu += wu * u
                    svv += wv * v
                    suv += wu * v
                inv = 1.0 / sw if sw > 0 else 0.0
                mu, mv = su * inv, sv * inv
                theta = 0.5 * math.atan2(2.0 * (suv * inv - mu * mv),
                                         (suu * inv - mu * mu) - (svv * inv - mv * mv))
                ang = 0.5 * _PI - theta
        # 3. rotation about x (vectorized) and pT'
        if rotate != 0:
            ca, sa = math.cos(ang), math.sin(ang)
            for k in range(m):
                z, y, x = pz[k], py[k], px[k]
                y2 = z * sa + y * ca
                pz[k] = z * ca - y * sa
                py[k] = y2
                ptn[k] = math.sqrt(x * x + y2 * y2)
        else:
            for k in range(m):
                ptn[k] = math.sqrt(px[k] * px[k] + py[k] * py[k])
        # 4. parity: the half eta > 0 holds at least the intensity of eta < 0
        sign = 1.0
        if flip == 1:
            left = right = 0.0
            for k in range(m):  # branch-free: vectorized
                q, z = ptn[k], pz[k]
                w = en[k] if use_e else q
                # on the axis (see preprocess.PARITY_TOLERANCE): on neither side
                w = 0.0 if abs(z) <= PARITY_TOLERANCE * math.sqrt(q * q + z * z) else w
                right += w if z > 0 else 0.0
                left += 0.0 if z > 0 else w
            if left > right:
                sign = -1.0  # the reflection pz -> -pz, applied in the next pass
        angle_out[j], sign_out[j] = ang, sign
        # 5. image coordinates eta' = asinh(pz / pT'), phi' = atan2(py, px) (vectorized)
        for k in range(m):
            q, t, z = ptn[k], px[k], pz[k] * sign
            az = abs(z)
            big = math.sqrt(q * q + z * z) + az
            et = _log_ratio(big, q)
            et = -et if z < 0 else et
            h = py[k] / (q + t)  # tan(phi' / 2), in [-1, 1] for px >= 0
            ph = 2.0 * _atan_unit(abs(h))
            ph = -ph if h < 0 else ph
            uu[k] = et * inv_pe + off_u
            vv[k] = ph * inv_pp + off_v
            bad[k] = not (big < 32.0 * q and t > 0.0)
        # 6. deposit into a float64 image of the jet (pixel (a, b), channel c at
        # (a * n_phi + b) * n_ch + c), channel contributions first
        for q in range(npix * nch):
            acc64[q] = 0.0
        if total_only:  # one total channel: a plain copy (vectorized)
            for k in range(m):
                wch[k, 0] = en[k] if use_e else ptn[k]
        for k in range(0 if total_only else m):
            value = en[k] if use_e else ptn[k]
            charged = charge_j[k] != 0
            for cc in range(nch):
                code = channels[cc]
                if code == 0:
                    wch[k, cc] = value
                elif code == 1:
                    wch[k, cc] = value if charged else 0.0
                elif code == 2:
                    wch[k, cc] = 0.0 if charged else value
                else:
                    wch[k, cc] = 1.0 if charged else 0.0
        stencil = total_only and deposit == 1
        if stencil:  # the five weights of the constituents well inside the image (vectorized)
            for k in range(m):
                u, v, w = uu[k], vv[k], wch[k, 0]
                fu, fv = math.floor(u), math.floor(v)
                du, dv = u - fu - 0.5, v - fv - 0.5
                inner = (fu >= 1.0) & (fu <= ne - 2.0) & (fv >= 1.0) & (fv <= nph - 2.0) & (not bad[k])
                ib[k] = int(fu * nph + fv) if inner else -1
                t0[k] = w * (0.5 - du * du - dv * dv)
                t1[k] = w * (0.5 * ((du + 0.5) * (du + 0.5)))
                t2[k] = w * (0.5 * ((du - 0.5) * (du - 0.5)))
                t3[k] = w * (0.5 * ((dv + 0.5) * (dv + 0.5)))
                t4[k] = w * (0.5 * ((dv - 0.5) * (dv - 0.5)))
        if total_only and deposit == 0:  # the pixel of each constituent inside (vectorized)
            for k in range(m):
                fu, fv = math.floor(uu[k]), math.floor(vv[k])
                inner = (fu >= 0.0) & (fu <= ne - 1.0) & (fv >= 0.0) & (fv <= nph - 1.0) & (not bad[k])
                ib[k] = int(fu * nph + fv) if inner else -1
        for k in range(m):
            if total_only and deposit == 0 and ib[k] >= 0:
                acc64[ib[k]] += wch[k, 0]
                continue
            if stencil and ib[k] >= 0:
                base = ib[k]
                acc64[base] += t0[k]
                acc64[base + nph] += t1[k]
                acc64[base - nph] += t2[k]
                acc64[base + 1] += t3[k]
                acc64[base - 1] += t4[k]
                continue
            u, v = uu[k], vv[k]
            if bad[k]:
                u = math.asinh(sign * pz[k] / ptn[k]) * inv_pe + off_u
                v = math.atan2(py[k], px[k]) * inv_pp + off_v
            fu, fv = math.floor(u), math.floor(v)
            if not (fu >= -ring and fu < ne + ring and fv >= -ring and fv < nph + ring):
                continue
            iu, iv = int(fu), int(fv)
            base = (iu * nph + iv) * nch
            if deposit == 0:
                if single:
                    acc64[base] += wch[k, 0]
                    continue
                for cc in range(nch):
                    acc64[base + cc] += wch[k, cc]
                continue
            du, dv = u - fu - 0.5, v - fv - 0.5
            u_in, v_in = 0 <= iu < ne, 0 <= iv < nph
            if single and u_in and v_in and 1 <= iu < ne - 1 and 1 <= iv < nph - 1:
                w = wch[k, 0]  # one channel, all five taps inside: no further tests
                acc64[base] += w * (0.5 - du * du - dv * dv)
                acc64[base + step_u] += w * (0.5 * ((du + 0.5) * (du + 0.5)))
                acc64[base - step_u] += w * (0.5 * ((du - 0.5) * (du - 0.5)))
                acc64[base + 1] += w * (0.5 * ((dv + 0.5) * (dv + 0.5)))
                acc64[base - 1] += w * (0.5 * ((dv - 0.5) * (dv - 0.5)))
                continue
            if u_in and v_in:
                kw = 0.5 - du * du - dv * dv
                for cc in range(nch):
                    acc64[base + cc] += wch[k, cc] * kw
            if v_in and iu + 1 < ne:
                kw = 0.5 * ((du + 0.5) * (du + 0.5))
                for cc in range(nch):
                    acc64[base + step_u + cc] += wch[k, cc] * kw
            if v_in and iu >= 1:
                kw = 0.5 * ((du - 0.5) * (du - 0.5))
                for cc in range(nch):
                    acc64[base - step_u + cc] += wch[k, cc] * kw
            if u_in and iv + 1 < nph:
                kw = 0.5 * ((dv + 0.5) * (dv + 0.5))
                for cc in range(nch):
                    acc64[base + nch + cc] += wch[k, cc] * kw
            if u_in and iv >= 1:
                kw = 0.5 * ((dv - 0.5) * (dv - 0.5))
                for cc in range(nch):
                    acc64[base - nch + cc] += wch[k, cc] * kw
        # normalization by the L1 or L2 norm of each channel, and the float32 image
        row = flat_out[j]
        for cc in range(nch):
            scale = 1.0
            if normalize != 0:
                acc = 0.0
                if single:  # contiguous: vectorized
                    for q in range(npix):
                        x = acc64[q]
                        acc += abs(x) if normalize == 1 else x * x
                else:
                    for q in range(npix):
                        x = acc64[q * nch + cc]
                        acc += abs(x) if normalize == 1 else x * x
                scale = acc if normalize == 1 else math.sqrt(acc)
            scale_out[j, cc] = scale
            invs[cc] = 1.0 if normalize == 0 else (1.0 / scale if scale > 0 else 0.0)
        if nch == 1:  # contiguous: vectorized
            f = invs[0]
            for q in range(npix):
                row[q] = np.float32(acc64[q] * f)
        else:
            for q in range(npix * nch):
                row[q] = np.float32(acc64[q] * invs[q % nch])
