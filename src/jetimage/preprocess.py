"""Jet-image preprocessing: centring (and, later, rotation, flip, normalization).

Constituents are ``(n_jets, var)`` awkward records with ``pt, eta, phi, e, charge``; jets are
``(n_jets,)`` records with the jet-level branches of :data:`jetimage.io.JET_BRANCHES`.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from .jets import delta_phi
from .pixelize import Grid, pixelize


def centre_of(jets: ak.Array, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The (eta, phi) of each jet that goes to the image centre.

    ``leading_subjet`` falls back to the jet axis for jets without subjets;
    ``centroid`` is the intensity-weighted (pT) centroid, with phi measured from the jet axis
    so that jets straddling phi = +-pi are averaged correctly.
    """
    eta = ak.to_numpy(jets.jet_eta).astype(np.float64)
    phi = ak.to_numpy(jets.jet_phi).astype(np.float64)
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


def translate(constituents: ak.Array, eta0: np.ndarray, phi0: np.ndarray) -> ak.Array:
    """Constituents with (eta, phi) measured from (eta0, phi0), phi wrapped into [-pi, pi)."""
    return ak.with_field(
        ak.with_field(constituents, constituents.eta - eta0, "eta"),
        delta_phi(constituents.phi, phi0),
        "phi",
    )


def make_images(jets: ak.Array, options: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Preprocess and pixelize jets according to the ``images`` section of the configuration.

    Returns
    -------
    images : np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32.
    extras : dict
        Per-jet ``(n_jets,)`` arrays to store beside the images.
    """
    grid = Grid.from_config(options)
    eta0, phi0 = centre_of(jets, options["centre"])
    constituents = translate(jets.constituents, eta0, phi0)
    images = pixelize(constituents, grid, options["channels"], options["intensity"])
    return images, {}
