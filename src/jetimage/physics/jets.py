"""Jet reconstruction on awkward arrays with FastJet: clustering, trimming, tau21, truth matching.

Everything here is columnar: functions take awkward arrays of many events or jets at once and
hand the per-event loops to FastJet's C++ (its awkward ``ClusterSequence`` interface).
Momenta are in GeV, angles in radians; particle records carry ``px, py, pz, E`` plus any extra
fields (``charge``, ``pdgid``), which are carried along to the constituents.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import awkward as ak
import fastjet
import numpy as np

_MOMENTUM = ["px", "py", "pz", "E"]


def kinematics(px, py, pz, e) -> dict[str, np.ndarray]:
    """Transverse momentum, pseudorapidity, azimuth and mass of four-vectors.

    Works on numpy or awkward arrays of any shape. ``eta`` of a particle along the beam is
    +-inf; negative m^2 from rounding gives m = 0.
    """
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    m2 = e * e - px * px - py * py - pz * pz
    m = np.sqrt(np.maximum(m2, 0.0))
    return {"pt": pt, "eta": eta, "phi": phi, "m": m}


def delta_phi(phi1, phi2):
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Distance in the (eta, phi) plane, with phi wrap-around."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def _momenta(particles: ak.Array) -> ak.Array:
    return ak.zip({k: particles[k] for k in _MOMENTUM}, with_name="Momentum4D")


def cluster_sequence(particles: ak.Array, algorithm, radius: float, scheme=None):
    jetdef = (
        fastjet.JetDefinition(algorithm, radius)
        if scheme is None
        else fastjet.JetDefinition(algorithm, radius, scheme)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastJet's banner and exclusive-jet notes
        return fastjet.ClusterSequence(_momenta(particles), jetdef)


def cluster_jets(particles: ak.Array, radius: float, pt_min: float, n_leading: int) -> ak.Array:
    """Anti-kT jets of each event with their constituents, one row per jet.

    Parameters
    ----------
    particles
        ``(n_events, var)`` records with at least ``px, py, pz, E``.
    radius
        Anti-kT radius R.
    pt_min
        Jets below this pT (GeV) are dropped.
    n_leading
        Keep at most the ``n_leading`` highest-pT jets of each event.

    Returns
    -------
    ak.Array
        ``(n_jets,)`` records with ``event`` (row of the event in ``particles``),
        ``rank`` (0 for the leading jet), ``px, py, pz, E`` and ``constituents``:
        ``(n_jets, var)`` particle records with all input fields.
    """
    cs = cluster_sequence(particles, fastjet.antikt_algorithm, radius)
    jets = cs.inclusive_jets(min_pt=pt_min)
    index = cs.constituent_index(min_pt=pt_min)
    order = ak.argsort(np.hypot(jets.px, jets.py), ascending=False)[:, :n_leading]
    jets, index = jets[order], index[order]
    n_per_event = ak.to_numpy(ak.num(jets))
    event = np.repeat(np.arange(len(particles)), n_per_event)
    # global particle indices into the flattened particle list
    start = np.cumsum(ak.to_numpy(ak.num(particles))) - ak.to_numpy(ak.num(particles))
    jet_index = ak.flatten(index, axis=1)
    flat_index = ak.to_numpy(ak.flatten(jet_index + start[event]))
    constituents = ak.unflatten(ak.flatten(particles)[flat_index], ak.num(jet_index))
    return ak.zip(
        {
            "event": event,
            "rank": ak.to_numpy(ak.flatten(ak.local_index(jets, axis=1))),
            **{k: ak.to_numpy(ak.flatten(jets[k])) for k in _MOMENTUM},
            "constituents": constituents,
        },
        depth_limit=1,
    )


def trim(
    jets: ak.Array, subjet_radius: float, fcut: float
) -> tuple[ak.Array, ak.Array]:
    """Trim jets (Krohn, Thaler, Wang, arXiv:0912.1342).

    The constituents of each jet are reclustered with kT into subjets of radius
    ``subjet_radius``; subjets with pT < ``fcut`` x pT(jet) are removed.

    Parameters
    ----------
    jets
        ``(n_jets,)`` records with ``px, py, pz, E`` and jagged ``constituents``.

    Returns
    -------
    constituents : ak.Array
        ``(n_jets, var)`` the trimmed jets' constituents, sorted by decreasing pT.
    subjets : ak.Array
        ``(n_jets, var)`` the kept subjets (``px, py, pz, E``), sorted by decreasing pT.
    """
    jet_pt = np.hypot(jets.px, jets.py)
    cs = cluster_sequence(jets.constituents, fastjet.kt_algorithm, subjet_radius)
    subjets = cs.inclusive_jets()
    index = cs.constituent_index()
    keep = np.hypot(subjets.px, subjets.py) > fcut * jet_pt
    subjets, index = subjets[keep], index[keep]
    order = ak.argsort(np.hypot(subjets.px, subjets.py), ascending=False)
    subjets, index = subjets[order], index[order]
    constituents = jets.constituents[ak.flatten(index, axis=2)]
    constituents = constituents[ak.argsort(np.hypot(constituents.px, constituents.py), ascending=False)]
    return constituents, ak.zip({k: subjets[k] for k in _MOMENTUM})


def tau21(constituents: ak.Array, r0: float = 1.0) -> np.ndarray:
    """N-subjettiness ratio tau2/tau1 with winner-take-all kT axes and beta = 1.

    tau_N = sum_i pT_i min_k Delta R(i, axis_k) / (sum_i pT_i R0); the ratio does not depend
    on the normalization. Jets with fewer than two constituents get NaN.

    Parameters
    ----------
    constituents
        ``(n_jets, var)`` particle records with ``px, py, pz, E``.

    Returns
    -------
    np.ndarray
        ``(n_jets,)`` float64.
    """
    out = np.full(len(constituents), np.nan)
    ok = ak.to_numpy(ak.num(constituents) >= 2)
    if not ok.any():
        return out
    cs = cluster_sequence(constituents[ok], fastjet.antikt_algorithm, r0)
    taus = ak.to_numpy(
        cs.njettiness(
            measure_definition="NormalizedMeasure",
            axes_definition="WTA_KT_Axes",
            njets=[1, 2],
            beta=1.0,
            R0=r0,
        )
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ok] = np.where(taus[:, 0] > 0, taus[:, 1] / taus[:, 0], np.nan)
    return out


def in_window(pt: np.ndarray, eta: np.ndarray, jet_cfg) -> np.ndarray:
    """The study's jet window: ``pt_min <= pT < pt_max`` (GeV) and ``|eta| < eta_max``."""
    return (pt >= jet_cfg["pt_min"]) & (pt < jet_cfg["pt_max"]) & (np.abs(eta) < jet_cfg["eta_max"])


def four_vector_sum(particles: ak.Array) -> dict[str, np.ndarray]:
    """Sum of the four-momenta along the last axis: ``px, py, pz, E`` as numpy arrays."""
    return {k: ak.to_numpy(ak.sum(particles[k], axis=-1)) for k in _MOMENTUM}


def is_w_decay_quark(pdgid: ak.Array, mother: ak.Array, has_mother: ak.Array) -> ak.Array:
    """True for the quarks (d to b) whose mother is a W boson: the W truth of a jet.

    One definition for Pythia's event record and for a file's truth collection.

    Parameters
    ----------
    pdgid, mother
        ``(n_events, var)`` PDG ids and the index of each particle's (first) mother in the same
        event.
    has_mother
        ``(n_events, var)`` False where ``mother`` points at no particle (Pythia's 0, a file's -1).
    """
    mother_id = pdgid[ak.where(has_mother, mother, 0)]
    return (abs(pdgid) <= 5) & (abs(mother_id) == 24) & has_mother


def truth_match(
    jet_eta: np.ndarray, jet_phi: np.ndarray, quark_eta: ak.Array, quark_phi: ak.Array, max_dr: float,
    quark_parent: ak.Array | None = None,
) -> np.ndarray:
    """True where both decay quarks of one W of the jet's event lie within ``max_dr`` of the axis.

    An event with several hadronic W bosons (tt -> W b W b) matches a jet to any one of them:
    every quark of the same parent must be inside, quarks of the other W need not.

    Parameters
    ----------
    jet_eta, jet_phi
        ``(n_jets,)`` jet axes.
    quark_eta, quark_phi
        ``(n_jets, var)`` the decay quarks of the W bosons in each jet's event; jets whose
        event has no quarks are not matched.
    quark_parent
        ``(n_jets, var)`` which W each quark comes from (its mother's index); None: one W per
        event.
    """
    inside = delta_r(quark_eta, quark_phi, jet_eta, jet_phi) < max_dr
    parent = ak.zeros_like(quark_eta, dtype=np.int64) if quark_parent is None else quark_parent
    q = ak.zip({"inside": inside, "parent": parent})
    i, j = ak.unzip(ak.cartesian([q, q], nested=True))  # (n_jets, quark i, quark j)
    siblings_inside = ak.all((i.parent != j.parent) | j.inside, axis=2)
    return ak.to_numpy(ak.any(inside & siblings_inside, axis=1))


def build_jets(particles: ak.Array, jet_cfg: dict[str, Any]) -> dict[str, Any]:
    """Cluster, trim and select jets; compute their substructure.

    Parameters
    ----------
    particles
        ``(n_events, var)`` visible final-state particles (see :func:`jetimage.stages.generate.final_state`).
    jet_cfg
        The ``jets`` section of the configuration.

    Returns
    -------
    dict
        ``(n_jets,)`` arrays named as the scalar branches of :data:`jetimage.io.JET_BRANCHES`
        (without ``label``, ``weight`` and with ``event`` the row in ``particles``), and
        ``constituents``: ``(n_jets, var)`` records ``pt, eta, phi, e, charge, pdgid``.
    """
    jets = cluster_jets(particles, jet_cfg["R"], jet_cfg["pt_min"], jet_cfg["n_leading"])
    constituents, subjets = trim(jets, jet_cfg["trim_R"], jet_cfg["trim_fcut"])
    p4 = four_vector_sum(constituents)
    kin = kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    select = in_window(kin["pt"], kin["eta"], jet_cfg)
    constituents, subjets = constituents[select], subjets[select]
    kin = {k: v[select] for k, v in kin.items()}
    out: dict[str, Any] = {
        "event": jets.event.to_numpy()[select],
        "jet_pt": kin["pt"],
        "jet_eta": kin["eta"],
        "jet_phi": kin["phi"],
        "jet_m": kin["m"],
        "jet_e": p4["E"][select],
        "tau21": tau21(constituents, r0=jet_cfg["R"]),
        "n_subjets": ak.to_numpy(ak.num(subjets)),
    }
    padded = ak.pad_none(subjets, 2, axis=1)
    for i in (0, 1):
        s = padded[:, i]
        skin = kinematics(s.px, s.py, s.pz, s.E)
        for k in ("pt", "eta", "phi"):
            out[f"subjet{i + 1}_{k}"] = ak.to_numpy(ak.fill_none(skin[k], np.nan))
    out["constituents"] = particle_records(constituents)
    return out


def particle_records(particles: ak.Array) -> ak.Array:
    """``(n, var)`` records ``pt, eta, phi, e, charge, pdgid`` (and ``origin``, where the particles
    carry their vertex) of particles given as ``px, py, pz, E``."""
    kin = kinematics(particles.px, particles.py, particles.pz, particles.E)
    extra = {"origin": particles.origin} if "origin" in particles.fields else {}
    return ak.zip({"pt": kin["pt"], "eta": kin["eta"], "phi": kin["phi"], "e": particles.E,
                   "charge": particles.charge, "pdgid": particles.pdgid, **extra})


def complete_jets(constituents: ak.Array, given: Mapping[str, np.ndarray], jet_cfg: Mapping[str, Any]
                  ) -> dict[str, np.ndarray]:
    """Jet variables of jets given by their constituents: the ``given`` ones as they are, the
    others computed as :func:`build_jets` does (four-momentum sum; tau21 with
    WTA axes; kT subjets of radius ``trim_R`` above ``trim_fcut`` x pT). No constituent is removed.

    Parameters
    ----------
    constituents
        ``(n_jets, var)`` records ``px, py, pz, E``.
    given
        Field -> ``(n_jets,)`` values read from the file.
    """
    out: dict[str, np.ndarray] = {}
    p4 = four_vector_sum(constituents)
    kin = kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    computed = {"jet_pt": kin["pt"], "jet_eta": kin["eta"], "jet_phi": kin["phi"], "jet_m": kin["m"],
                "jet_e": p4["E"]}
    for k, v in computed.items():
        out[k] = np.asarray(given[k], np.float64) if k in given else v
    if "tau21" not in given:
        out["tau21"] = tau21(constituents, r0=jet_cfg["R"])
    sub_keys = [f"subjet{i}_{k}" for i in (1, 2) for k in ("pt", "eta", "phi")]
    if not set(sub_keys) <= set(given) or "n_subjets" not in given:
        out.update({k: v for k, v in _subjets(constituents, p4, jet_cfg).items() if k not in given})
    return {**{k: np.asarray(v) for k, v in given.items()}, **out}


def _subjets(constituents: ak.Array, p4: Mapping[str, np.ndarray], jet_cfg: Mapping[str, Any]
             ) -> dict[str, np.ndarray]:
    jets = ak.zip({**{k: p4[k] for k in ("px", "py", "pz", "E")}, "constituents": constituents},
                  depth_limit=1)
    out: dict[str, np.ndarray] = {"n_subjets": np.zeros(len(jets), np.int32)}
    for i in (1, 2):
        for k in ("pt", "eta", "phi"):
            out[f"subjet{i}_{k}"] = np.full(len(jets), np.nan)
    ok = ak.to_numpy(ak.num(constituents) > 0)
    if not ok.any():
        return out
    _, subjets = trim(jets[ok], jet_cfg["trim_R"], jet_cfg["trim_fcut"])
    out["n_subjets"][ok] = ak.to_numpy(ak.num(subjets))
    padded = ak.pad_none(subjets, 2, axis=1)
    for i in (0, 1):
        s = padded[:, i]
        skin = kinematics(s.px, s.py, s.pz, s.E)
        for k in ("pt", "eta", "phi"):
            out[f"subjet{i + 1}_{k}"][ok] = ak.to_numpy(ak.fill_none(skin[k], np.nan))
    return out
