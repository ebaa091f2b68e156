"""The ingest stage: a user's ROOT files -> the jetimage ``jets`` tree, one chunk per job.

A sample with ``files`` is read by a *preset* or an explicit branch map:

``jetimage``
    One entry per jet, as written by :mod:`jetimage.generate` (see :mod:`jetimage.io`).
``delphes``
    One entry per event (tree ``Delphes``). The energy-flow objects named in
    ``constituents_from`` (default ``EFlowTrack, EFlowPhoton, EFlowNeutralHadron``, or ``Tower``)
    become the particles from which jetimage clusters, trims and measures the fat jets itself
    (Delphes files often lack R = 1.0 jets). W truth matching uses the ``Particle`` branch.

``branches`` in the sample overrides any field of the preset's map. Files are split into chunks
of at most ``chunk_entries`` entries, each ingested by a separate job, so the memory of a job
is bounded whatever the file size.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from .config import Config
from .generate import build_jets, event_rows
from .io import CONSTITUENT_FIELDS, JET_BRANCHES, LAYOUTS, InputError, TreeWriter
from .jets import truth_match

log = logging.getLogger(__name__)

#: Pion mass (GeV), given to Delphes tracks, which carry no energy.
PION_MASS = 0.13957

#: Fields a jet-level file must provide; the others are filled (see :func:`_jetlevel_jets`).
REQUIRED_JET_FIELDS = ("jet_pt", "jet_eta", "jet_phi", "jet_m", "constituent_pt", "constituent_eta",
                       "constituent_phi", "constituent_e")

#: Default tree of each preset.
TREES = {"jetimage": "jets", "delphes": "Delphes"}

#: Delphes energy-flow collections: field -> branch (``None``: a constant given in ``_CONSTANTS``).
DELPHES_COLLECTIONS: dict[str, dict[str, str | None]] = {
    "EFlowTrack": {"pt": "EFlowTrack.PT", "eta": "EFlowTrack.Eta", "phi": "EFlowTrack.Phi",
                   "e": None, "charge": "EFlowTrack.Charge", "pdgid": "EFlowTrack.PID"},
    "EFlowPhoton": {"pt": "EFlowPhoton.ET", "eta": "EFlowPhoton.Eta", "phi": "EFlowPhoton.Phi",
                    "e": "EFlowPhoton.E", "charge": None, "pdgid": None},
    "EFlowNeutralHadron": {"pt": "EFlowNeutralHadron.ET", "eta": "EFlowNeutralHadron.Eta",
                           "phi": "EFlowNeutralHadron.Phi", "e": "EFlowNeutralHadron.E",
                           "charge": None, "pdgid": None},
    "Tower": {"pt": "Tower.ET", "eta": "Tower.Eta", "phi": "Tower.Phi", "e": "Tower.E",
              "charge": None, "pdgid": None, "eem": "Tower.Eem", "ehad": "Tower.Ehad"},
}
#: PDG id given to neutral energy-flow objects, so that the image channels em and had see them
#: as the calorimeter does: photons (EM) and K_L (hadronic). A Tower becomes two deposits at
#: its (eta, phi): its EM energy as a photon and its hadronic energy as a K_L.
_PDGID = {"EFlowPhoton": 22, "EFlowNeutralHadron": 130}
DELPHES_WEIGHT = "Event.Weight"
DELPHES_TRUTH = {"pid": "Particle.PID", "m1": "Particle.M1", "eta": "Particle.Eta", "phi": "Particle.Phi"}


def files_of(sample: dict[str, Any]) -> list[str]:
    """The sample's files: its ``files`` entries with glob patterns expanded, in order."""
    out: list[str] = []
    for pattern in sample["files"]:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out.extend(matches)
    return out


def tree_of(sample: dict[str, Any]) -> str:
    return sample.get("tree") or TREES[sample["preset"]]


def jet_branch_map(sample: dict[str, Any]) -> dict[str, str]:
    """For jet-level input: jetimage field -> branch name (the preset, overridden by ``branches``)."""
    fields = {**{k: k for k in JET_BRANCHES}, **{f"constituent_{f}": f"constituent_{f}"
                                                  for f in CONSTITUENT_FIELDS}}
    return {**fields, **sample.get("branches", {})}


def required_branches(sample: dict[str, Any]) -> list[str]:
    """Every branch the sample's reader needs."""
    if sample["preset"] == "delphes":
        names = [b for c in sample["constituents_from"] for b in DELPHES_COLLECTIONS[c].values() if b]
        if sample.get("truth") == "W":
            names += list(DELPHES_TRUTH.values())
        names += [b for b in sample.get("branches", {}).values()]
        return list(dict.fromkeys(names))
    bmap = jet_branch_map(sample)
    explicit = sample.get("branches", {})
    return [b for k, b in bmap.items() if k in REQUIRED_JET_FIELDS or k in explicit]


def check_sample(sample: dict[str, Any], where: str) -> Iterator[str]:
    """Problems that would stop the sample's jobs: missing files, trees and branches.

    Each problem names the config key (``where``), the file, and the tree or branch.
    """
    paths = files_of(sample)
    if not paths:
        yield f"{where}.files: no file matches {sample['files']}"
    tree = tree_of(sample)
    for path in paths:
        if not Path(path).is_file():
            yield f"{where}.files: {path}: no such file"
            continue
        try:
            f = uproot.open(path)
        except Exception as err:  # uproot raises many types for corrupt files
            yield f"{where}.files: {path}: not a readable ROOT file ({type(err).__name__}: {err})"
            continue
        with f:
            if tree not in f:
                yield f"{where}.tree: {path}: no tree {tree!r} (keys: {sorted(f.keys(cycle=False))})"
                continue
            t = f[tree]
            missing = [b for b in required_branches(sample) if b not in t]
            if missing:
                yield f"{where}: {path}: tree {tree!r} lacks branches {missing}"


def plan_chunks(sample: dict[str, Any]) -> list[tuple[str, int, int]]:
    """``(file, entry_start, entry_stop)`` of each ingest job of the sample."""
    size = sample["chunk_entries"]
    tree = tree_of(sample)
    chunks = []
    for path in files_of(sample):
        with uproot.open(path) as f:
            n = f[tree].num_entries
        chunks.extend((path, start, min(start + size, n)) for start in range(0, max(n, 1), size))
    return chunks


def _massless(pt, eta, phi, e, pdgid: int) -> ak.Array:
    return ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": e,
                   "charge": ak.values_astype(ak.zeros_like(pt), np.int32),
                   "pdgid": ak.values_astype(ak.zeros_like(pt), np.int32) + pdgid})


def _tower_deposits(arrays: ak.Array) -> list[ak.Array]:
    """Each tower as an EM deposit (a photon) and a hadronic one (a K_L), massless at its (eta, phi)."""
    m = DELPHES_COLLECTIONS["Tower"]
    good = arrays[m["pt"]] > 0
    eta, phi = (ak.values_astype(arrays[m[k]][good], np.float64) for k in ("eta", "phi"))
    out = []
    for key, pdgid in (("eem", _PDGID["EFlowPhoton"]), ("ehad", _PDGID["EFlowNeutralHadron"])):
        e = ak.values_astype(arrays[m[key]][good], np.float64)
        keep = e > 0
        out.append(_massless((e / np.cosh(eta))[keep], eta[keep], phi[keep], e[keep], pdgid))
    return out


def delphes_particles(arrays: ak.Array, collections: list[str]) -> ak.Array:
    """Visible particles of each event from Delphes energy-flow collections.

    The one convention of jetimage for Delphes: tracks (EFlowTrack) carry their charge and PDG
    id and the pion mass (Delphes stores no track energy); EFlowPhoton and EFlowNeutralHadron
    are massless with PDG ids 22 and 130; a Tower is split into a massless EM deposit (22, its
    ``Eem``) and a hadronic one (130, its ``Ehad``). Objects with pT = 0 (Delphes' empty slots)
    are dropped.

    Returns
    -------
    ak.Array
        ``(n_events, var)`` records ``px, py, pz, E`` (GeV), ``charge``, ``pdgid``.
    """
    parts = []
    for name in collections:
        if name == "Tower":
            parts += _tower_deposits(arrays)
            continue
        m = DELPHES_COLLECTIONS[name]
        good = arrays[m["pt"]] > 0
        pt, eta, phi = (ak.values_astype(arrays[m[k]][good], np.float64) for k in ("pt", "eta", "phi"))
        if m["e"] is None:  # a track
            e = np.sqrt((pt * np.cosh(eta)) ** 2 + PION_MASS**2)
            part = _massless(pt, eta, phi, e, 0)
            part["charge"] = ak.values_astype(arrays[m["charge"]][good], np.int32)
            part["pdgid"] = ak.values_astype(arrays[m["pdgid"]][good], np.int32)
            parts.append(part)
        else:
            parts.append(_massless(pt, eta, phi, ak.values_astype(arrays[m["e"]][good], np.float64),
                                   _PDGID[name]))
    return ak.concatenate(parts, axis=1)


def _delphes_weights(arrays: ak.Array) -> np.ndarray:
    if DELPHES_WEIGHT in arrays.fields:
        return ak.to_numpy(ak.fill_none(ak.firsts(arrays[DELPHES_WEIGHT]), 1.0)).astype(np.float64)
    return np.ones(len(arrays))


def _delphes_events(arrays: ak.Array, sample: dict[str, Any], cfg: Config,
                    first_event: int) -> tuple[dict[str, Any], np.ndarray]:
    particles = delphes_particles(arrays, sample["constituents_from"])
    rows = event_rows(particles, _delphes_weights(arrays), cfg["events"])
    index = rows["event"]
    rows["event"] = first_event + index
    return rows, index


def _delphes_jets(arrays: ak.Array, sample: dict[str, Any], cfg: Config,
                  first_event: int) -> tuple[dict[str, Any], np.ndarray]:
    jet_cfg = cfg["jets"]
    jets = build_jets(delphes_particles(arrays, sample["constituents_from"]), jet_cfg)
    rows = jets["event"]
    jets["weight"] = _delphes_weights(arrays)[rows]
    if sample.get("truth") == "W":
        pid, m1 = arrays[DELPHES_TRUTH["pid"]], arrays[DELPHES_TRUTH["m1"]]
        mother = pid[ak.where(m1 >= 0, m1, 0)]
        is_q = (abs(pid) <= 5) & (abs(mother) == 24) & (m1 >= 0)
        q_eta, q_phi = arrays[DELPHES_TRUTH["eta"]][is_q][rows], arrays[DELPHES_TRUTH["phi"]][is_q][rows]
        jets["label"] = truth_match(jets["jet_eta"], jets["jet_phi"], q_eta, q_phi,
                                    jet_cfg["truth_match_dr"]).astype(np.int32)
    else:
        jets["label"] = np.zeros(len(rows), dtype=np.int32)
    jets["event"] = first_event + rows
    return jets, rows


def _jetlevel_jets(arrays: ak.Array, sample: dict[str, Any],
                   first_entry: int) -> tuple[dict[str, Any], np.ndarray]:
    bmap = jet_branch_map(sample)
    n = len(arrays)
    jets: dict[str, Any] = {}
    # absent optional fields: event = entry number, weight 1, label 0, counts 0, the rest NaN
    fill = {"event": first_entry + np.arange(n), "weight": np.ones(n), "label": np.zeros(n),
            "n_subjets": np.zeros(n)}
    for name, dtype in JET_BRANCHES.items():
        if bmap[name] in arrays.fields:
            jets[name] = ak.to_numpy(arrays[bmap[name]]).astype(dtype)
        else:
            jets[name] = fill.get(name, np.full(n, np.nan)).astype(dtype)
    if "jet_e" not in sample.get("branches", {}) and "jet_e" not in arrays.fields:
        jets["jet_e"] = ak.to_numpy(ak.sum(arrays[bmap["constituent_e"]], axis=1)).astype(np.float64)
    cons = {}
    for f in CONSTITUENT_FIELDS:
        branch = bmap[f"constituent_{f}"]
        cons[f] = arrays[branch] if branch in arrays.fields else ak.zeros_like(
            arrays[bmap["constituent_pt"]], dtype=np.int32)
    jets["constituents"] = ak.zip(cons)
    return jets, np.arange(n)


def _apply_cuts(jets: dict[str, Any], cuts: dict[str, dict[str, float]], where: str) -> dict[str, Any]:
    keep = np.ones(len(jets["jet_pt"]), dtype=bool)
    for var, window in cuts.items():
        if var not in jets:
            raise InputError(f"{where}.cuts.{var}: no jet variable {var!r} (have {sorted(JET_BRANCHES)})")
        x = np.asarray(jets[var])
        keep &= (x >= window.get("min", -np.inf)) & (x < window.get("max", np.inf))
    return {k: v[keep] for k, v in jets.items()}


def _read_chunk(arrays: ak.Array, s: dict[str, Any], cfg: Config, first: int
                ) -> tuple[dict[str, Any], np.ndarray]:
    """Rows of the study's tree from one chunk of entries, and the entry of each row in the chunk."""
    if s["preset"] != "delphes":
        return _jetlevel_jets(arrays, s, first)
    if cfg.kind == "events":
        return _delphes_events(arrays, s, cfg, first)
    return _delphes_jets(arrays, s, cfg, first)


def _entry_weights(arrays: ak.Array, s: dict[str, Any], rows: dict[str, Any]) -> np.ndarray:
    """Per-entry weight of a chunk: the weight branch, else Delphes' Event.Weight, else the
    jet's mapped ``weight`` branch (1 when absent)."""
    if s.get("weight_branch"):
        return ak.to_numpy(arrays[s["weight_branch"]]).astype(np.float64)
    return _delphes_weights(arrays) if s["preset"] == "delphes" else np.asarray(rows["weight"], np.float64)


def ingest(cfg: Config, sample: str, path: str, entry_start: int, entry_stop: int,
           output: str | Path) -> int:
    """Read entries ``[entry_start, entry_stop)`` of one file of ``sample`` into the study's tree.

    For a study of kind ``jets`` the output is a ``jets`` tree (jets clustered by jetimage from
    Delphes objects, or read one per entry); for kind ``events`` an ``events`` tree (the whole
    event's particles and its fat jets). The ``run`` summary holds the entries read and the sum
    of their weights (with ``cross_section``: sigma / entries of the whole sample each).

    Returns
    -------
    int
        Number of rows written to ``output`` (atomically).
    """
    s = cfg.sample(sample)
    where = f"samples[{cfg.sample_names.index(sample)}]"
    problems = list(check_sample({**s, "files": [path]}, where))
    if problems:
        raise InputError("; ".join(problems))
    tree = uproot.open(path)[tree_of(s)]
    branches = _branches_to_read(s, tree)
    # weight = sigma / N over the whole sample, so that summed weights give the cross-section
    scale = s["cross_section"] / (sum(e - b for _, b, e in plan_chunks(s)) or 1) \
        if s.get("cross_section") is not None else 1.0
    done, sum_w = 0, 0.0
    with TreeWriter(output, LAYOUTS[cfg.kind]) as writer:
        for arrays in tree.iterate(filter_name=branches, step_size=max(1, min(s["chunk_entries"], 10_000)),
                                   entry_start=entry_start, entry_stop=entry_stop, library="ak"):
            rows, index = _read_chunk(arrays, s, cfg, entry_start + done)
            weights = _entry_weights(arrays, s, rows) * scale
            rows["weight"] = weights[index]
            sum_w += float(weights.sum())
            writer.extend(_apply_cuts(rows, s.get("cuts", {}), where) if cfg.kind == "jets" else rows)
            done += len(arrays)
            log.info("%s: %s entries %d-%d: %d read, %d rows", sample, path, entry_start,
                     entry_stop, done, writer.n_rows)
        writer.run = {"n_generated": done, "n_written": writer.n_rows, "sum_weights": sum_w,
                      "sigma_pb": sum_w, "sigma_err_pb": 0.0, "n_shards": 1}
    log.info("%s: wrote %d rows to %s", sample, writer.n_written, output)
    return writer.n_written


def _branches_to_read(s: dict[str, Any], tree) -> list[str]:
    branches = required_branches(s)
    if s["preset"] == "delphes" and DELPHES_WEIGHT in tree:
        branches.append(DELPHES_WEIGHT)
    elif s["preset"] != "delphes":
        branches = [b for b in jet_branch_map(s).values() if b in tree]
    if s.get("weight_branch"):
        branches.append(s["weight_branch"])
    return branches
