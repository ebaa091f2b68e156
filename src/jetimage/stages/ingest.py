"""The ingest stage: a user's ROOT files -> the study's tree (``jets`` or ``events``), one chunk
per job.

A sample with ``files`` is read by the reader of its layout (``preset``, see
:mod:`jetimage.readers`): ``jetimage`` (one jet per entry), ``nested`` (events holding jets
holding constituents), ``particles`` (events holding particle collections under any names)
and ``delphes`` (the same with Delphes's names and conventions). From particles jetimage
clusters, trims and measures the jets as for generated events (kind ``jets``) or keeps the
whole event (kind ``events``). The study's jet window and the sample's ``cuts`` apply to read
jets as to generated ones. Files are split into chunks of at most ``chunk_entries`` entries,
each ingested by a separate job, so the memory of a job is bounded whatever the file size.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jetimage.config import Config
from jetimage.config.validation import readable
from jetimage.formats import readers
from jetimage.formats.errors import InputError
from jetimage.formats.readers import PION_MASS, TREES  # noqa: F401  (public names of this stage)
from jetimage.formats.root import JET_BRANCHES, LAYOUTS, Layout, TreeWriter
from jetimage.physics.events import event_rows
from jetimage.physics.jets import (
    build_jets,
    complete_jets,
    four_vector_sum,
    in_window,
    is_w_decay_quark,
    kinematics,
    truth_match,
)

log = logging.getLogger(__name__)


def files_of(sample: dict[str, Any]) -> list[str]:
    """The sample's files: its ``files`` entries with glob patterns expanded, in order."""
    out: list[str] = []
    for pattern in sample["files"]:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out.extend(matches)
    return out


def tree_of(sample: dict[str, Any]) -> str:
    return sample.get("tree") or TREES[sample.get("preset", "jetimage")]


def check_sample(sample: dict[str, Any], where: str, kind: str = "jets") -> Iterator[str]:
    """Problems that would stop the sample's jobs: missing files, trees and branches, branches
    of the wrong type or depth, a directory or a file name that is not UTF-8 (a file read twice is a
    cross-check of :mod:`jetimage.config.validation`).

    Each problem is one line naming the config key (``where``), the file, the tree and the
    branch, with the fix where there is one.
    """
    paths = files_of(sample)
    if not paths:
        yield f"{where}.files: no file matches {sample['files']}"
    tree = tree_of(sample)
    for path in paths:
        try:  # the name travels through Snakemake's shell commands, logs and JSON records as UTF-8
            path.encode("utf-8")
        except UnicodeEncodeError:
            yield (f"{where}.files: {readable(path)}: the file name is not valid UTF-8: rename the file "
                   f"(or link it) to a UTF-8 name")
            continue
        if Path(path).is_dir():
            yield (f"{where}.files: {path}: a directory, not a file: give its files, "
                   f"e.g. {Path(path, '*.root')}")
            continue
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
            _, problems = readers.resolve(f[tree], sample, kind)
            for p in problems:
                key = p.split(":", 1)[0] if p.startswith(("branches.", "constituents_from", "truth_from")) \
                    else ""
                yield f"{where}{'.' + key if key else ''}: {path}: tree {tree!r}: " \
                      f"{p[len(key) + 2:] if key else p}"


def plan_chunks(sample: dict[str, Any]) -> list[tuple[str, int, int]]:
    """``(file, entry_start, entry_stop)`` of each ingest job of the sample."""
    size = sample["chunk_entries"]
    tree = tree_of(sample)
    chunks: list[tuple[str, int, int]] = []
    for path in files_of(sample):
        with uproot.open(path) as f:
            n = f[tree].num_entries
        chunks.extend((path, start, min(start + size, n)) for start in range(0, max(n, 1), size))
    return chunks


def event_particles(arrays: dict[str, ak.Array], sample: dict[str, Any], plan: readers.ReadPlan,
                    eta_max: float, path: str, first: int = 0) -> ak.Array:
    """Visible particles of each event, from the sample's collections.

    Every collection gives particles with pT > 0 and |eta| < ``eta_max`` that pass
    ``particle_cuts``. The Delphes convention (preset ``delphes``): tracks (EFlowTrack) carry
    their charge and PDG id and the pion mass (Delphes stores no track energy); EFlowPhoton and
    EFlowNeutralHadron are massless with PDG ids 22 and 130; a Tower is split into a massless
    EM deposit (22, its ``Eem``) and a hadronic one (130, its ``Ehad``).

    Returns
    -------
    ak.Array
        ``(n_events, var)`` records ``px, py, pz, E`` (GeV), ``charge``, ``pdgid``.
    """
    cuts = sample.get("particle_cuts") or {}
    parts = []
    for c in plan.collections:
        if c == "Tower" and plan.preset == "delphes":
            parts += readers.tower_deposits(arrays, eta_max)
        else:
            parts.append(readers.collection_particles(arrays, plan, c, cuts, eta_max, path, first))
    return ak.concatenate(parts, axis=1)


def _truth_labels(arrays: dict[str, ak.Array], plan: readers.ReadPlan, jets: dict[str, Any],
                  rows: np.ndarray, max_dr: float) -> np.ndarray:
    """1 for jets with both quarks of one hadronic W decay within ``max_dr`` (the truth collection;
    in tt events either W)."""
    t = plan.truth
    mother = arrays[f"{t}.mother"]
    is_q = is_w_decay_quark(arrays[f"{t}.pdgid"], mother, mother >= 0)
    q_eta, q_phi = arrays[f"{t}.eta"][is_q][rows], arrays[f"{t}.phi"][is_q][rows]
    return truth_match(jets["jet_eta"], jets["jet_phi"], q_eta, q_phi, max_dr,
                       mother[is_q][rows]).astype(np.int32)


def _particle_rows(arrays: dict[str, ak.Array], s: dict[str, Any], cfg: Config, plan: readers.ReadPlan,
                   path: str, first: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """Rows (jets or events) built from the particles of each entry, and each row's entry."""
    section = cfg["jets"] if cfg.kind == "jets" else cfg["events"]
    particles = event_particles(arrays, s, plan, section["particle_eta_max"], path, first)
    n = len(particles)
    if cfg.kind == "events":
        rows = event_rows(particles, np.ones(n), section)
        return rows, rows["event"]
    jets = build_jets(particles, section)
    entry = jets["event"]
    jets["label"] = (_truth_labels(arrays, plan, jets, entry, section["truth_match_dr"])
                     if plan.truth else np.zeros(len(entry), np.int32))
    return jets, entry


def _jet_rows(arrays: dict[str, ak.Array], s: dict[str, Any], cfg: Config, plan: readers.ReadPlan,
              path: str, first: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """Jets read one per entry (or per jet of a nested entry), in the study's window, with every
    jet variable the file lacks computed from the constituents (without energy or mass branch,
    every constituent has the sample's ``constituent_mass``). A read energy is checked
    (:func:`jetimage.formats.readers.check_energies`; ``first`` is the chunk's first entry)."""
    jet_cfg = cfg["jets"]
    cons = {k[len("constituent_"):]: v for k, v in arrays.items() if k.startswith("constituent_")}
    keys = [f"constituent_{k}" for k in cons]
    readers.check_same_counts(arrays, keys, plan, path)
    if "e" in cons:
        e, pt, eta = (ak.values_astype(cons[k], np.float64) for k in ("e", "pt", "eta"))
        readers.check_energies(e, pt, eta, plan, "constituent_e", path, first)
    scalars = [k for k in readers.JET_FIELDS if k in arrays and k not in readers.ENTRY_FIELDS]
    if plan.preset == "nested":
        per_event = ak.num(cons["pt"], axis=1)
        for k in scalars:
            if not ak.all(ak.num(arrays[k], axis=1) == per_event):
                raise InputError(f"{path}: tree {plan.tree!r}: branch {plan.fields[k].branch!r} has "
                                 f"not one value per jet of {plan.fields['constituent_pt'].branch!r}")
        entry = np.repeat(np.arange(len(per_event)), ak.to_numpy(per_event))
        cons = {k: ak.flatten(v, axis=1) for k, v in cons.items()}
        given = {k: ak.to_numpy(ak.flatten(arrays[k], axis=1)) for k in scalars}
    else:
        entry = np.arange(len(cons["pt"]))
        given = {k: ak.to_numpy(arrays[k]) for k in scalars}
    pt, eta, phi = (ak.values_astype(cons[k], np.float64) for k in ("pt", "eta", "phi"))
    mass = cons.get("mass", plan.constants.get("constituent_mass"))
    p4 = readers.four_momenta(pt, eta, phi, cons.get("e"), mass)
    momenta = ak.zip(p4)
    keep = _in_window(momenta, given, jet_cfg)
    jets = complete_jets(momenta[keep], {k: v[keep] for k, v in given.items()}, jet_cfg)
    jets["constituents"] = ak.zip({
        "pt": pt[keep], "eta": eta[keep], "phi": phi[keep], "e": ak.values_astype(p4["E"], np.float64)[keep],
        **{f: ak.values_astype(cons[f], np.int32)[keep] if f in cons else
           ak.values_astype(0 * pt[keep], np.int32) for f in ("charge", "pdgid")}})
    if "label" in arrays:
        jets["label"] = readers.entry_values(arrays, "label", len(entry), 0)[entry[keep]]
    return jets, entry[keep]


def _in_window(momenta: ak.Array, given: dict[str, np.ndarray], jet_cfg: dict[str, Any]) -> np.ndarray:
    """The study's jet window on the read jet pT and eta, or those of the constituents' sum where
    the file has none."""
    p4 = four_vector_sum(momenta)
    kin = kinematics(p4["px"], p4["py"], p4["pz"], p4["E"])
    return in_window(given.get("jet_pt", kin["pt"]), given.get("jet_eta", kin["eta"]), jet_cfg)


def _apply_cuts(jets: dict[str, Any], cuts: dict[str, dict[str, float]], where: str) -> dict[str, Any]:
    keep = np.ones(len(jets["jet_pt"]), dtype=bool)
    for var, window in cuts.items():
        if var not in jets:
            raise InputError(f"{where}.cuts.{var}: no jet variable {var!r} (have {sorted(JET_BRANCHES)})")
        x = np.asarray(jets[var])
        keep &= (x >= window.get("min", -np.inf)) & (x < window.get("max", np.inf))
    return {k: v[keep] for k, v in jets.items()}


def check_weights(weights: np.ndarray, plan: readers.ReadPlan, first: int, path: str) -> np.ndarray:
    """``weights`` of the entries ``first, first + 1, ...`` unchanged, after checking that they are
    finite (one NaN made every weight of the image file NaN: the run's summed weight scales them all).
    Negative weights (NLO generators) are kept.

    Raises
    ------
    InputError
        Naming the file, tree, weight branch and the first bad entry.
    """
    bad = ~np.isfinite(weights)
    if bad.any():
        i = int(np.argmax(bad))
        branch = plan.fields["weight"].branch if "weight" in plan.fields else "weight"
        raise InputError(f"{path}: tree {plan.tree!r}: branch {branch!r} (the event weight) entry "
                         f"{first + i} holds {weights[i]} ({int(bad.sum())} non-finite of entries {first}-"
                         f"{first + len(weights) - 1}): every weight must be finite; fix or drop those "
                         "entries, or map another weight_branch")
    return weights


def check_nonzero_weights(nonzero: bool, plan: readers.ReadPlan, start: int, stop: int, path: str) -> None:
    """Refuse a job whose entries ``[start, stop)`` all weigh 0 (``nonzero`` False): its images would
    all weigh 0 and every efficiency would be 0 / 0."""
    if not nonzero and "weight" in plan.fields and stop > start:
        raise InputError(f"{path}: tree {plan.tree!r}: branch {plan.fields['weight'].branch!r} (the event "
                         f"weight) is 0 in every entry {start}-{stop - 1}: no example would count; map "
                         "the right weight_branch, or drop it to weigh every entry 1")


def _rows(arrays: dict[str, ak.Array], s: dict[str, Any], cfg: Config, plan: readers.ReadPlan,
          first: int, path: str, scale: float) -> tuple[dict[str, Any], np.ndarray]:
    """The rows of the study's tree from one chunk of entries, and the weight of each entry read."""
    n = len(next(iter(arrays.values())))
    weights = check_weights(readers.entry_values(arrays, "weight", n, 1.0), plan, first, path) * scale
    build = _particle_rows if plan.preset in readers.PARTICLE_PRESETS else _jet_rows
    rows, entry = build(arrays, s, cfg, plan, path, first)
    events = readers.entry_values(arrays, "event", n, np.nan)
    rows["weight"] = weights[entry]
    rows["event"] = np.where(np.isnan(events), first + np.arange(n), events).astype(np.int64)[entry]
    rows["entry"] = first + entry  # the input entry: what a friend tree is aligned by (apply)
    rows.setdefault("label", np.zeros(len(entry), np.int32))
    return rows, weights


#: Uncompressed bytes of input branches read per step of an ingest job (an estimate from the
#: branches' sizes): bounds a job's memory by bytes, whatever the constituents per entry.
READ_BYTES = 32 * 2**20


def read_step(tree: Any, plan: readers.ReadPlan, chunk_entries: int, budget: int | None = None) -> int:
    """Entries read at once: at most ``chunk_entries`` and 10,000, and about ``budget`` bytes
    (default :data:`READ_BYTES`) of the plan's branches (their mean uncompressed size per entry;
    RNTuples: 10,000 entries)."""
    budget = READ_BYTES if budget is None else budget
    n = max(tree.num_entries, 1)
    per_entry = 0.0
    for f in plan.fields.values():
        size = getattr(tree[f.branch], "uncompressed_bytes", None)
        per_entry += (size or 0) / n
    by_bytes = int(budget // per_entry) if per_entry > 0 else 10_000
    return max(1, min(chunk_entries, 10_000, by_bytes))


#: A chunk's jets (events) look like a pruned generator record (partons, or a few stable particles,
#: instead of the final state) with fewer constituents (particles) than this on average, or with
#: known PDG ids and not one hadron: final-state jets above ~100 GeV hold tens of particles, ~2/3 hadrons.
PRUNED_MEAN = 7.0


def has_pdgid(plan: readers.ReadPlan) -> bool:
    """Whether the constituents (particles) read carry a PDG id (a branch or a constant)."""
    if plan.preset not in readers.PARTICLE_PRESETS:
        return "constituent_pdgid" in plan.fields
    known = set(plan.fields) | set(plan.constants)
    return any(f"{c}.pdgid" in known or (c == "Tower" and plan.preset == "delphes") for c in plan.collections)


def constituent_summary(counts: np.ndarray, n_hadrons: int, n_known: int, what: str) -> tuple[str, bool]:
    """A log line on the constituents of a chunk's rows, and whether they look like a pruned record.

    Parameters
    ----------
    counts
        Constituents (particles) of each row (jet or event) written.
    n_hadrons, n_known
        Constituents with a hadron's PDG id, and with a nonzero PDG id (0: none known).
    what
        ``"jet"`` or ``"event"``.
    """
    if len(counts) == 0:
        return f"no {what}s", False
    mean, least = float(counts.mean()), int(counts.min())
    fraction = n_hadrons / n_known if n_known else None
    text = (f"{mean:.1f} constituents per {what} (mean; min {least}), hadron fraction "
            f"{'unknown (no PDG id)' if fraction is None else f'{fraction:.2f}'}")
    return text, mean < PRUNED_MEAN or fraction == 0


def _units_warning(arrays: dict[str, ak.Array], plan: readers.ReadPlan, s: dict[str, Any], sample: str,
                   path: str) -> bool:
    """Log one warning when the median pT read is outside :data:`readers.PT_MEDIAN_RANGE` (the
    momenta look a thousand times off for the sample's ``units``); whether the median was known."""
    median = readers.median_pt(arrays, plan)
    if median is None:
        return False
    low, high = readers.PT_MEDIAN_RANGE
    units = s.get("units") or "GeV"
    if not low <= median <= high:
        fix = {(True, "GeV"): "set units: MeV", (False, "MeV"): "set units: GeV"}.get(
            (median > high, units), "check the pT branch mapped")
        log.warning("%s: %s: median constituent pT %.4g GeV read with units %s is outside the plausible "
                    "%g-%g GeV: the momenta look a thousand times off; %s", sample, path, median, units,
                    low, high, fix)
    return True


def ingested_layout(kind: str) -> Layout:
    """The study's tree layout plus ``entry``, the entry of the user's tree each row comes from
    (``event`` may be the user's event number), so that friend trees line up with the input."""
    layout = LAYOUTS[kind]
    return replace(layout, scalars={**layout.scalars, "entry": "int64"})


def ingest(cfg: Config, sample: str, path: str, entry_start: int, entry_stop: int,
           output: str | Path) -> int:
    """Read entries ``[entry_start, entry_stop)`` of one file of ``sample`` into the study's tree.

    For a study of kind ``jets`` the output is a ``jets`` tree (jets read one per entry or per
    nested jet, or clustered by jetimage from particles); for kind ``events`` an ``events``
    tree (the whole event's particles and its fat jets). The ``run`` summary holds the entries
    read and the sum of their weights (with ``cross_section``: sigma / entries of the whole
    sample each).

    Returns
    -------
    int
        Number of rows written to ``output`` (atomically).
    """
    s = cfg.sample(sample)
    where = f"samples[{cfg.sample_names.index(sample)}]"
    problems = list(check_sample({**s, "files": [path]}, where, cfg.kind))
    if problems:
        raise InputError("; ".join(problems))
    tree = uproot.open(path)[tree_of(s)]
    plan, _ = readers.resolve(tree, s, cfg.kind)
    # weight = sigma / N over the whole sample, so that summed weights give the cross-section
    scale = s["cross_section"] / (sum(e - b for _, b, e in plan_chunks(s)) or 1) \
        if s.get("cross_section") is not None else 1.0
    sum_w, nonzero, units_checked = 0.0, False, False
    counts, n_hadrons, n_known = [], 0, 0
    what, items = ("jet", "constituents") if cfg.kind == "jets" else ("event", "particles")
    step = read_step(tree, plan, s["chunk_entries"])
    with TreeWriter(output, ingested_layout(cfg.kind)) as writer:
        for a, b in readers.iter_chunks(entry_start, entry_stop, step):
            arrays = readers.read_chunk(tree, plan, a, b, path)
            units_checked = units_checked or _units_warning(arrays, plan, s, sample, path)
            rows, w = _rows(arrays, s, cfg, plan, a, path, scale)
            sum_w, nonzero = sum_w + float(w.sum()), nonzero or bool((w != 0).any())
            pdgid = rows[items].pdgid
            counts.append(ak.to_numpy(ak.num(pdgid, axis=1)))
            n_hadrons += int(ak.sum(readers.is_hadron(pdgid)))
            n_known += int(ak.sum(pdgid != 0))
            writer.extend(_apply_cuts(rows, s.get("cuts", {}), where) if cfg.kind == "jets" else rows)
            log.info("%s: %s entries %d-%d: %d read, %d rows", sample, path, entry_start,
                     entry_stop, b - entry_start, writer.n_rows)
        check_nonzero_weights(nonzero, plan, entry_start, entry_stop, path)
        summary, pruned = constituent_summary(np.concatenate(counts) if counts else np.zeros(0, int),
                                              n_hadrons, n_known if has_pdgid(plan) else 0, what)
        log.info("%s: %s entries %d-%d: %s", sample, path, entry_start, entry_stop, summary)
        if pruned:
            log.warning("%s: %s entries %d-%d: %s: this looks like a pruned generator record (partons or a "
                        "few stable particles), not the final state: read the final-state particles (e.g. "
                        "particle_cuts on status 1) or the full constituents", sample, path, entry_start,
                        entry_stop, summary)
        writer.run = {"n_generated": entry_stop - entry_start, "n_written": writer.n_rows,
                      "sum_weights": sum_w, "sigma_pb": sum_w, "sigma_err_pb": 0.0, "n_shards": 1}
    log.info("%s: wrote %d rows to %s", sample, writer.n_written, output)
    return writer.n_written
