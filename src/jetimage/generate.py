"""Event generation with Pythia 8 and jet building with FastJet, one shard at a time.

A shard is an independent Pythia run with its own seed; its jets go to one ROOT file with a
``jets`` TTree (see :mod:`jetimage.io`). Events come from ``Pythia.nextBatch`` as awkward
arrays, so nothing loops over particles in Python.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from . import jets as jetlib
from .config import Config
from .io import JetTreeWriter

log = logging.getLogger(__name__)

#: PDG ids of the quarks a W may decay to in the default sample.
_QUARKS = (1, 2, 3, 4, 5)


class GenerationError(RuntimeError):
    """Pythia refused a command or failed to initialize."""


def make_pythia(commands: list[str], seed: int, sqrt_s: float):
    """An initialized Pythia with the given command strings and seed.

    Raises
    ------
    GenerationError
        Naming the first command Pythia does not accept.
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    settings = [
        f"Beams:eCM = {sqrt_s}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        "Next:numberCount = 0",
        "Next:numberShowEvent = 0",
        "Next:numberShowProcess = 0",
        "Next:numberShowInfo = 0",
        "Init:showChangedParticleData = off",
        *commands,
    ]
    for command in settings:
        if not pythia.readString(command):
            raise GenerationError(f"Pythia rejected the command {command!r}")
    if not pythia.init():
        raise GenerationError(f"Pythia failed to initialize with {settings}")
    return pythia


def _lookup(pythia, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visibility and charge of each PDG id, asking Pythia once per distinct id."""
    unique, inverse = np.unique(ids, return_inverse=True)
    pdt = pythia.particleData
    visible = np.array([pdt.isVisible(int(i)) for i in unique], dtype=bool)
    charge = np.array([pdt.charge(int(i)) for i in unique], dtype=np.float64)
    return visible[inverse], charge[inverse]


def final_state(pythia, batch: ak.Array, eta_max: float) -> ak.Array:
    """Visible final-state particles of each event.

    Returns
    -------
    ak.Array
        ``(n_events, var)`` records ``px, py, pz, E`` (GeV), ``charge`` (units of e), ``pdgid``.
    """
    prt = batch.prt
    prt = prt[prt.status > 0]
    counts = ak.num(prt)
    ids = ak.to_numpy(ak.flatten(prt.id))
    visible, charge = _lookup(pythia, ids)
    p = prt.p
    px, py, pz, e = (ak.to_numpy(ak.flatten(p[k])) for k in ("px", "py", "pz", "e"))
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    keep = visible & (pt > 0) & (np.abs(eta) < eta_max)
    flat = ak.zip({"px": px, "py": py, "pz": pz, "E": e, "charge": charge, "pdgid": ids})
    event = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    return ak.unflatten(flat[keep], np.bincount(event[keep], minlength=len(counts)))


def w_decay_quarks(batch: ak.Array) -> ak.Array:
    """The quarks from hadronic W decays in each event: ``(n_events, var)`` records ``eta, phi``."""
    prt = batch.prt
    mother_id = prt.id[prt.mother1]
    is_decay = (abs(prt.id) <= max(_QUARKS)) & (abs(mother_id) == 24) & (prt.mother1 > 0)
    q = prt.p[is_decay]
    kin = jetlib.kinematics(q.px, q.py, q.pz, q.e)
    return ak.zip({"eta": kin["eta"], "phi": kin["phi"]})


def build_jets(particles: ak.Array, jet_cfg: dict[str, Any]) -> dict[str, Any]:
    """Cluster, trim and select jets; compute their substructure.

    Parameters
    ----------
    particles
        ``(n_events, var)`` visible final-state particles (see :func:`final_state`).
    jet_cfg
        The ``jets`` section of the configuration.

    Returns
    -------
    dict
        ``(n_jets,)`` arrays named as the scalar branches of :data:`jetimage.io.JET_BRANCHES`
        (without ``label``, ``weight`` and with ``event`` the row in ``particles``), and
        ``constituents``: ``(n_jets, var)`` records ``pt, eta, phi, e, charge, pdgid``.
    """
    jets = jetlib.cluster_jets(particles, jet_cfg["R"], jet_cfg["pt_min"], jet_cfg["n_leading"])
    constituents, subjets = jetlib.trim(jets, jet_cfg["trim_R"], jet_cfg["trim_fcut"])
    p4 = jetlib.four_vector_sum(constituents)
    kin = jetlib.kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    select = (
        (kin["pt"] >= jet_cfg["pt_min"])
        & (kin["pt"] < jet_cfg["pt_max"])
        & (np.abs(kin["eta"]) < jet_cfg["eta_max"])
    )
    constituents, subjets = constituents[select], subjets[select]
    kin = {k: v[select] for k, v in kin.items()}
    out: dict[str, Any] = {
        "event": jets.event.to_numpy()[select],
        "jet_pt": kin["pt"],
        "jet_eta": kin["eta"],
        "jet_phi": kin["phi"],
        "jet_m": kin["m"],
        "jet_e": p4["E"][select],
        "tau21": jetlib.tau21(constituents, r0=jet_cfg["R"]),
        "n_subjets": ak.to_numpy(ak.num(subjets)),
    }
    padded = ak.pad_none(subjets, 2, axis=1)
    for i in (0, 1):
        s = padded[:, i]
        skin = jetlib.kinematics(s.px, s.py, s.pz, s.E)
        for k in ("pt", "eta", "phi"):
            out[f"subjet{i + 1}_{k}"] = ak.to_numpy(ak.fill_none(skin[k], np.nan))
    ckin = jetlib.kinematics(constituents.px, constituents.py, constituents.pz, constituents.E)
    out["constituents"] = ak.zip(
        {
            "pt": ckin["pt"],
            "eta": ckin["eta"],
            "phi": ckin["phi"],
            "e": constituents.E,
            "charge": constituents.charge,
            "pdgid": constituents.pdgid,
        }
    )
    return out


def generate(cfg: Config, sample: str, shard: int, output: str | Path) -> int:
    """Generate one shard of a sample and write its jets to a ROOT file.

    Parameters
    ----------
    cfg
        The validated configuration.
    sample
        Name of a sample in ``cfg["samples"]``.
    shard
        Shard number in ``[0, n_shards)``; it gets ``n_events // n_shards`` events (the
        first ``n_events % n_shards`` shards one more) and its own seed.
    output
        Path of the ROOT file; written atomically.

    Returns
    -------
    int
        Number of jets written.
    """
    s = cfg.sample(sample)
    if not 0 <= shard < s["n_shards"]:
        raise ValueError(f"shard {shard} out of range for sample {sample!r} ({s['n_shards']} shards)")
    n_events = s["n_events"] // s["n_shards"] + (shard < s["n_events"] % s["n_shards"])
    first_event = shard * (s["n_events"] // s["n_shards"]) + min(shard, s["n_events"] % s["n_shards"])
    seed = cfg.shard_seed(sample, shard)
    gen = cfg["generation"]
    jet_cfg = cfg["jets"]
    log.info("%s shard %d: %d events, Pythia seed %d", sample, shard, n_events, seed)
    commands = gen["common"] + s.get("pythia", [])
    if "lhe" in s:
        # Pythia showers the file's events; this shard starts after the earlier shards' events
        commands += ["Beams:frameType = 4", f"Beams:LHEF = {s['lhe']}",
                     f"Beams:nSkipLHEFatInit = {first_event}"]
    pythia = make_pythia(commands, seed, gen["sqrt_s"])
    truth = s.get("truth", "none")
    done = 0
    start = time.perf_counter()
    with JetTreeWriter(output) as writer:
        while done < n_events:
            n = min(gen["batch_size"], n_events - done)
            batch = pythia.nextBatch(n, "skip")
            if "lhe" in s and len(batch) < n and pythia.infoPython().atEndOfFile():
                log.warning("%s shard %d: the LHE file %s ended after %d of %d events",
                            sample, shard, s["lhe"], done + len(batch), n_events)
                n_events = done + len(batch)
            particles = final_state(pythia, batch, jet_cfg["particle_eta_max"])
            jets = build_jets(particles, jet_cfg)
            rows = jets["event"]
            if truth == "W":
                quarks = w_decay_quarks(batch)[rows]
                label = jetlib.truth_match(
                    jets["jet_eta"], jets["jet_phi"], quarks.eta, quarks.phi,
                    jet_cfg["truth_match_dr"],
                ).astype(np.int32)
            else:
                label = np.zeros(len(rows), dtype=np.int32)
            weights = ak.to_numpy(batch.info.weights[:, 0]) if len(batch) else np.ones(0)
            jets["weight"] = weights[rows]
            jets["label"] = label
            jets["event"] = first_event + done + rows
            writer.extend(jets)
            done += len(batch) if "lhe" in s else n
            rate = done / (time.perf_counter() - start)
            log.info(
                "%s shard %d: %d/%d events, %d jets so far, %.0f events/s, %.0f s left",
                sample, shard, done, n_events, writer.n_jets, rate,
                (n_events - done) / rate,
            )
    info = pythia.infoPython()
    log.info(
        "%s shard %d: done, %d jets; sigma_gen = %.4g +- %.2g mb",
        sample, shard, writer.n_written, info.sigmaGen(), info.sigmaErr(),
    )
    return writer.n_written
