"""Pileup: minimum-bias events overlaid on hard events, and the particle-level mitigations that
experiments run (charged-hadron subtraction, SoftKiller).

Everything is columnar over a batch of events: ``(n_events, var)`` awkward records with ``px, py,
pz, E`` (GeV), ``charge`` (e) and ``pdgid``, as :func:`jetimage.stages.generate.final_state` gives.
Overlaid particles gain ``origin``: 0 for the hard event (the leading vertex), 1 for pileup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import awkward as ak
import fastjet
import numpy as np

from jetimage.physics import jets as jetlib

__all__ = ["LEADING_VERTEX", "MITIGATIONS", "PILEUP", "Mitigation", "Overlay", "area_four_vector", "chs",
           "corrected_jets", "event_densities", "grid_rho", "leading_vertex", "match_jets", "overlay",
           "piled_jets", "softkiller", "softkiller_cut", "subtract_area"]

#: Values of the ``origin`` field.
LEADING_VERTEX, PILEUP = 0, 1


@dataclass(frozen=True)
class Overlay:
    """Particles of hard events with their pileup, and what was overlaid.

    Attributes
    ----------
    particles
        ``(n_events, var)`` the hard event's particles (``origin`` 0, first, in their order) then
        those of its pileup vertices (``origin`` 1).
    n_pileup
        ``(n_events,)`` int64 number of minimum-bias events overlaid on each (Poisson, mean mu).
    picks
        ``(sum n_pileup,)`` int64 the pool event of each pileup vertex, event by event.
    """

    particles: ak.Array
    n_pileup: np.ndarray
    picks: np.ndarray


def _with_origin(particles: ak.Array, origin: int) -> ak.Array:
    values = ak.values_astype(ak.zeros_like(particles.px), np.int32) + np.int32(origin)
    return ak.with_field(particles, values, "origin")


def overlay(hard: ak.Array, pool: ak.Array, mu: float, rng: np.random.Generator) -> Overlay:
    """Overlay a Poisson number (mean ``mu``) of minimum-bias events on each hard event.

    Each pileup vertex is a pool event drawn uniformly with replacement and rotated in phi by a
    uniform angle, so that a pool reused many times does not repeat the same pattern (the
    premixing of the experiments). The random numbers come from ``rng`` only, in a fixed order
    (counts, picks, angles): the same seed gives the same overlay, and ``mu = 0`` draws zeros and
    leaves the hard particles, in their order, untouched.

    Parameters
    ----------
    hard
        ``(n_events, var)`` hard-event particles ``px, py, pz, E, charge, pdgid``.
    pool
        ``(n_pool, var)`` minimum-bias events with the same fields (unused, may be empty, at
        ``mu = 0``).
    mu
        Mean number of pileup vertices per hard event.
    """
    n_events = len(hard)
    n_pileup = rng.poisson(mu, n_events).astype(np.int64)
    total = int(n_pileup.sum())
    if total and len(pool) == 0:
        raise ValueError("overlay: the minimum-bias pool is empty")
    picks = rng.integers(0, max(len(pool), 1), total)
    angle = rng.uniform(-np.pi, np.pi, total)
    fields = list(hard.fields)
    if total == 0:  # an empty list per event, of the hard particles' type
        per_event = hard[fields][:, :0]
    else:
        vertices = pool[picks][fields]
        cos, sin = np.cos(angle), np.sin(angle)  # broadcast per vertex over its particles
        px, py = vertices.px * cos - vertices.py * sin, vertices.px * sin + vertices.py * cos
        vertices = ak.with_field(ak.with_field(vertices, px, "px"), py, "py")
        # the vertices of one hard event joined into one list: (n_events, var) pileup particles
        sizes = np.bincount(np.repeat(np.arange(n_events), n_pileup), weights=ak.to_numpy(ak.num(vertices)),
                            minlength=n_events).astype(np.int64)
        per_event = ak.unflatten(ak.flatten(vertices, axis=1), sizes)
    particles = ak.concatenate([_with_origin(hard[fields], LEADING_VERTEX),
                                _with_origin(per_event, PILEUP)], axis=1)
    return Overlay(particles, n_pileup, picks.astype(np.int64))


def leading_vertex(particles: ak.Array) -> ak.Array:
    """The particles of the hard event alone (``origin`` 0): the truth of pileup removal."""
    return particles[particles.origin == LEADING_VERTEX]


def chs(particles: ak.Array) -> ak.Array:
    """Charged-hadron subtraction: remove the charged particles of pileup vertices (their tracks
    point to another vertex); neutral pileup stays. Tracks exist within the tracker only: a
    pileup study keeps its particles there (:data:`jetimage.images.channels.TRACKER_ETA`)."""
    return particles[~((particles.charge != 0) & (particles.origin != LEADING_VERTEX))]


def softkiller_cut(pt: ak.Array, eta: ak.Array, phi: ak.Array, grid_size: float = 0.4,
                   eta_max: float = 2.5) -> np.ndarray:
    """The SoftKiller pT threshold of each event (Cacciari, Salam, Soyez, arXiv:1407.0408).

    The (eta, phi) plane within ``|eta| < eta_max`` is cut into tiles of about ``grid_size`` (the
    numbers of tiles ``round(2 eta_max / grid_size)`` and ``round(2 pi / grid_size)``, at least
    one, so that they cover it exactly); the threshold is the median of the tiles' highest
    particle pT, an empty tile counting 0. With an even number of tiles the median is the upper
    one (the tile at index ``n_tiles // 2`` in increasing order, as FastJet contrib's SoftKiller).

    Parameters
    ----------
    pt, eta, phi
        ``(n_events, var)`` particle pT (GeV), pseudorapidity (the rapidity of massless
        particles) and azimuth (radians).

    Returns
    -------
    np.ndarray
        ``(n_events,)`` float64 thresholds (GeV); :func:`softkiller` keeps particles above them.
    """
    n_eta = max(1, round(2 * eta_max / grid_size))
    n_phi = max(1, round(2 * np.pi / grid_size))
    counts = ak.to_numpy(ak.num(pt))
    event = np.repeat(np.arange(len(counts)), counts)
    fpt, feta, fphi = (ak.to_numpy(ak.flatten(x)).astype(np.float64) for x in (pt, eta, phi))
    inside = np.abs(feta) < eta_max
    ieta = np.clip(((feta[inside] + eta_max) / (2 * eta_max) * n_eta).astype(np.int64), 0, n_eta - 1)
    iphi = (np.floor((fphi[inside] + np.pi) / (2 * np.pi) * n_phi).astype(np.int64)) % n_phi
    tile_max = np.zeros((len(counts), n_eta * n_phi))
    np.maximum.at(tile_max, (event[inside], ieta * n_phi + iphi), fpt[inside])
    return np.partition(tile_max, tile_max.shape[1] // 2, axis=1)[:, tile_max.shape[1] // 2]


def softkiller(particles: ak.Array, grid_size: float = 0.4, eta_max: float = 2.5) -> ak.Array:
    """The particles of each event above its :func:`softkiller_cut` (strictly: the particle that
    sets the median goes, as in FastJet contrib). ``particles`` carry ``pt, eta, phi``."""
    cut = softkiller_cut(particles.pt, particles.eta, particles.phi, grid_size, eta_max)
    return particles[particles.pt > cut]


def match_jets(truth: Mapping[str, np.ndarray], reco: Mapping[str, np.ndarray], max_dr: float) -> np.ndarray:
    """For each truth jet, the row of the nearest jet of ``reco`` in its event within ``max_dr``
    (-1: none). ``event``, ``jet_eta``, ``jet_phi``: ``(n,)`` arrays of each. Columnar over the
    pairs of jets of the same event."""
    t_event, r_event = np.asarray(truth["event"]), np.asarray(reco["event"])
    order = np.argsort(r_event, kind="stable")
    lo, hi = (np.searchsorted(r_event[order], t_event, side) for side in ("left", "right"))
    n = hi - lo
    t_row = np.repeat(np.arange(len(t_event)), n)
    r_row = order[np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))]
    dr = jetlib.delta_r(truth["jet_eta"][t_row], truth["jet_phi"][t_row], reco["jet_eta"][r_row],
                        reco["jet_phi"][r_row])
    o = np.lexsort((dr, t_row))  # by truth jet, nearest first
    first = np.r_[True, t_row[o][1:] != t_row[o][:-1]] if len(o) else np.zeros(0, bool)
    best, best_dr = np.full(len(t_event), -1), np.full(len(t_event), np.inf)
    best[t_row[o][first]], best_dr[t_row[o][first]] = r_row[o][first], dr[o][first]
    best[best_dr >= max_dr] = -1
    return best


def _cartesian(constituents: ak.Array) -> ak.Array:
    return ak.zip({"px": constituents.pt * np.cos(constituents.phi),
                   "py": constituents.pt * np.sin(constituents.phi),
                   "pz": constituents.pt * np.sinh(constituents.eta), "E": constituents.e})


def piled_jets(truth: dict[str, Any], particles: ak.Array, jet_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The pileup-free jets with the pileup that anti-kT adds to them.

    The particles with their pileup are clustered (anti-kT, every jet above half the window's
    start, anywhere: pileup moves jets), each truth jet is matched to the nearest within dR < R/2
    (unmatched ones are dropped), and the matched jets are trimmed as every jet. A jet's
    constituents are its truth jet's (the leading vertex's part, unchanged: anti-kT's hard
    boundaries barely move with soft pileup) and the pileup particles of its matched jet. Its
    variables are computed from them as :func:`jetimage.physics.jets.complete_jets` does, and
    kept as they are where no pileup entered (``mu = 0`` gives the pileup-free jets bit for bit).
    With ``jets.trim_fcut: 0`` nothing is trimmed: the ungroomed jets that pileup studies compare
    methods on.

    Parameters
    ----------
    truth
        :func:`jetimage.physics.jets.build_jets` of the leading vertex's particles, with ``label``
        and ``weight``.
    particles
        ``(n_events, var)`` the same events' particles with their pileup and ``origin``.

    Returns
    -------
    dict
        The matched jets as ``truth`` holds them (``event``, ``label``, ``weight`` of the truth
        jet), with the truth jet's ``truth_pt``, ``truth_eta``, ``truth_phi``, ``truth_m``,
        ``truth_tau21``, the densities of its event after CHS (``rho``, ``softkiller_cut``:
        :func:`event_densities`) and constituents that carry ``origin``.
    """
    # every jet above half the window's start, however many: at mu = 200 an R = 1 cone of pileup
    # alone holds ~400 GeV, so a rank limit would lose the hard jets
    jets = jetlib.cluster_jets(particles, jet_cfg["R"], 0.5 * jet_cfg["pt_min"], 2**31 - 1)
    axes = jetlib.kinematics(jets.px, jets.py, jets.pz, jets.E)
    row = match_jets(truth, {"event": ak.to_numpy(jets.event), "jet_eta": ak.to_numpy(axes["eta"]),
                             "jet_phi": ak.to_numpy(axes["phi"])}, 0.5 * jet_cfg["R"])
    keep = row >= 0
    out = {k: np.asarray(v)[keep] for k, v in truth.items() if k != "constituents"}
    lv = truth["constituents"][keep]
    lv = ak.with_field(lv, ak.values_astype(ak.zeros_like(lv.pt), np.int32), "origin")
    trimmed, _ = jetlib.trim(jets[row[keep]], jet_cfg["trim_R"], jet_cfg["trim_fcut"])
    pu = jetlib.particle_records(trimmed)
    pu = pu[pu.origin != LEADING_VERTEX]
    both = ak.concatenate([lv, pu], axis=1)
    both = both[ak.argsort(both.pt, ascending=False, stable=True)]
    changed = ak.to_numpy(ak.num(pu)) > 0
    if changed.any():
        computed = jetlib.complete_jets(_cartesian(both[changed]), {}, jet_cfg)
        for k, v in computed.items():
            if k in out:
                out[k] = out[k].astype(np.result_type(out[k], v))
                out[k][changed] = v
    for k in ("pt", "eta", "phi", "m"):
        out[f"truth_{k}"] = np.asarray(truth[f"jet_{k}"])[keep]
    out["truth_tau21"] = np.asarray(truth["tau21"])[keep]
    for name, values in zip(("rho", "rho_m", "softkiller_cut"), event_densities(particles), strict=True):
        out[name] = values[out["event"]]
    out["constituents"] = both
    return out


def event_densities(particles: ak.Array, tracker_eta: float = 2.5
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pileup densities of each event after charged-hadron subtraction, within the tracker:
    rho and rho_m (:func:`grid_rho`, GeV per unit area) and the SoftKiller threshold
    (:func:`softkiller_cut`, GeV), each ``(n_events,)``, from ``(n_events, var)`` particles with
    ``px, py, pz, E, charge, origin``. The rows of a jet's event are what its area subtraction and
    SoftKiller use."""
    kept = chs(particles)
    kin = jetlib.kinematics(kept.px, kept.py, kept.pz, kept.E)
    rho, rho_m = grid_rho(kept.px, kept.py, kept.pz, kept.E, rap_max=tracker_eta)
    return rho, rho_m, softkiller_cut(kin["pt"], kin["eta"], kin["phi"], eta_max=tracker_eta)


def grid_rho(px: ak.Array, py: ak.Array, pz: ak.Array, e: ak.Array, rap_max: float = 2.5,
             spacing: float = 0.55) -> tuple[np.ndarray, np.ndarray]:
    """The pileup densities rho and rho_m of each event, as FastJet's ``GridMedianBackgroundEstimator``
    (with ``set_compute_rho_m``).

    The rapidity-azimuth plane within ``|y| < rap_max`` is cut into ``int(2 rap_max / spacing +
    0.5)`` x ``int(2 pi / spacing + 0.5)`` tiles; rho is the median over the tiles of their summed
    particle pT over their area, rho_m that of their summed ``sqrt(m^2 + pT^2) - pT`` (the energy
    that the particles' masses add; empty tiles count 0; with an even number of tiles the mean of
    the middle two). A test checks both against FastJet's estimator itself.

    Parameters
    ----------
    px, py, pz, e
        ``(n_events, var)`` the particles' four-momenta (GeV).

    Returns
    -------
    rho, rho_m : np.ndarray
        ``(n_events,)`` float64 (GeV per unit area).
    """
    n_y = max(1, int(2 * rap_max / spacing + 0.5))
    n_phi = max(1, int(2 * np.pi / spacing + 0.5))
    d_y, d_phi = 2 * rap_max / n_y, 2 * np.pi / n_phi
    counts = ak.to_numpy(ak.num(px))
    event = np.repeat(np.arange(len(counts)), counts)
    fpx, fpy, fpz, fe = (ak.to_numpy(ak.flatten(x)).astype(np.float64) for x in (px, py, pz, e))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((fe + fpz) / (fe - fpz))
    inside = np.abs(y) < rap_max
    fpx, fpy, fpz, fe, y = fpx[inside], fpy[inside], fpz[inside], fe[inside], y[inside]
    iy = np.clip(((y + rap_max) / d_y).astype(np.int64), 0, n_y - 1)
    iphi = (np.arctan2(fpy, fpx) % (2 * np.pi) / d_phi).astype(np.int64) % n_phi
    pt = np.hypot(fpx, fpy)
    m_delta = np.sqrt(np.maximum(fe * fe - fpz * fpz, 0.0)) - pt  # sqrt(m^2 + pT^2) - pT = mT - pT
    out = []
    for value in (pt, m_delta):
        tiles = np.zeros((len(counts), n_y * n_phi))
        np.add.at(tiles, (event[inside], iy * n_phi + iphi), value)
        out.append(np.median(tiles, axis=1) / (d_y * d_phi))
    return out[0], out[1]


def area_four_vector(y: np.ndarray, phi: np.ndarray, radius: float) -> dict[str, np.ndarray]:
    """The four-vector area of a circle of ``radius`` about each jet axis: what a uniform pT density
    of 1 per unit area contributes to a rigid anti-kT jet (FastJet's active area of a hard,
    isolated jet, pi R^2 in pT).

    Over the disc, ``A_px = C cos(phi)``, ``A_py = C sin(phi)``, ``A_pz = H sinh(y)``, ``A_E =
    H cosh(y)`` with ``C`` and ``H`` the disc integrals of ``cos(d_phi)`` and ``cosh(d_y)``
    (computed once, numerically). ``y, phi``: ``(n,)`` jet rapidities and azimuths.
    """
    step = radius / 400
    grid = np.arange(-radius + step / 2, radius, step)
    dy, dphi = np.meshgrid(grid, grid, indexing="ij")
    inside = dy**2 + dphi**2 < radius**2
    c = float(np.cos(dphi[inside]).sum() * step**2)
    h = float(np.cosh(dy[inside]).sum() * step**2)
    return {"px": c * np.cos(phi), "py": c * np.sin(phi), "pz": h * np.sinh(y), "E": h * np.cosh(y)}


def subtract_area(p4: Mapping[str, np.ndarray], rho: np.ndarray, radius: float,
                  rho_m: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Area-median subtraction (Cacciari, Salam, arXiv:0707.1378): ``p - rho A_mu - rho_m (0, 0,
    A_pz, A_E)`` of each jet, as FastJet's ``Subtractor`` (with ``set_use_rho_m`` when ``rho_m`` is
    given: the particles' masses, which would otherwise stay in the jet mass); a jet whose pT would
    go below 0 becomes a null vector.

    Parameters
    ----------
    p4
        ``px, py, pz, E``: ``(n,)`` the jets' four-momenta (GeV).
    rho, rho_m
        ``(n,)`` the densities of each jet's event (:func:`grid_rho`).
    """
    kin = jetlib.kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((p4["E"] + p4["pz"]) / (p4["E"] - p4["pz"]))
    area = area_four_vector(y, kin["phi"], radius)
    out = {k: np.asarray(p4[k], np.float64) - rho * area[k] for k in ("px", "py", "pz", "E")}
    if rho_m is not None:
        out["pz"] -= rho_m * area["pz"]
        out["E"] -= rho_m * area["E"]
    gone = rho * np.hypot(area["px"], area["py"]) >= kin["pt"]  # as FastJet: more than the jet's pT
    for k in out:
        out[k][gone] = 0.0
    return out


#: The particle-level pileup mitigations compared on the same jets: ``none`` (every particle),
#: ``chs`` (charged-hadron subtraction), ``chs_area`` (CHS, then the jet's four-vector minus rho
#: times its area), ``chs_softkiller`` (CHS, then SoftKiller's threshold) and ``truth`` (the
#: leading vertex alone: what a perfect method gives).
Mitigation = Literal["none", "chs", "chs_area", "chs_softkiller", "truth"]
MITIGATIONS: tuple[Mitigation, ...] = get_args(Mitigation)


def _subtract_subjets(constituents: ak.Array, rho: np.ndarray, rho_m: np.ndarray, subjet_radius: float
                      ) -> dict[str, np.ndarray]:
    """The sum of each jet's kT subjets of ``subjet_radius``, each area-subtracted
    (:func:`subtract_area`; a subjet with no pT left is dropped): ``px, py, pz, E`` of each jet."""
    out = {k: np.zeros(len(constituents)) for k in ("px", "py", "pz", "E")}
    ok = ak.to_numpy(ak.num(constituents) > 0)
    if not ok.any():
        return out
    subjets = jetlib.cluster_sequence(constituents[ok], fastjet.kt_algorithm, subjet_radius).inclusive_jets()
    counts = ak.to_numpy(ak.num(subjets))
    flat = {k: ak.to_numpy(ak.flatten(subjets[k])) for k in ("px", "py", "pz", "E")}
    sub = subtract_area(flat, np.repeat(rho[ok], counts), subjet_radius, np.repeat(rho_m[ok], counts))
    jet = np.repeat(np.arange(int(ok.sum())), counts)
    for k in out:
        out[k][ok] = np.bincount(jet, weights=sub[k], minlength=int(ok.sum()))
    return out


def corrected_jets(jets: ak.Array, method: Mitigation, radius: float, jet_cfg: Mapping[str, Any]
                   ) -> dict[str, np.ndarray]:
    """Jet pT, mass and tau21 after a pileup mitigation, from the jets' particles.

    Parameters
    ----------
    jets
        ``(n_jets,)`` records with ``constituents`` (``pt, eta, phi, e, charge, origin``) and the
        event densities ``rho``, ``rho_m`` and ``softkiller_cut`` (:func:`piled_jets`). Trimmed jets
        (``jets.trim_fcut > 0``) are area-subtracted subjet by subjet (kT subjets of radius
        ``trim_R``, each minus rho times its area, those that go below zero dropped): a trimmed
        jet's area is that of its subjets, not pi R^2.
    method
        One of :data:`MITIGATIONS`.
    radius
        The jet radius R (the area of ``chs_area``).

    Returns
    -------
    dict
        ``pt``, ``m`` (GeV) and ``tau21`` (NaN below two constituents; for ``chs_area`` that of the
        CHS constituents: the area correction is of the four-vector), each ``(n_jets,)``.
    """
    if method not in MITIGATIONS:
        raise ValueError(f"unknown pileup mitigation {method!r}; choose from {MITIGATIONS}")
    c = jets.constituents
    charged_pu = (c.charge != 0) & (c.origin != LEADING_VERTEX)
    keep = {"none": ak.ones_like(c.pt, dtype=bool), "chs": ~charged_pu, "chs_area": ~charged_pu,
            "chs_softkiller": ~charged_pu & (c.pt > jets.softkiller_cut),
            "truth": c.origin == LEADING_VERTEX}[method]
    kept = _cartesian(c[keep])
    p4 = jetlib.four_vector_sum(kept)
    if method == "chs_area" and jet_cfg["trim_fcut"] > 0:
        p4 = _subtract_subjets(kept, ak.to_numpy(jets.rho), ak.to_numpy(jets.rho_m), jet_cfg["trim_R"])
    elif method == "chs_area":
        p4 = subtract_area(p4, ak.to_numpy(jets.rho), radius, ak.to_numpy(jets.rho_m))
    kin = jetlib.kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    return {"pt": kin["pt"], "m": kin["m"], "tau21": jetlib.tau21(kept, r0=jet_cfg["R"])}
