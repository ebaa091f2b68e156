"""Fat jets of whole events and the cut-based selection of Bhimji et al., arXiv:1711.03573.

RPV gluino pairs decay to many quarks; the search selects events with several large-radius
jets, a hard leading jet, two leading jets close in rapidity and a large summed jet mass M_J.
These are the physics baselines of a study of kind ``events``. Units: GeV, radians.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from jetimage.physics.jets import cluster_sequence, kinematics, particle_records

__all__ = ["EVENT_VARIABLES", "event_rows", "event_variables", "fat_jets"]

#: Event variables stored beside the event images (HDF5 columns).
EVENT_VARIABLES = ("n_fatjets", "mj", "lead_pt", "deta12", "cut_pass")


def fat_jets(particles: ak.Array, radius: float, pt_min: float) -> ak.Array:
    """Anti-kT fat jets of each event, sorted by decreasing pT.

    Parameters
    ----------
    particles
        ``(n_events, var)`` records with ``px, py, pz, E`` (GeV).
    radius
        Anti-kT radius R.
    pt_min
        Jets below this pT (GeV) are dropped.

    Returns
    -------
    ak.Array
        ``(n_events, var)`` records ``pt, eta, phi, m`` (GeV, radians).
    """
    import fastjet

    if len(particles) == 0:
        return ak.Array([[{"pt": 0.0, "eta": 0.0, "phi": 0.0, "m": 0.0}]])[:0]
    jets = cluster_sequence(particles, fastjet.antikt_algorithm, radius).inclusive_jets(min_pt=pt_min)
    kin = kinematics(jets.px, jets.py, jets.pz, jets.E)
    order = ak.argsort(kin["pt"], ascending=False)
    return ak.zip({k: kin[k][order] for k in ("pt", "eta", "phi", "m")})


def event_variables(fatjets: ak.Array, sel: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The variables and decision of the cut-based selection of arXiv:1711.03573.

    Fat jets count if pT > ``sel.fatjet_pt_min`` and |eta| < ``sel.fatjet_eta_max``. The event
    passes if it has at least ``n_min`` such jets, the leading one has pT > ``lead_pt_min``,
    |Delta eta| of the two leading is below ``deta_max``, and either at least 4 jets with
    M_J (summed mass of the 4 leading) > ``mj4_min`` or at least 5 with M_J > ``mj5_min``.

    Parameters
    ----------
    fatjets
        ``(n_events, var)`` records ``pt, eta, m`` sorted by decreasing pT.
    sel
        The ``events.selection`` settings.

    Returns
    -------
    dict
        ``(n_events,)`` arrays: ``n_fatjets`` (int), ``mj`` (GeV, sum over the up to 4 leading
        jets), ``lead_pt`` (GeV, 0 if none), ``deta12`` (inf with fewer than 2 jets),
        ``presel`` and ``cut_pass`` (bool).
    """
    good = fatjets[(fatjets.pt > sel["fatjet_pt_min"]) & (abs(fatjets.eta) < sel["fatjet_eta_max"])]
    n = ak.to_numpy(ak.num(good)).astype(np.int64)
    mj = ak.to_numpy(ak.sum(good.m[:, :4], axis=1)).astype(np.float64)
    padded = ak.pad_none(good, 2, axis=1)
    lead = ak.to_numpy(ak.fill_none(padded.pt[:, 0], 0.0)).astype(np.float64)
    deta = ak.to_numpy(ak.fill_none(abs(padded.eta[:, 0] - padded.eta[:, 1]), np.inf))
    presel = (n >= sel["n_min"]) & (lead > sel["lead_pt_min"])
    mass = ((n >= 4) & (mj > sel["mj4_min"])) | ((n >= 5) & (mj > sel["mj5_min"]))
    return {"n_fatjets": n, "mj": mj, "lead_pt": lead, "deta12": deta.astype(np.float64),
            "presel": presel, "cut_pass": presel & (deta < sel["deta_max"]) & mass}


def event_rows(particles: ak.Array, weights: np.ndarray, ev_cfg: dict[str, Any]) -> dict[str, Any]:
    """The rows of an ``events`` tree (:data:`jetimage.io.EVENTS`) for a batch of events.

    Fat jets are clustered from ``particles``; with ``events.skim`` only events passing the
    preselection (``n_min`` fat jets, leading pT) are kept. ``event`` is the row in the batch.
    """
    jets = fat_jets(particles, ev_cfg["fatjet_R"], ev_cfg["fatjet_pt_store"])
    keep = (event_variables(jets, ev_cfg["selection"])["presel"] if ev_cfg["skim"]
            else np.ones(len(weights), bool))
    rows = np.flatnonzero(keep)
    return {"event": rows, "weight": np.asarray(weights)[rows], "pthat": np.full(len(rows), np.nan),
            "particles": particle_records(particles[rows]), "fatjets": jets[rows]}
