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
from .generate import build_jets
from .io import CONSTITUENT_FIELDS, JET_BRANCHES, InputError, JetTreeWriter
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
              "charge": None, "pdgid": None},
}
_PDGID = {"EFlowPhoton": 22, "EFlowNeutralHadron": 130, "Tower": 0}
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


def _delphes_particles(arrays: ak.Array, collections: list[str]) -> ak.Array:
    """Visible particles of each event from Delphes energy-flow collections (massless but tracks)."""
    parts = []
    for name in collections:
        m = DELPHES_COLLECTIONS[name]
        good = arrays[m["pt"]] > 0  # Delphes stores empty objects with pT = 0
        pt, eta, phi = (ak.values_astype(arrays[m[k]][good], np.float64) for k in ("pt", "eta", "phi"))
        if m["e"] is not None:
            e = ak.values_astype(arrays[m["e"]][good], np.float64)
        else:
            e = np.sqrt((pt * np.cosh(eta)) ** 2 + PION_MASS**2)
        charge = arrays[m["charge"]][good] if m["charge"] else ak.zeros_like(pt, dtype=np.int32)
        pdgid = (arrays[m["pdgid"]][good] if m["pdgid"]
                 else ak.zeros_like(pt, dtype=np.int32) + _PDGID[name])
        parts.append(ak.zip({
            "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": e,
            "charge": ak.values_astype(charge, np.int32), "pdgid": ak.values_astype(pdgid, np.int32),
        }))
    return ak.concatenate(parts, axis=1)


def _delphes_jets(arrays: ak.Array, sample: dict[str, Any], jet_cfg: dict[str, Any],
                  first_event: int) -> tuple[dict[str, Any], np.ndarray]:
    particles = _delphes_particles(arrays, sample["constituents_from"])
    jets = build_jets(particles, jet_cfg)
    rows = jets["event"]
    if DELPHES_WEIGHT in arrays.fields:
        weights = ak.to_numpy(ak.fill_none(ak.firsts(arrays[DELPHES_WEIGHT]), 1.0)).astype(np.float64)
    else:
        weights = np.ones(len(arrays))
    jets["weight"] = weights[rows]
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


def ingest(cfg: Config, sample: str, path: str, entry_start: int, entry_stop: int,
           output: str | Path) -> int:
    """Read entries ``[entry_start, entry_stop)`` of one file of ``sample`` into a ``jets`` tree.

    Returns
    -------
    int
        Number of jets written to ``output`` (atomically).
    """
    s = cfg.sample(sample)
    where = f"samples[{cfg.sample_names.index(sample)}]"
    problems = list(check_sample({**s, "files": [path]}, where))
    if problems:
        raise InputError("; ".join(problems))
    tree = uproot.open(path)[tree_of(s)]
    branches = required_branches(s)
    if s["preset"] == "delphes" and DELPHES_WEIGHT in tree:
        branches.append(DELPHES_WEIGHT)
    elif s["preset"] != "delphes":
        branches = [b for b in jet_branch_map(s).values() if b in tree]
    if s.get("weight_branch"):
        branches.append(s["weight_branch"])
    if s.get("cross_section") is not None:
        # weight = sigma / N over the whole sample, so that summed weights give the cross-section
        n_total = sum(e - b for _, b, e in plan_chunks(s)) or 1
        xsec_weight = s["cross_section"] / n_total
    else:
        xsec_weight = 1.0
    step = max(1, min(s["chunk_entries"], 10_000))
    done = 0
    with JetTreeWriter(output) as writer:
        for arrays in tree.iterate(filter_name=branches, step_size=step, entry_start=entry_start,
                                   entry_stop=entry_stop, library="ak"):
            first = entry_start + done
            if s["preset"] == "delphes":
                jets, rows = _delphes_jets(arrays, s, cfg["jets"], first)
            else:
                jets, rows = _jetlevel_jets(arrays, s, first)
            if s.get("weight_branch"):
                jets["weight"] = ak.to_numpy(arrays[s["weight_branch"]]).astype(np.float64)[rows]
            jets["weight"] = jets["weight"] * xsec_weight
            jets = _apply_cuts(jets, s.get("cuts", {}), where)
            writer.extend(jets)
            done += len(arrays)
            log.info("%s: %s entries %d-%d: %d read, %d jets", sample, path, entry_start,
                     entry_stop, done, writer.n_jets)
    log.info("%s: wrote %d jets to %s", sample, writer.n_written, output)
    return writer.n_written
