"""Event classification from whole-event calorimeter images (after Bhimji et al., arXiv:1711.03573).

RPV gluino pairs (m(gluino) = 1400 GeV, m(neutralino) = 850 GeV, all-hadronic, 10 quarks) against
QCD multijets. Stages, each a function with file paths in and out:

``generate_events``
    Pythia 8 -> ROOT file with a ``events`` TTree: every visible final-state particle and the
    anti-kT R = 1.0 fat jets of each kept event, with its cross-section weight (pb), plus a
    one-entry ``run`` TTree (generated events, cross-section). Events may be skimmed with a
    loose preselection that every tighter selection implies; the weights stay normalized to
    all generated events, so every efficiency is absolute.
``make_event_images``
    ``events`` trees (or Delphes files) -> HDF5: whole-event images (channels last) and the
    event variables of the cut-based selection.
``train_events``
    The reference CNN (or another zoo model) with the cross-section weights, balanced per class.
``evaluate_events``
    Weighted ROC of the CNN, of the single-variable cuts (number of fat jets, M_J) and the
    cut-based working point; ``metrics.json``.
``plot_events``
    ROC with the working point, CNN output against N fat jets and M_J, example/mean images.

Units: GeV, radians, cross sections in pb. Everything is columnar (awkward/numpy); the only
Python loops run over batches, channels or files.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import yaml

from .config import ConfigError, derive_seed
from .io import ImageWriter, InputError, atomic_path, read_images
from .jets import kinematics

log = logging.getLogger(__name__)

#: Name of the TTree of events and of the per-shard run summary.
EVENTS_TREE, RUN_TREE = "events", "run"
#: Jagged particle fields -> dtype, branches ``particle_<field>`` with counter ``n_particles``.
PARTICLE_FIELDS = {"pt": "float32", "eta": "float32", "phi": "float32", "e": "float32",
                   "charge": "int32", "pdgid": "int32"}
#: Jagged fat-jet fields, branches ``fatjet_<field>`` with counter ``n_fatjets``.
FATJET_FIELDS = {"pt": "float32", "eta": "float32", "phi": "float32", "m": "float32"}
#: Image channels for particle-level and Delphes inputs.
EVENT_CHANNELS = ("em", "had", "charged_count", "total", "charged", "neutral")
#: Event variables stored beside the images (HDF5 columns).
EVENT_VARIABLES = ("n_fatjets", "mj", "lead_pt", "deta12", "cut_pass", "event")
#: Seed streams derived from the master seed (distinct from jetimage.train's 1 and 2).
SPLIT_STREAM, TRAIN_STREAM, BOOTSTRAP_STREAM = 51, 52, 53
N_BOOTSTRAP = 300  # bootstrap replicas of the test split for the factor's uncertainty


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


def validate_section(raw: Mapping[str, Any] | None, source: str = "<dict>") -> dict[str, Any]:
    """Validate the ``events`` section against its part of ``workflow/schemas/config.schema.yaml``.

    Returns a copy with the schema defaults filled in.

    Raises
    ------
    ConfigError
        Naming the file and every offending key (``events.<key>``).
    """
    import jsonschema

    from .config import _fill_defaults, _schema

    schema = _schema()["properties"]["events"]
    cfg = copy.deepcopy(dict(raw or {}))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg),
                    key=lambda e: [str(p) for p in e.path])
    if errors:
        lines = [f"{source}: events.{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
                 for e in errors]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines))
    _fill_defaults(cfg, schema)
    names = [cfg["signal"]["name"]] + [s["name"] for s in cfg["background"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: events: sample names must be unique, got {names}")
    for s in [cfg["signal"], *cfg["background"]]:
        if s["n_shards"] > s["n_events"]:
            raise ConfigError(f"{source}: events: sample {s['name']!r} has more shards than events")
    split = cfg["train"]["split"]
    if abs(sum(split.values()) - 1) > 1e-6:
        raise ConfigError(f"{source}: events.train.split: fractions must sum to 1")
    return cfg


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) configuration and return ``{"seed", "events"}`` validated.

    Only ``seed`` and the ``events`` section are read here; the rest of the file belongs to
    the jet workflow and is validated there.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping")
    return {"seed": int(raw.get("seed", 20151118)),
            "events": validate_section(raw.get("events"), source=str(path))}


def samples(ev: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Sample name -> sample settings with ``class`` (``signal``/``background``) added."""
    out = {ev["signal"]["name"]: {**ev["signal"], "class": "signal"}}
    for s in ev["background"]:
        out[s["name"]] = {**s, "class": "background"}
    return out


def slha_path(name: str) -> Path:
    """An SLHA file: a path, or the name of a file shipped in ``jetimage/data``."""
    p = Path(name)
    if p.exists():
        return p.resolve()
    shipped = Path(str(resources.files("jetimage") / "data" / name))
    if not shipped.exists():
        raise ConfigError(f"events: SLHA file {name!r} is neither a path nor shipped in jetimage/data")
    return shipped


# ---------------------------------------------------------------------------------------------
# physics: fat jets and the cut-based selection
# ---------------------------------------------------------------------------------------------


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

    from .jets import _cluster

    if len(particles) == 0:
        return ak.Array([[{"pt": 0.0, "eta": 0.0, "phi": 0.0, "m": 0.0}]])[:0]
    cs = _cluster(particles, fastjet.antikt_algorithm, radius)
    jets = cs.inclusive_jets(min_pt=pt_min)
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


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------


def shard_events(n_events: int, n_shards: int, shard: int) -> tuple[int, int]:
    """``(first_event, n)`` of one shard: even split, the first ``n_events % n_shards`` get one more."""
    base, extra = divmod(n_events, n_shards)
    return shard * base + min(shard, extra), base + (shard < extra)


def pythia_commands(sample: Mapping[str, Any]) -> list[str]:
    """The Pythia commands of a sample, with its SLHA file (if any) resolved to a path."""
    cmds = []
    if sample.get("slha"):
        cmds.append(f"SLHA:file = {slha_path(sample['slha'])}")
    return cmds + list(sample["pythia"])


def _particle_records(particles: ak.Array) -> ak.Array:
    kin = kinematics(particles.px, particles.py, particles.pz, particles.E)
    return ak.zip({"pt": kin["pt"], "eta": kin["eta"], "phi": kin["phi"], "e": particles.E,
                   "charge": particles.charge, "pdgid": particles.pdgid})


def _tree_types() -> dict[str, Any]:
    def record(fields: Mapping[str, str]):
        return ak.types.ListType(ak.types.RecordType(
            [ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(np.dtype(t)))
             for t in fields.values()], list(fields)))

    return {"event": "int64", "weight": "float64", "pthat": "float32",
            "particle": record(PARTICLE_FIELDS), "fatjet": record(FATJET_FIELDS)}


def write_events(path: str | Path, events: Mapping[str, Any], run: Mapping[str, float],
                 basket: int = 5000) -> None:
    """Write the ``events`` and ``run`` TTrees (uproot ``mktree``), atomically.

    Parameters
    ----------
    events
        ``event`` (int64), ``weight`` (float64, pb), ``pthat`` (GeV): ``(n,)`` arrays;
        ``particle`` and ``fatjet``: ``(n, var)`` records with the fields of
        :data:`PARTICLE_FIELDS` and :data:`FATJET_FIELDS`.
    run
        Scalars of the shard: ``n_generated``, ``sum_pythia_weights``, ``sigma_pb``,
        ``sigma_err_pb``, ``n_written``.
    """
    import uproot

    names = {"particle": "n_particles", "fatjet": "n_fatjets"}
    with atomic_path(path) as tmp, uproot.recreate(tmp) as f:
        tree = f.mktree(EVENTS_TREE, _tree_types(), counter_name=lambda c: names[c],
                        field_name=lambda outer, inner: f"{outer}_{inner}",
                        title="jetimage events: visible final-state particles and fat jets")
        n = len(events["weight"])
        for start in range(0, max(n, 1), basket):
            stop = min(start + basket, n)
            if stop <= start:
                break
            chunk = {k: np.asarray(events[k][start:stop]) for k in ("event", "weight", "pthat")}
            for name, fields in (("particle", PARTICLE_FIELDS), ("fatjet", FATJET_FIELDS)):
                rec = events[name][start:stop]
                chunk[name] = ak.zip({k: ak.values_astype(rec[k], t) for k, t in fields.items()})
            chunk["pthat"] = chunk["pthat"].astype(np.float32)
            tree.extend(chunk)
        f.mktree(RUN_TREE, {k: "float64" for k in run}, title="jetimage generation summary")
        f[RUN_TREE].extend({k: np.array([v], dtype=np.float64) for k, v in run.items()})


def generate_events(cfg: Mapping[str, Any], sample: str, shard: int, output: str | Path) -> int:
    """Generate one shard of an event sample with Pythia and write its ROOT file.

    Every event's weight is ``sigma_gen * w_i / sum_j w_j / n_shards`` (pb), with Pythia's
    event weights ``w`` (1 unless biased sampling is used) summed over all generated events of
    the shard, so the weights of all shards of a sample add up to its cross section whatever
    the skim keeps.

    Parameters
    ----------
    cfg
        ``{"seed": int, "events": validated events section}`` (see :func:`load_config`).
    sample
        Name of the signal or of a background slice.
    shard
        Shard number in ``[0, n_shards)``.
    output
        ROOT file to write.

    Returns
    -------
    int
        Number of events written.
    """
    from .generate import GenerationError, final_state, make_pythia

    ev = cfg["events"]
    all_samples = samples(ev)
    if sample not in all_samples:
        raise ConfigError(f"events: no sample {sample!r}; have {sorted(all_samples)}")
    s = all_samples[sample]
    if not 0 <= shard < s["n_shards"]:
        raise ValueError(f"shard {shard} out of range for {sample!r} ({s['n_shards']} shards)")
    first, n_events = shard_events(s["n_events"], s["n_shards"], shard)
    seed = derive_seed(cfg["seed"], zlib.crc32(sample.encode()), shard) % 900_000_000 + 1
    log.info("%s shard %d: %d events, Pythia seed %d", sample, shard, n_events, seed)
    pythia = make_pythia(list(ev["pythia_common"]) + pythia_commands(s), seed, ev["sqrt_s"])
    skim = ev["skim"]
    kept: dict[str, list] = {k: [] for k in ("event", "w", "pthat", "particle", "fatjet")}
    sum_w, done, n_kept, n_bad = 0.0, 0, 0, 0
    start = time.perf_counter()
    last_log = -1e9
    while done < n_events:
        n = min(ev["batch_size"], n_events - done)
        batch = pythia.nextBatch(n, "skip")
        if len(batch) == 0:
            raise GenerationError(f"{sample}: Pythia produced no event in a batch of {n}")
        w = ak.to_numpy(batch.info.weights[:, 0]).astype(np.float64)
        sum_w += w.sum()
        if s.get("forbid_final"):
            ids = batch.prt.id[batch.prt.status > 0]
            bad = ak.to_numpy(ak.any(_isin(abs(ids), s["forbid_final"]), axis=1))
            n_bad += int(bad.sum())
        particles = final_state(pythia, batch, ev["particle_eta_max"])
        jets = fat_jets(particles, ev["fatjet_R"], ev["fatjet_pt_store"])
        keep = event_variables(jets, ev["selection"])["presel"] if skim else np.ones(len(w), bool)
        idx = np.flatnonzero(keep)
        kept["event"].append(first + done + idx)
        kept["w"].append(w[idx])
        kept["pthat"].append(np.sqrt(ak.to_numpy(batch.info.pT2Hat))[idx])
        kept["particle"].append(_particle_records(particles[idx]))
        kept["fatjet"].append(jets[idx])
        n_kept += len(idx)
        done += len(batch)
        now = time.perf_counter()
        if now - last_log > 10 or done >= n_events:
            rate = done / (now - start)
            log.info("%s shard %d: %d/%d events, %d kept, %.0f events/s, %.0f s left",
                     sample, shard, done, n_events, n_kept, rate, (n_events - done) / rate)
            last_log = now
    if n_bad:
        raise GenerationError(f"{sample}: {n_bad} events with forbidden final-state particles "
                           f"{s['forbid_final']} (e.g. undecayed neutralinos)")
    info = pythia.infoPython()
    sigma_pb, err_pb = info.sigmaGen() * 1e9, info.sigmaErr() * 1e9
    scale = sigma_pb / sum_w / s["n_shards"]
    events = {
        "event": np.concatenate(kept["event"]).astype(np.int64),
        "weight": np.concatenate(kept["w"]) * scale,
        "pthat": np.concatenate(kept["pthat"]),
        "particle": ak.concatenate(kept["particle"]),
        "fatjet": ak.concatenate(kept["fatjet"]),
    }
    run = {"n_generated": float(done), "sum_pythia_weights": sum_w, "sigma_pb": sigma_pb,
           "sigma_err_pb": err_pb, "n_written": float(n_kept), "n_shards": float(s["n_shards"])}
    write_events(output, events, run)
    elapsed = time.perf_counter() - start
    log.info("%s shard %d: wrote %d of %d events (%.1f%%) to %s; sigma = %.4g +- %.2g pb; "
             "%.1f s, %.0f events/s", sample, shard, n_kept, done, 100 * n_kept / done, output,
             sigma_pb, err_pb, elapsed, done / elapsed)
    return n_kept


def _isin(ids: ak.Array, values: Sequence[int]) -> ak.Array:
    """Jagged ``np.isin``: ``(n, var)`` bool."""
    flat = np.isin(ak.to_numpy(ak.flatten(ids)), np.asarray(values))
    return ak.unflatten(flat, ak.num(ids))


# ---------------------------------------------------------------------------------------------
# reading: generated events and Delphes files
# ---------------------------------------------------------------------------------------------


def _open(path: str | Path, tree: str):
    import uproot

    try:
        f = uproot.open(path)
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except Exception as err:  # uproot raises many types for corrupt files
        raise InputError(f"{path}: not a readable ROOT file ({type(err).__name__}: {err})") from err
    if tree not in f:
        raise InputError(f"{path}: no tree {tree!r} (keys: {sorted(f.keys(cycle=False))})")
    return f


def read_run(paths: Sequence[str | Path]) -> dict[str, float]:
    """Summed ``run`` entries of generated files: ``n_generated``, ``n_written``, ``sigma_pb``.

    ``sigma_pb`` is the sample cross section (mean over shards), so that the sum of all event
    weights of all generated events is ``sigma_pb``.
    """
    out = {"n_generated": 0.0, "n_written": 0.0, "sigma_pb": 0.0}
    for path in paths:
        run = _open(path, RUN_TREE)[RUN_TREE].arrays(library="np")
        out["n_generated"] += float(run["n_generated"].sum())
        out["n_written"] += float(run["n_written"].sum())
        out["sigma_pb"] += float((run["sigma_pb"] / run["n_shards"]).sum())
    return out


def iterate_events(paths: Sequence[str | Path], step_size: int = 5000):
    """Stream ``events`` trees: ``(n, ...)`` records ``event, weight, particles, fatjets``.

    ``particles``: ``(n, var)`` with :data:`PARTICLE_FIELDS`; ``fatjets``: ``(n, var)`` with
    :data:`FATJET_FIELDS`.
    """
    branches = ["event", "weight"] + [f"particle_{k}" for k in PARTICLE_FIELDS] + \
        [f"fatjet_{k}" for k in FATJET_FIELDS]
    for path in paths:
        tree = _open(path, EVENTS_TREE)[EVENTS_TREE]
        missing = [b for b in branches if b not in tree]
        if missing:
            raise InputError(f"{path}: tree {EVENTS_TREE!r} lacks branches {missing}")
        for chunk in tree.iterate(branches, step_size=step_size, library="ak"):
            yield ak.zip({
                "event": chunk["event"], "weight": chunk["weight"],
                "particles": ak.zip({k: chunk[f"particle_{k}"] for k in PARTICLE_FIELDS}),
                "fatjets": ak.zip({k: chunk[f"fatjet_{k}"] for k in FATJET_FIELDS}),
            }, depth_limit=1)


def read_delphes(path: str | Path, mode: str = "eflow", entry_stop: int | None = None
                 ) -> dict[str, Any]:
    """Calorimeter-image inputs from a Delphes ROOT file.

    Parameters
    ----------
    path
        Delphes output with a ``Delphes`` tree.
    mode
        ``"eflow"``: EFlowPhoton (EM), EFlowNeutralHadron (hadronic) and EFlowTrack (electrons
        to EM, the rest hadronic; charged count). ``"tower"``: Tower ``Eem``/``Ehad`` for the two
        energy channels and EFlowTrack for the charged count.
    entry_stop
        Read only the first events.

    Returns
    -------
    dict
        ``deposits``: ``(n_events, var)`` records ``pt, eta, phi, e, em, had, charge`` (GeV;
        ``em``/``had`` the energy in each calorimeter part; ``charge`` nonzero for tracks),
        ``weight``: ``(n_events,)`` ``Event.Weight``.
    """
    f = _open(path, "Delphes")
    tree = f["Delphes"]
    track = ["EFlowTrack.PT", "EFlowTrack.Eta", "EFlowTrack.Phi", "EFlowTrack.P",
             "EFlowTrack.PID", "EFlowTrack.Charge"]
    if mode == "eflow":
        neutral = {p: [f"{p}.ET", f"{p}.Eta", f"{p}.Phi", f"{p}.E"]
                   for p in ("EFlowPhoton", "EFlowNeutralHadron")}
        needed = track + sum(neutral.values(), [])
    elif mode == "tower":
        needed = track + ["Tower.ET", "Tower.Eta", "Tower.Phi", "Tower.E", "Tower.Eem", "Tower.Ehad"]
    else:
        raise ValueError(f"unknown Delphes mode {mode!r}; use 'eflow' or 'tower'")
    missing = [b for b in needed if b not in tree]
    if missing:
        raise InputError(f"{path}: Delphes tree lacks branches {missing} (mode {mode!r})")
    weight_branch = ["Event.Weight"] if "Event.Weight" in tree else []
    a = tree.arrays(needed + weight_branch, entry_stop=entry_stop, library="ak")
    ok = (a["EFlowTrack.PT"] > 0) & (abs(a["EFlowTrack.Eta"]) < 100)  # Delphes' invalid tracks
    t_e = a["EFlowTrack.P"][ok]
    is_e = abs(a["EFlowTrack.PID"][ok]) == 11
    parts = [ak.zip({"pt": a["EFlowTrack.PT"][ok], "eta": a["EFlowTrack.Eta"][ok],
                     "phi": a["EFlowTrack.Phi"][ok], "e": t_e,
                     "em": ak.where(is_e, t_e, 0.0), "had": ak.where(is_e, 0.0, t_e),
                     "charge": a["EFlowTrack.Charge"][ok]})]
    if mode == "eflow":
        for prefix, em in (("EFlowPhoton", True), ("EFlowNeutralHadron", False)):
            e = a[f"{prefix}.E"]
            parts.append(ak.zip({"pt": a[f"{prefix}.ET"], "eta": a[f"{prefix}.Eta"],
                                 "phi": a[f"{prefix}.Phi"], "e": e, "em": e if em else 0 * e,
                                 "had": 0 * e if em else e, "charge": ak.values_astype(0 * e, np.int32)}))
    else:
        parts = [ak.zip({**{k: parts[0][k] for k in ("pt", "eta", "phi", "e", "charge")},
                         "em": 0 * parts[0].e, "had": 0 * parts[0].e})]  # tracks: count only
        e = a["Tower.E"]
        parts.append(ak.zip({"pt": a["Tower.ET"], "eta": a["Tower.Eta"], "phi": a["Tower.Phi"],
                             "e": e, "em": a["Tower.Eem"], "had": a["Tower.Ehad"],
                             "charge": ak.values_astype(0 * e, np.int32)}))
    fields = ("pt", "eta", "phi", "e", "em", "had", "charge")
    deposits = ak.concatenate([ak.zip({k: ak.values_astype(p[k], np.float64) if k != "charge"
                                       else ak.values_astype(p[k], np.int32) for k in fields})
                               for p in parts], axis=1)
    weight = (ak.to_numpy(ak.flatten(a["Event.Weight"], axis=None))[:len(a)]
              if weight_branch else np.ones(len(a)))
    if weight_branch and len(weight) != len(a):
        weight = np.ones(len(a))
    return {"deposits": deposits, "weight": weight.astype(np.float64)}


def delphes_fatjets(deposits: ak.Array, radius: float, pt_min: float) -> ak.Array:
    """Fat jets of Delphes energy-flow objects (massless four-vectors from pt, eta, phi)."""
    tracks_only = deposits.charge != 0
    # with Tower mode the tracks would double count: cluster the calorimeter only then
    use = deposits if ak.all(deposits.em + deposits.had > 0) else deposits[~tracks_only]
    px = use.pt * np.cos(use.phi)
    py = use.pt * np.sin(use.phi)
    pz = use.pt * np.sinh(use.eta)
    return fat_jets(ak.zip({"px": px, "py": py, "pz": pz, "E": use.pt * np.cosh(use.eta)}),
                    radius, pt_min)


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def particle_channel_weights(pdgid: np.ndarray, charge: np.ndarray, value: np.ndarray,
                             channels: Sequence[str]) -> np.ndarray:
    """Per-particle contributions to each channel: ``(n_particles, n_channels)``.

    ``em``: photons and electrons; ``had``: hadrons (|pdg id| > 100); ``charged_count``: 1 per
    charged particle; ``total``/``charged``/``neutral``: all, charged or neutral particles.
    Muons enter only ``total``, ``charged`` and the count.
    """
    apid = np.abs(pdgid)
    charged = charge != 0
    table: dict[str, Callable[[], np.ndarray]] = {
        "em": lambda: np.where((apid == 11) | (apid == 22), value, 0.0),
        "had": lambda: np.where(apid > 100, value, 0.0),
        "charged_count": lambda: charged.astype(np.float64),
        "total": lambda: value,
        "charged": lambda: np.where(charged, value, 0.0),
        "neutral": lambda: np.where(charged, 0.0, value),
    }
    unknown = [c for c in channels if c not in table]
    if unknown:
        raise ValueError(f"unknown event-image channels {unknown}; choose from {EVENT_CHANNELS}")
    return np.stack([table[c]() for c in channels], axis=1)


def deposit_channel_weights(deposits: ak.Array, intensity: str, channels: Sequence[str]
                            ) -> np.ndarray:
    """Channel contributions of flattened Delphes deposits: ``(n_deposits, n_channels)``."""
    em = ak.to_numpy(deposits.em)
    had = ak.to_numpy(deposits.had)
    charged = ak.to_numpy(deposits.charge) != 0
    e = em + had
    # pT intensity: scale each energy by the deposit's 1/cosh(eta)
    factor = 1.0 / np.cosh(ak.to_numpy(deposits.eta)) if intensity == "pt" else 1.0
    table = {"em": lambda: em * factor, "had": lambda: had * factor,
             "charged_count": lambda: charged.astype(np.float64),
             "total": lambda: e * factor, "charged": lambda: np.where(charged, e, 0.0) * factor,
             "neutral": lambda: np.where(charged, 0.0, e) * factor}
    unknown = [c for c in channels if c not in table]
    if unknown:
        raise ValueError(f"unknown event-image channels {unknown}; choose from {EVENT_CHANNELS}")
    return np.stack([table[c]() for c in channels], axis=1)


def event_images(eta: np.ndarray, phi: np.ndarray, weights: np.ndarray, counts: np.ndarray,
                 n_eta: int, n_phi: int, eta_max: float) -> np.ndarray:
    """Whole-event images over ``|eta| < eta_max`` and the full, periodic azimuth.

    Parameters
    ----------
    eta, phi
        ``(n_particles,)`` of all events, consecutive per event (phi in radians, any range).
    weights
        ``(n_particles, n_channels)`` pixel contributions.
    counts
        ``(n_events,)`` particles per event.

    Returns
    -------
    np.ndarray
        ``(n_events, n_eta, n_phi, n_channels)`` float32; pixel (i, j) covers
        eta in [-eta_max + i * 2 eta_max / n_eta, ...) and phi in [-pi + j * 2 pi / n_phi, ...).
        Particles outside the eta range are dropped; phi wraps around.
    """
    from .pixelize import Grid, pixelize_flat

    grid = Grid(n_eta, n_phi, 2 * eta_max / n_eta, 2 * np.pi / n_phi)
    iphi = np.floor((np.asarray(phi, np.float64) + np.pi) / grid.pixel_phi).astype(np.int64) % n_phi
    phi_centre = -np.pi + (iphi + 0.5) * grid.pixel_phi  # periodic by construction
    return pixelize_flat(np.asarray(eta, np.float64), phi_centre, weights, counts, grid)


def _columns_from_fatjets(fatjets: ak.Array, sel: Mapping[str, Any]) -> dict[str, np.ndarray]:
    v = event_variables(fatjets, sel)
    return {k: v[k] for k in ("n_fatjets", "mj", "lead_pt", "deta12")} | {
        "cut_pass": v["cut_pass"].astype(np.int8), "presel": v["presel"]}


def make_event_images(cfg: Mapping[str, Any], sample: str, inputs: Sequence[str | Path],
                      output: str | Path) -> int:
    """Whole-event images and event variables of one sample -> HDF5 (atomically).

    Inputs are the sample's generated ROOT files (``events.source: pythia``) or Delphes files
    (``events.source: delphes``, images from ``events.delphes.mode``). Only events passing the
    preselection (at least ``selection.n_min`` fat jets, leading pT) are written when
    ``events.skim`` is on; the file attributes hold the sample cross section and the weight
    sum of all generated events, so absolute efficiencies can be formed.

    Datasets: ``images`` ``(n, n_eta, n_phi, n_channels)`` float32, ``labels`` (1 signal),
    ``weights`` (pb per event), and :data:`EVENT_VARIABLES`.

    Returns
    -------
    int
        Number of images written.
    """
    ev = cfg["events"]
    s = samples(ev)[sample]
    icfg, sel = ev["images"], ev["selection"]
    channels = icfg["channels"]
    shape = (icfg["n_eta"], icfg["n_phi"], len(channels))
    label = 1 if s["class"] == "signal" else 0
    if ev["source"] == "pythia":
        run = read_run(inputs)
        sigma, n_generated = run["sigma_pb"], run["n_generated"]
    else:
        sigma, n_generated = float("nan"), 0.0
    attrs = {"sample": sample, "class": s["class"], "images": icfg, "selection": sel,
             "source": ev["source"], "sigma_pb": sigma}
    n_in = 0
    sum_w_all = 0.0
    start = time.perf_counter()
    with ImageWriter(output, shape, attrs) as writer:
        chunks = (_pythia_chunks(inputs, icfg, sel) if ev["source"] == "pythia"
                  else _delphes_chunks(inputs, ev))
        for images, columns in chunks:
            n_in += len(images)
            sum_w_all += float(columns["weights"].sum())
            if ev["skim"]:
                keep = columns["presel"]
                images = images[keep]
                columns = {k: v[keep] for k, v in columns.items()}
            columns.pop("presel")
            columns["labels"] = np.full(len(images), label, dtype=np.int8)
            writer.append(images, columns)
            log.info("%s: %d events read, %d images written, %.0f events/s", sample, n_in,
                     writer.n, n_in / (time.perf_counter() - start))
        if ev["source"] != "pythia":
            sigma, n_generated = sum_w_all, float(n_in)
        writer._file.attrs["sigma_pb"] = sigma
        writer._file.attrs["n_generated"] = n_generated
    log.info("%s: wrote %d images to %s (sample cross section %.4g pb)", sample, writer.n,
             output, sigma)
    return writer.n


def _pythia_chunks(inputs, icfg, sel):
    for chunk in iterate_events(inputs, icfg["chunk_size"]):
        p = chunk.particles
        counts = ak.to_numpy(ak.num(p))
        flat = ak.flatten(p)
        value = ak.to_numpy(flat[icfg["intensity"]]).astype(np.float64)
        w = particle_channel_weights(ak.to_numpy(flat.pdgid), ak.to_numpy(flat.charge), value,
                                     icfg["channels"])
        images = event_images(ak.to_numpy(flat.eta), ak.to_numpy(flat.phi), w, counts,
                              icfg["n_eta"], icfg["n_phi"], icfg["eta_max"])
        columns = _columns_from_fatjets(chunk.fatjets, sel)
        columns["weights"] = ak.to_numpy(chunk.weight).astype(np.float64)
        columns["event"] = ak.to_numpy(chunk.event)
        yield images, columns


def _delphes_chunks(inputs, ev):
    icfg = ev["images"]
    for path in inputs:
        d = read_delphes(path, ev["delphes"]["mode"])
        dep = d["deposits"]
        counts = ak.to_numpy(ak.num(dep))
        flat = ak.flatten(dep)
        w = deposit_channel_weights(flat, icfg["intensity"], icfg["channels"])
        images = event_images(ak.to_numpy(flat.eta), ak.to_numpy(flat.phi), w, counts,
                              icfg["n_eta"], icfg["n_phi"], icfg["eta_max"])
        jets = delphes_fatjets(dep, ev["fatjet_R"], ev["fatjet_pt_store"])
        columns = _columns_from_fatjets(jets, ev["selection"])
        columns["weights"] = d["weight"]
        columns["event"] = np.arange(len(counts), dtype=np.int64)
        yield images, columns


# ---------------------------------------------------------------------------------------------
# models and training
# ---------------------------------------------------------------------------------------------


def bhimji_cnn(input_shape: tuple[int, int, int], filters: int = 128, n_conv: int = 3,
               dropout: float = 0.5, dense: int = 512, normalization=None):
    """The CNN of Bhimji et al., arXiv:1711.03573.

    ``n_conv`` x [3x3 convolution with ``filters`` maps (ReLU) -> 2x2 max pooling], dropout,
    dense ``dense`` (ReLU) -> 1 (sigmoid).

    Parameters
    ----------
    input_shape
        ``(n_eta, n_phi, n_channels)``.
    """
    import keras

    inputs = keras.Input(shape=input_shape, name="images")
    x = normalization(inputs) if normalization is not None else inputs
    for i in range(n_conv):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model(inputs, outputs, name="bhimji_cnn")


def build_model(name: str, input_shape: tuple[int, int, int], **hp: Any):
    """A model of the event zoo (``bhimji``) or of :data:`jetimage.models.ZOO`."""
    from . import models

    zoo: dict[str, Callable[..., Any]] = {"bhimji": bhimji_cnn, **models.ZOO}
    if name not in zoo:
        raise ConfigError(f"events.train.model: unknown model {name!r}; available: {sorted(zoo)}")
    return zoo[name](input_shape, **hp)


def transform(images: np.ndarray, how: str) -> np.ndarray:
    """Pixel transform applied before the CNN: ``log1p`` (log(1 + x)) or ``none``."""
    if how == "log1p":
        return np.log1p(images, dtype=np.float32)
    return images.astype(np.float32, copy=False)


def dataset_split(cfg: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """The train/validation/test split of the event study (shared by training and evaluation)."""
    from .train import split_indices

    return split_indices(n, cfg["events"]["train"]["split"], derive_seed(cfg["seed"], SPLIT_STREAM))


def train_events(cfg: Mapping[str, Any], inputs: Sequence[str | Path], model_path: str | Path,
                 history_path: str | Path) -> dict[str, list[float]]:
    """Train the event CNN on HDF5 event images with the cross-section weights.

    Sample weights are the event weights (pb) rescaled per class to equal totals
    (:func:`jetimage.train.balanced_weights`). The best model on the validation loss is saved
    to ``model_path`` (``.keras``) and the history to ``history_path`` (JSON), atomically.
    """
    import keras

    from .train import _ProgressLog, balanced_weights

    tcfg = cfg["events"]["train"]
    keras.utils.set_random_seed(derive_seed(cfg["seed"], TRAIN_STREAM))
    data = read_images(inputs)
    images = transform(data.pop("images"), tcfg["transform"])
    labels = data["labels"].astype(np.float32)
    weights = balanced_weights(labels, data["weights"].astype(np.float64))
    split = dataset_split(cfg, len(labels))
    tr, va = split["train"], split["validation"]
    log.info("training %s on %d events (%d signal), validating on %d; image shape %s",
             tcfg["model"], len(tr), int(labels[tr].sum()), len(va), images.shape[1:])
    model = build_model(tcfg["model"], images.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(tcfg["learning_rate"]),
                  loss="binary_crossentropy",
                  weighted_metrics=["accuracy", keras.metrics.AUC(name="auc")])
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg["patience"],
                                               restore_best_weights=True),
                 _ProgressLog(tcfg["epochs"])]
    start = time.perf_counter()
    fit = model.fit(images[tr], labels[tr], sample_weight=weights[tr],
                    validation_data=(images[va], labels[va], weights[va]),
                    epochs=tcfg["epochs"], batch_size=tcfg["batch_size"], callbacks=callbacks,
                    verbose=0, shuffle=True)
    history = {k: [float(x) for x in v] for k, v in fit.history.items()}
    history["wall_s"] = [time.perf_counter() - start]
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    with atomic_path(history_path) as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    log.info("saved %s after %d epochs (%.0f s)", model_path, len(history["loss"]),
             history["wall_s"][0])
    return history


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def _class_totals(inputs: Sequence[str | Path]) -> dict[int, float]:
    """Cross section (pb) of all generated events per class, from the HDF5 attributes."""
    import h5py

    out = {0: 0.0, 1: 0.0}
    for path in inputs:
        with h5py.File(path, "r") as f:
            cls = 1 if json.loads(f.attrs["class"]) == "signal" else 0
            out[cls] += float(f.attrs["sigma_pb"])
    return out


def working_point(eps_s: np.ndarray, eps_b: np.ndarray, target_eps_b: float) -> float:
    """Signal efficiency of the ROC curve at background efficiency ``target_eps_b``.

    The ROC is a step function over thresholds; linear interpolation between its points
    (increasing ``eps_b``) is used, taking the largest ``eps_s`` at ties.
    """
    order = np.lexsort((eps_s, eps_b))
    b, s = eps_b[order], eps_s[order]
    ub, last = np.unique(b[::-1], return_index=True)
    return float(np.interp(target_eps_b, ub, s[::-1][last]))


def bootstrap_factor(score: np.ndarray, y: np.ndarray, w: np.ndarray, cut: np.ndarray,
                     n: int, seed: int) -> dict[str, float]:
    """Spread of the factor over ``n`` bootstrap replicas of the test events.

    Each replica resamples the test events with replacement (all of them, both classes) and
    recomputes the cut-based efficiencies, the CNN ROC and the working point; the model and
    the threshold definition stay fixed. Returns the standard deviation and the 16/50/84 %
    quantiles of the factor, the relative spread of the cut-based background efficiency and
    the fraction of replicas with a factor of at least 1.5.
    """
    from .evaluate import FastROC

    rng = np.random.default_rng(seed)
    roc = FastROC(score, y)
    sig, bkg = y == 1, y == 0
    factors, cut_bs = [], []
    for _ in range(n):
        k = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        wk = w * k
        ws, wb = wk[sig].sum(), wk[bkg].sum()
        if ws <= 0 or wb <= 0:
            continue
        cs, cb = wk[sig & cut].sum() / ws, wk[bkg & cut].sum() / wb
        if cs <= 0:
            continue
        factors.append(working_point(*roc.curve(wk), cb) / cs)
        cut_bs.append(cb)
    f, cb = np.asarray(factors), np.asarray(cut_bs)
    q16, q50, q84 = np.percentile(f, [16, 50, 84])
    return {"n": len(f), "factor_std": float(f.std(ddof=1)), "factor_q16": float(q16),
            "factor_median": float(q50), "factor_q84": float(q84),
            "cut_bkg_eff_rel_std": float(cb.std(ddof=1) / cb.mean()) if cb.mean() > 0 else float("nan"),
            "fraction_factor_ge_1p5": float((f >= 1.5).mean())}


def evaluate_events(cfg: Mapping[str, Any], inputs: Sequence[str | Path], model_path: str | Path,
                    metrics_path: str | Path, scores_path: str | Path) -> dict[str, Any]:
    """Score the test split; compare the CNN with the cut-based selection; write metrics.

    Efficiencies are weighted. ``*_presel`` efficiencies are relative to the stored
    (preselected) events; the others are absolute: times the preselection efficiency
    (stored weight / generated cross section of the class, from all stored events). The CNN
    selection is "preselection and score > c", so its working point at the cut-based
    background efficiency compares like with like.

    Returns
    -------
    dict
        ``auc``, ``cut_sig_eff``, ``cut_bkg_eff``, ``cnn_sig_eff_at_cut_bkg_eff``, ``factor``
        and details (per-class counts, preselection efficiencies, single-variable AUCs).
    """
    import keras

    from .evaluate import auc, roc_curve

    tcfg = cfg["events"]["train"]
    data = read_images(inputs, columns=list(EVENT_VARIABLES))
    labels = data["labels"].astype(int)
    weights = data["weights"].astype(np.float64)
    te = dataset_split(cfg, len(labels))["test"]
    totals = _class_totals(inputs)
    presel_eff = {c: float(weights[labels == c].sum() / totals[c]) if totals[c] > 0 else 1.0
                  for c in (0, 1)}
    model = keras.saving.load_model(model_path, safe_mode=True)
    start = time.perf_counter()
    score = model.predict(transform(data["images"][te], tcfg["transform"]),
                          batch_size=256, verbose=0).ravel()
    log.info("scored %d test events in %.0f s", len(te), time.perf_counter() - start)
    y, w = labels[te], weights[te]
    sig, bkg = y == 1, y == 0
    if not sig.any() or not bkg.any():
        raise InputError("the test split needs events of both classes")
    cut = data["cut_pass"][te].astype(bool)
    cut_s = float(w[sig & cut].sum() / w[sig].sum())
    cut_b = float(w[bkg & cut].sum() / w[bkg].sum())
    eps_s, eps_b = roc_curve(score, y, w)
    cnn_s = working_point(eps_s, eps_b, cut_b)
    curves = {"cnn": (eps_s, eps_b)}
    for name in ("n_fatjets", "mj"):
        curves[name] = roc_curve(data[name][te].astype(np.float64), y, w)
    metrics: dict[str, Any] = {
        "auc": auc(eps_s, eps_b),
        "cut_sig_eff": cut_s * presel_eff[1],
        "cut_bkg_eff": cut_b * presel_eff[0],
        "cnn_sig_eff_at_cut_bkg_eff": cnn_s * presel_eff[1],
        "factor": cnn_s / cut_s if cut_s > 0 else float("nan"),
        "cut_sig_eff_presel": cut_s,
        "cut_bkg_eff_presel": cut_b,
        "cnn_sig_eff_at_cut_bkg_eff_presel": cnn_s,
        "presel_eff": {"signal": presel_eff[1], "background": presel_eff[0]},
        "auc_single_variable": {k: auc(*curves[k]) for k in ("n_fatjets", "mj")},
        "n_test": {"signal": int(sig.sum()), "background": int(bkg.sum()),
                   "background_passing_cuts": int((bkg & cut).sum()),
                   "signal_passing_cuts": int((sig & cut).sum())},
        "background_effective_entries_passing_cuts": float(
            w[bkg & cut].sum() ** 2 / max((w[bkg & cut] ** 2).sum(), 1e-300)),
        "sigma_pb": {"signal": totals[1], "background": totals[0]},
    }
    if cut_s > 0:
        metrics["bootstrap"] = bootstrap_factor(score, y, w, cut, N_BOOTSTRAP,
                                                derive_seed(cfg["seed"], BOOTSTRAP_STREAM))
        metrics["factor_err"] = metrics["bootstrap"]["factor_std"]
    log.info("CNN AUC %.4f; cut-based eps_S %.4g eps_B %.3g; CNN eps_S at that eps_B %.4g "
             "(factor %.2f +- %.2f); %d background test events pass the cuts", metrics["auc"],
             metrics["cut_sig_eff"], metrics["cut_bkg_eff"],
             metrics["cnn_sig_eff_at_cut_bkg_eff"], metrics["factor"],
             metrics.get("factor_err", float("nan")),
             metrics["n_test"]["background_passing_cuts"])
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_path(scores_path) as tmp:
        np.savez(tmp, labels=y, weights=w, score_cnn=score, cut_pass=cut,
                 n_fatjets=data["n_fatjets"][te], mj=data["mj"][te],
                 presel_eff=np.array([presel_eff[0], presel_eff[1]]))
    return metrics


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def plot_events(cfg: Mapping[str, Any], inputs: Sequence[str | Path], scores_path: str | Path,
                outdir: str | Path, n_examples: int = 2) -> list[Path]:
    """All event-study figures (PDF and PNG) in ``outdir``.

    ``roc``: background efficiency against signal efficiency (weighted, relative to the
    preselection) for the CNN and the single-variable cuts, with the cut-based working point;
    ``cnn_vs_n_fatjets`` and ``cnn_vs_mj``: 2D histograms per class and the CNN output in bins;
    ``images_mean`` and ``images_example``: mean and example images per class and channel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    from .evaluate import roc_curve
    from .plots import _save

    hep.style.use("ATLAS")
    outdir = Path(outdir)
    sqrt_s = cfg["events"]["sqrt_s"] / 1000
    d = np.load(scores_path)
    y, w, score = d["labels"], d["weights"], d["score_cnn"]
    written: list[Path] = []

    def label(ax):
        hep.label.exp_label(exp="jetimage", llabel="Simulation",
                            rlabel=rf"$\sqrt{{s}}$ = {sqrt_s:g} TeV", ax=ax)

    fig, ax = plt.subplots(figsize=(8, 7))
    names = {"score_cnn": "CNN (event image)", "n_fatjets": r"$N_{\mathrm{fat\ jet}}$",
             "mj": r"$M_J$"}
    for key, text in names.items():
        es, eb = roc_curve(d[key].astype(np.float64), y, w)
        ok = eb > 0
        ax.plot(es[ok], eb[ok], lw=2, label=text)
    cut = d["cut_pass"]
    cs = w[(y == 1) & cut].sum() / w[y == 1].sum()
    cb = w[(y == 0) & cut].sum() / w[y == 0].sum()
    if cb > 0:
        ax.plot([cs], [cb], "k*", ms=16, label="Cut-based selection")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$ (after preselection)")
    ax.set_ylabel(r"Background efficiency $\varepsilon_B$ (after preselection)")
    ax.legend(loc="lower right")
    label(ax)
    written += _save(fig, outdir / "roc")

    bins_score = np.linspace(0, 1, 21)
    for var, edges, xlabel in (
        ("n_fatjets", np.arange(2.5, 9.5, 1.0), r"$N_{\mathrm{fat\ jet}}$"),
        ("mj", np.linspace(0, 2000, 21), r"$M_J$ [GeV]"),
    ):
        x = d[var].astype(np.float64)
        fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
        for ax, cls, name in zip(axes, (1, 0), ("Signal (RPV gluinos)", "Background (QCD)"),
                                 strict=True):
            m = y == cls
            h, _, _ = np.histogram2d(np.clip(x[m], edges[0], edges[-1] - 1e-9), score[m],
                                     bins=(edges, bins_score), weights=w[m])
            h = h / max(h.sum(), 1e-300)
            mesh = ax.pcolormesh(edges, bins_score, h.T, cmap="viridis",
                                 norm=matplotlib.colors.LogNorm(vmin=max(h[h > 0].min(), 1e-5)
                                                                if (h > 0).any() else 1e-5))
            fig.colorbar(mesh, ax=ax, label="Fraction of weighted events")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("CNN output")
            ax.set_title(name, fontsize=14)
        written += _save(fig, outdir / f"cnn_vs_{var}")
        groups = ([(n, n + 1) for n in (3, 4, 5)] + [(6, 99)] if var == "n_fatjets"
                  else [(0, 600), (600, 800), (800, 1000), (1000, 1e9)])
        fig, axes = plt.subplots(1, 2, figsize=(15, 6.5), sharey=True)
        for ax, cls, name in zip(axes, (1, 0), ("Signal", "Background"), strict=True):
            for lo, hi in groups:
                m = (y == cls) & (x >= lo) & (x < hi)
                if m.sum() == 0:
                    continue
                text = (f"$N$ = {lo}" if hi == lo + 1 else f"$N \\geq$ {lo}") \
                    if var == "n_fatjets" else (f"{lo:g} < $M_J$ < {hi:g} GeV" if hi < 1e8
                                                else f"$M_J$ > {lo:g} GeV")
                hep.histplot(np.histogram(score[m], bins_score, weights=w[m] / w[m].sum()),
                             ax=ax, label=text, lw=2)
            ax.set_yscale("log")
            ax.set_xlabel("CNN output")
            ax.set_ylabel("Normalized (weighted)")
            ax.set_title(name, fontsize=14)
            ax.legend(fontsize=12)
        written += _save(fig, outdir / f"cnn_in_bins_of_{var}")

    # images: mean (weighted) and examples per class, from the first input files
    icfg = cfg["events"]["images"]
    data = read_images(inputs)
    imgs, lab, wt = data["images"], data["labels"], data["weights"].astype(np.float64)
    ch = icfg["channels"]
    extent = (-np.pi, np.pi, -icfg["eta_max"], icfg["eta_max"])
    for kind in ("mean", "example"):
        rows = [(1, "Signal")] + [(0, "Background")]
        ncol = len(ch) * (1 if kind == "mean" else n_examples)
        fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol, 8), squeeze=False)
        for r, (cls, name) in enumerate(rows):
            m = np.flatnonzero(lab == cls)
            if kind == "mean":
                pics = [np.average(imgs[m], axis=0, weights=wt[m]) if len(m) else
                        np.zeros(imgs.shape[1:])]
            else:
                pics = [imgs[i] for i in m[:n_examples]]
            for k, pic in enumerate(pics):
                for c, chname in enumerate(ch):
                    ax = axes[r, k * len(ch) + c]
                    z = pic[..., c]
                    vmin = max(z[z > 0].min(), 1e-3) if (z > 0).any() else 1e-3
                    ax.imshow(np.where(z > 0, z, np.nan), origin="lower", extent=extent,
                              aspect="auto", cmap="viridis",
                              norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=max(z.max(), vmin * 10)))
                    ax.set_title(f"{name}: {chname}", fontsize=12)
                    ax.set_xlabel(r"$\phi$")
                    ax.set_ylabel(r"$\eta$")
        fig.tight_layout()
        written += _save(fig, outdir / f"images_{kind}")
    return written
