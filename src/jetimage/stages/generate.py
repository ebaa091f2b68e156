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

from jetimage.config import Config, slha_path
from jetimage.config.validation import derive_seed
from jetimage.formats.root import LAYOUTS, PILEUP_JETS, TreeWriter
from jetimage.physics import jets as jetlib
from jetimage.physics.events import event_rows
from jetimage.physics.jets import build_jets
from jetimage.physics.pileup import overlay, piled_jets

log = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """Pythia refused a command or failed to initialize."""


def make_pythia(commands: list[str], seed: int, sqrt_s: float):
    """An initialized Pythia with the given command strings and seed.

    Raises
    ------
    GenerationError
        Naming the first command Pythia does not accept.
    """
    import pythia8mc  # deferred: the Pythia library loads its data files; only generation needs it

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
    """The quarks from hadronic W decays in each event: ``(n_events, var)`` records ``eta, phi,
    parent`` (the index of their W)."""
    prt = batch.prt
    is_q = jetlib.is_w_decay_quark(prt.id, prt.mother1, prt.mother1 > 0)
    q = prt.p[is_q]
    kin = jetlib.kinematics(q.px, q.py, q.pz, q.e)
    return ak.zip({"eta": kin["eta"], "phi": kin["phi"], "parent": prt.mother1[is_q]})


class Pileup:
    """The pileup of one shard: its minimum-bias pool (its own Pythia run and seed) and the
    random numbers of the overlay, both apart from the hard events' (which stay those of the
    same sample without pileup)."""

    def __init__(self, cfg: Config, s: dict[str, Any], shard: int) -> None:
        self.mu, self.pool_size = float(s["pileup"]["mu"]), int(s["pileup"]["pool_size"])
        keys = (cfg["seed"], s["seed"], shard, 0x9113)  # a stream of its own
        self.rng = np.random.default_rng(keys)
        self.vertices = 0
        self.pool = ak.Array([[]]) if self.mu == 0 else self._pool(cfg, s, shard, keys)
        self.mean_particles = float(ak.mean(ak.num(self.pool))) if self.mu else 0.0

    def _pool(self, cfg: Config, s: dict[str, Any], shard: int, keys: tuple[int, ...]) -> ak.Array:
        seed = derive_seed(*keys) % 900_000_000 + 1
        log.info("%s shard %d: %d minimum-bias events for the pileup pool (mu %g), Pythia seed %d",
                 s["name"], shard, self.pool_size, self.mu, seed)
        pythia = make_pythia([*cfg["generation"]["common"], *s["pileup"]["pythia"]], seed,
                             cfg["generation"]["sqrt_s"])
        eta_max, batch_size = cfg["jets"]["particle_eta_max"], cfg["generation"]["batch_size"]
        parts = []
        for start in range(0, self.pool_size, batch_size):
            batch = pythia.nextBatch(min(batch_size, self.pool_size - start), "skip")
            parts.append(final_state(pythia, batch, eta_max))
        return ak.concatenate(parts)

    def run(self) -> dict[str, float]:
        """The ``run`` tree's pileup branches (:data:`jetimage.formats.root.PILEUP_RUN_BRANCHES`)."""
        return {"pileup_mu": self.mu, "pileup_pool": float(len(self.pool) if self.mu else 0),
                "pileup_vertices": float(self.vertices)}


#: Pileup particles overlaid at once: a batch of hard events is overlaid in pieces of at most about
#: this many, so that generation's memory is bounded whatever mu is (~1 KB per particle at the
#: piece's peak: clustering, trimming and the particle records).
OVERLAY_PARTICLES = 1_000_000


def _with_pileup(cfg: Config, truth: dict[str, Any], particles: ak.Array, pileup: Pileup) -> dict[str, Any]:
    """The pileup-free ``truth`` jets with the pileup of their events (:func:`piled_jets`), the
    batch's events overlaid in pieces of at most about :data:`OVERLAY_PARTICLES` pileup particles."""
    step = max(1, int(OVERLAY_PARTICLES // max(pileup.mu * pileup.mean_particles, 1.0)))
    pieces = []
    for a in range(0, len(particles), step):
        rows = (truth["event"] >= a) & (truth["event"] < a + step)
        piece = {k: v[rows] for k, v in truth.items()}
        piece["event"] = piece["event"] - a
        over = overlay(particles[a:a + step], pileup.pool, pileup.mu, pileup.rng)
        pileup.vertices += int(over.n_pileup.sum())
        jets = piled_jets(piece, over.particles, cfg["jets"])
        jets["n_pileup"] = over.n_pileup[jets["event"]].astype(np.int32)
        jets["event"] = jets["event"] + a
        pieces.append(jets)
    out = {k: (ak.concatenate([p[k] for p in pieces]) if k == "constituents"
               else np.concatenate([p[k] for p in pieces])) for k in pieces[0]}
    if len(out["event"]) < len(truth["event"]):
        log.warning("%d of %d jets have no jet within dR < R/2 once pileup is added: dropped",
                    len(truth["event"]) - len(out["event"]), len(truth["event"]))
    return out


def _jet_records(cfg: Config, s: dict[str, Any], pythia, batch: ak.Array, weights: np.ndarray,
                 pileup: Pileup | None = None) -> dict[str, Any]:
    jet_cfg = cfg["jets"]
    particles = final_state(pythia, batch, jet_cfg["particle_eta_max"])
    jets = build_jets(particles, jet_cfg)
    rows = jets["event"]
    jets["label"] = np.zeros(len(rows), dtype=np.int32)
    if s.get("truth", "none") == "W":
        quarks = w_decay_quarks(batch)[rows]
        jets["label"] = jetlib.truth_match(jets["jet_eta"], jets["jet_phi"], quarks.eta, quarks.phi,
                                           jet_cfg["truth_match_dr"], quarks.parent).astype(np.int32)
    jets["weight"] = weights[rows]
    return jets if pileup is None else _with_pileup(cfg, jets, particles, pileup)


def _event_records(cfg: Config, s: dict[str, Any], pythia, batch: ak.Array, weights: np.ndarray
                   ) -> dict[str, Any]:
    ev = cfg["events"]
    out = event_rows(final_state(pythia, batch, ev["particle_eta_max"]), weights, ev)
    out["pthat"] = np.sqrt(ak.to_numpy(batch.info.pT2Hat))[out["event"]]
    return out


#: What a generated record holds, per study kind: rows of the kind's tree for one batch.
RECORDS = {"jets": _jet_records, "events": _event_records}


def _forbidden(batch: ak.Array, pdgids: list[int]) -> int:
    """Events of the batch with a final-state particle whose |PDG id| is in ``pdgids``."""
    if not pdgids:
        return 0
    ids = ak.to_numpy(ak.flatten(abs(batch.prt.id[batch.prt.status > 0])))
    counts = ak.to_numpy(ak.num(batch.prt.id[batch.prt.status > 0]))
    bad = np.repeat(np.arange(len(counts)), counts)[np.isin(ids, pdgids)]
    return len(np.unique(bad))


def shard_events(n_events: int, n_shards: int, shard: int) -> tuple[int, int]:
    """``(first_event, n)`` of one shard: even split, the first ``n_events % n_shards`` get one more."""
    base, extra = divmod(n_events, n_shards)
    return shard * base + min(shard, extra), base + (shard < extra)


def pythia_commands(cfg: Config, s: dict[str, Any], first_event: int) -> list[str]:
    """Every Pythia command of one shard: the common ones, the SLHA file, the LHE file, the sample's."""
    commands = list(cfg["generation"]["common"])
    if "slha" in s:
        commands.append(f"SLHA:file = {slha_path(s['slha'])}")
    if "lhe" in s:
        # Pythia showers the file's events; this shard starts after the earlier shards' events
        commands += ["Beams:frameType = 4", f"Beams:LHEF = {s['lhe']}",
                     f"Beams:nSkipLHEFatInit = {first_event}"]
    return commands + list(s.get("pythia", []))


def generate(cfg: Config, sample: str, shard: int, output: str | Path) -> int:
    """Generate one shard of a sample and write its records to a ROOT file.

    What a record is depends on the study's kind (:data:`RECORDS`): a trimmed jet with its
    substructure and constituents (tree ``jets``), or a whole event with its visible particles
    and fat jets (tree ``events``). Every file also holds the ``run`` summary (events generated,
    sum of the Pythia weights, cross section), from which the image stage forms weights in pb.

    Parameters
    ----------
    cfg
        The validated configuration of the study.
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
        Number of records written.
    """
    s = cfg.sample(sample)
    if not 0 <= shard < s["n_shards"]:
        raise ValueError(f"shard {shard} out of range for sample {sample!r} ({s['n_shards']} shards)")
    first_event, n_events = shard_events(s["n_events"], s["n_shards"], shard)
    seed = cfg.shard_seed(sample, shard)
    log.info("%s shard %d: %d events, Pythia seed %d", sample, shard, n_events, seed)
    pileup = Pileup(cfg, s, shard) if "pileup" in s else None
    pythia = make_pythia(pythia_commands(cfg, s, first_event), seed, cfg["generation"]["sqrt_s"])
    with TreeWriter(output, LAYOUTS[cfg.kind] if pileup is None else PILEUP_JETS) as writer:
        done, sum_w = _shard_loop(cfg, s, shard, pythia, writer, first_event, n_events, pileup)
        info = pythia.infoPython()
        writer.run = {"n_generated": done, "n_written": writer.n_rows, "sum_weights": sum_w,
                      "sigma_pb": info.sigmaGen() * 1e9, "sigma_err_pb": info.sigmaErr() * 1e9,
                      "n_shards": s["n_shards"], **(pileup.run() if pileup else {})}
    if pileup is not None and pileup.mu:
        log.info("%s shard %d: %d pileup vertices from a pool of %d (each reused %.1f times)", sample,
                 shard, pileup.vertices, pileup.pool_size, pileup.vertices / max(len(pileup.pool), 1))
    log.info("%s shard %d: done, %d records of %d events; sigma_gen = %.4g +- %.2g pb", sample, shard,
             writer.n_written, done, writer.run["sigma_pb"], writer.run["sigma_err_pb"])
    return writer.n_written


def _lhe_shortfall(s: dict[str, Any], shard: int, first_event: int, read: int, asked: int) -> None:
    """A shard's LHE file ended after ``read`` of its ``asked`` events: an error, or with
    ``lhe_accept_fewer`` one warning line.

    Raises
    ------
    GenerationError
        Naming the LHE file, the events the sample asks and those the file holds.
    """
    # events the file holds: those the earlier shards skipped plus this shard's (at most the skipped
    # ones when the file ended before this shard's first event)
    found = f"{first_event + read}" if read else f"at most {first_event}"
    if s.get("lhe_accept_fewer", False):
        log.warning("%s shard %d: the LHE file %s ended after %d of the shard's %d events "
                    "(lhe_accept_fewer: the shard holds fewer)", s["name"], shard, s["lhe"], read, asked)
        return
    raise GenerationError(f"sample {s['name']!r}: the LHE file {s['lhe']} holds {found} events, fewer than "
                          f"n_events = {s['n_events']} (shard {shard} asked for events {first_event} to "
                          f"{first_event + asked - 1}); lower samples[].n_events or set "
                          f"lhe_accept_fewer: true")


def _shard_loop(cfg: Config, s: dict[str, Any], shard: int, pythia, writer: TreeWriter,
                first_event: int, n_events: int, pileup: Pileup | None = None) -> tuple[int, float]:
    """Generate the shard's events batch by batch into ``writer``: (events done, weight sum)."""
    batch_size, record = cfg["generation"]["batch_size"], RECORDS[cfg.kind]
    extra = {"pileup": pileup} if pileup is not None else {}
    done, sum_w, n_bad, start = 0, 0.0, 0, time.perf_counter()
    while done < n_events:
        n = min(batch_size, n_events - done)
        batch = pythia.nextBatch(n, "skip")
        if "lhe" in s and len(batch) < n and pythia.infoPython().atEndOfFile():
            _lhe_shortfall(s, shard, first_event, done + len(batch), n_events)
            n_events = done + len(batch)
            if len(batch) == 0:  # the file ended on a batch boundary
                break
        elif len(batch) == 0:
            raise GenerationError(f"{s['name']}: Pythia produced no event in a batch of {n}")
        weights = ak.to_numpy(batch.info.weights[:, 0]).astype(np.float64) if len(batch) else np.ones(0)
        sum_w += float(weights.sum())
        n_bad += _forbidden(batch, s["forbid_final"])
        rows = record(cfg, s, pythia, batch, weights, **extra)
        rows["event"] = first_event + done + rows["event"]
        writer.extend(rows)
        done += len(batch) if "lhe" in s else n
        rate = done / (time.perf_counter() - start)
        log.info("%s shard %d: %d/%d events, %d records so far, %.0f events/s, %.0f s left",
                 s["name"], shard, done, n_events, writer.n_rows, rate, (n_events - done) / rate)
    if n_bad:
        raise GenerationError(f"{s['name']}: {n_bad} events with forbidden final-state particles "
                              f"{s['forbid_final']} (samples[].forbid_final; e.g. undecayed neutralinos)")
    return done, sum_w
