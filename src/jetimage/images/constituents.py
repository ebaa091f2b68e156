"""Jet constituents as flat (columnar) arrays, and the per-jet quantities every preprocessing mode
needs: the centre, segment sums, the principal angle and the parity sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from jetimage.images.channels import record_flags
from jetimage.physics.jets import delta_phi

__all__ = ["FlatConstituents", "centre_of", "principal_angle", "segment_sum"]


@dataclass
class FlatConstituents:
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
    ) -> FlatConstituents:
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

    def block(self, j0: int, j1: int) -> FlatConstituents:
        """Jets ``[j0, j1)`` (views, no copy)."""
        c0, c1 = self.offsets[j0], self.offsets[j1]
        return FlatConstituents(
            self.pt[c0:c1], self.eta[c0:c1], self.phi[c0:c1], self.e[c0:c1],
            self.flags[c0:c1], self.counts[j0:j1], self.offsets[j0:j1 + 1] - c0,
        )


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


def second_subjet(jets: ak.Array) -> tuple[np.ndarray, np.ndarray]:
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


def parity_sign(x: np.ndarray, w: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """-1 for jets whose intensity at x < 0 exceeds that at x > 0, else +1: ``(n_jets,)``."""
    right, left = segment_sum(w * (x > 0), offsets), segment_sum(w * (x < 0), offsets)
    return np.where(left > right, -1.0, 1.0)


def output_array(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out[:shape[0]]`` after checking it, or a new float32 array of ``shape``."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.dtype != np.float32 or out.shape[1:] != shape[1:] or len(out) < shape[0] \
            or not out.flags.c_contiguous:
        raise ValueError(f"out: need a C-contiguous float32 array of shape (>= {shape[0]}, "
                         f"{', '.join(map(str, shape[1:]))}), got {out.dtype} {out.shape}")
    return out[:shape[0]]
