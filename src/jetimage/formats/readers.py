"""Readers of users' ROOT trees, by *layout*, configured by the sample alone.

A sample read from disk has a ``preset`` that names its layout:

``jetimage``
    One entry per jet: jet scalars (optional) and jagged constituents ``constituent_<field>``.
``nested``
    One entry per event holding jets, each with its constituents: jet fields one level deep
    (``jet_pt[jet]``) and constituent fields two (``constituent_pt[jet][constituent]``, a
    ``vector<vector<float>>`` or nested members). One row per jet; no reclustering.
``particles``
    One entry per event holding particle collections (``constituents_from``), under any
    naming: flat ``GenPart_pt``, dotted ``GenPart.pt`` or class members ``GenPart/GenPart.pt``.
    jetimage clusters, trims and measures the jets, or keeps the whole event.
``delphes``
    ``particles`` with Delphes's names and conventions (see :func:`delphes_constants`).

Every field is found by :func:`resolve`: an explicit ``branches`` entry first (any branch path
uproot accepts, e.g. ``data./data.fJetPt``), else the naming patterns above with the usual
spellings of the field (``pt``/``PT``, ``mass``/``M``, ``pdgId``/``PID``...). Only
constituents are required of jet layouts: jet pT, eta, phi, mass, energy, tau21 and subjets
that a file lacks are computed from them (:func:`complete_jets`). Every branch is checked for
existence, numeric type and depth (lists per entry) before it is read, and a problem is one
line naming the file, tree and branch with the fix.

Momenta, energies and masses are read in the sample's ``units`` (GeV or MeV) and converted to GeV
on reading (:data:`UNITS`, :func:`read_chunk`); everything after is GeV. Constituents with pT, eta
and phi only are read with the sample's ``constituent_mass`` (GeV; 0 for massless). Energies read
are checked: E >= |p| (:func:`check_energies`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import awkward as ak
import numpy as np

from jetimage.formats.errors import InputError

__all__ = ["PRESETS", "Field", "ReadPlan", "resolve", "read_chunk", "collection_particles",
           "select_particles", "PION_MASS", "UNITS", "check_energies", "median_pt", "PT_MEDIAN_RANGE",
           "is_hadron"]

Preset = Literal["jetimage", "nested", "particles", "delphes"]
PRESETS: tuple[Preset, ...] = ("jetimage", "nested", "particles", "delphes")
#: Layouts with one entry per event holding particles (jetimage builds the jets).
PARTICLE_PRESETS = ("particles", "delphes")
#: Default tree of each preset.
TREES = {"jetimage": "jets", "nested": "events", "particles": "Events", "delphes": "Delphes"}

#: Pion mass (GeV), given to tracks that carry no energy (Delphes).
PION_MASS = 0.13957

#: GeV per unit of the sample's ``units``: momenta, energies and masses are converted on reading.
UNITS = {"GeV": 1.0, "MeV": 1e-3}
#: Fields in energy units (GeV after reading): jet and constituent fields, and the ``<collection>.<f>``
#: particle fields with ``f`` in :data:`PARTICLE_ENERGY_FIELDS`.
ENERGY_FIELDS = ("jet_pt", "jet_m", "jet_e", "subjet1_pt", "subjet2_pt", "constituent_pt",
                 "constituent_e", "constituent_mass")
PARTICLE_ENERGY_FIELDS = ("pt", "e", "mass", "eem", "ehad")
#: Tolerance of the check E >= |p| of read energies: relative, and absolute (GeV).
ENERGY_RTOL, ENERGY_ATOL = 1e-4, 1e-5
#: Plausible median pT (GeV) of the constituents or particles read: real jets' constituents and
#: events' particles have medians of ~0.2-50 GeV (trackers and calorimeters start at ~0.1-0.5 GeV,
#: a multi-TeV jet's median constituent is ~10-50 GeV). A median outside this range is a thousand
#: times off (a MeV file read as GeV gives >= ~200, a GeV file read as MeV <= ~0.05).
PT_MEDIAN_RANGE = (0.02, 200.0)

#: Spellings of a particle field in users' files, tried in this order.
ALIASES: dict[str, tuple[str, ...]] = {
    "pt": ("pt", "PT", "Pt", "pT"),
    "eta": ("eta", "Eta"),
    "phi": ("phi", "Phi"),
    "e": ("e", "E", "energy", "Energy"),
    "mass": ("mass", "m", "M", "Mass"),
    "charge": ("charge", "Charge", "q"),
    "pdgid": ("pdgId", "pdgid", "PID", "pid", "PdgId", "pdgID"),
    "mother": ("genPartIdxMother", "M1", "mother", "mother1", "motherIdx"),
    "status": ("status", "Status"),
}
#: Jet fields of the jet layouts with their default branch names (``constituent_<f>`` one level
#: deeper than ``jet_*``).
JET_FIELDS = ("event", "label", "weight", "jet_pt", "jet_eta", "jet_phi", "jet_m", "jet_e", "tau21",
              "n_subjets", "subjet1_pt", "subjet1_eta", "subjet1_phi", "subjet2_pt", "subjet2_eta",
              "subjet2_phi")
CONSTITUENT_INPUTS = ("pt", "eta", "phi", "e", "mass", "charge", "pdgid")
#: Per-entry fields of every layout (never lists).
ENTRY_FIELDS = ("event", "weight", "label")

#: Delphes collections: field -> branch (the Delphes names), and the convention's constants.
DELPHES: dict[str, tuple[dict[str, str], dict[str, float]]] = {
    "EFlowTrack": ({"pt": "EFlowTrack.PT", "eta": "EFlowTrack.Eta", "phi": "EFlowTrack.Phi",
                    "charge": "EFlowTrack.Charge", "pdgid": "EFlowTrack.PID"}, {"mass": PION_MASS}),
    "EFlowPhoton": ({"pt": "EFlowPhoton.ET", "eta": "EFlowPhoton.Eta", "phi": "EFlowPhoton.Phi",
                     "e": "EFlowPhoton.E"}, {"pdgid": 22, "charge": 0}),
    "EFlowNeutralHadron": ({"pt": "EFlowNeutralHadron.ET", "eta": "EFlowNeutralHadron.Eta",
                            "phi": "EFlowNeutralHadron.Phi", "e": "EFlowNeutralHadron.E"},
                           {"pdgid": 130, "charge": 0}),
    "Tower": ({"pt": "Tower.ET", "eta": "Tower.Eta", "phi": "Tower.Phi", "eem": "Tower.Eem",
               "ehad": "Tower.Ehad"}, {"charge": 0}),
}
DELPHES_DEFAULT = ["EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron"]
DELPHES_WEIGHT = "Event.Weight"


@dataclass(frozen=True)
class Field:
    """Where one logical field is read: a branch path (as uproot accepts it), and the number
    of list levels expected per entry (0: one number per entry)."""

    branch: str
    depth: int


@dataclass
class ReadPlan:
    """Every field a sample's reader reads, and the constants it fills in.

    ``fields`` maps logical names (``jet_pt``, ``constituent_pt``, ``GenPart.pt``, ``weight``)
    to branches; ``constants`` maps ``<collection>.<field>`` to a number given to every particle.
    """

    preset: Preset
    tree: str
    fields: dict[str, Field] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)
    truth: str | None = None
    #: GeV per unit of the file (the sample's ``units``): energy fields are multiplied by it on reading.
    scale: float = 1.0


def candidates(collection: str, name: str) -> list[str]:
    """Branch names tried for field ``name`` of ``collection``, in order."""
    out = []
    for a in ALIASES.get(name, (name,)):
        out += [f"{collection}_{a}", f"{collection}.{a}", f"{collection}/{collection}.{a}"]
    return out


def _find(tree: Any, names: list[str]) -> str | None:
    return next((n for n in names if n in tree), None)


def constituents_from(sample: Mapping[str, Any]) -> list[str]:
    """The particle collections of a per-event sample (Delphes's energy flow by default)."""
    return list(sample.get("constituents_from") or (DELPHES_DEFAULT if sample.get("preset") == "delphes"
                                                   else []))


def resolve(tree: Any, sample: Mapping[str, Any], kind: str = "jets") -> tuple[ReadPlan, list[str]]:
    """The fields of ``sample`` found in ``tree``, and a problem line for each one that is not.

    Problems name the branch (or the branches tried) and the ``branches`` key that fixes it;
    they do not name the file (the caller adds it).
    """
    preset = sample.get("preset", "jetimage")
    plan = ReadPlan(preset, sample.get("tree") or TREES[preset], scale=UNITS[sample.get("units") or "GeV"])
    mass = sample.get("constituent_mass")
    bmap = dict(sample.get("branches") or {})
    problems: list[str] = []
    mapped = _entry_fields(tree, sample, plan, bmap, problems)
    if preset in PARTICLE_PRESETS:
        _particle_fields(tree, sample, plan, bmap, problems, kind, mass)
        mapped |= {k for k in bmap if "." in k}
    else:
        mapped |= _jet_fields(tree, plan, bmap, problems, nested=preset == "nested", mass=mass)
    problems += [f"branches.{k}: not a field of the {preset} preset (jet layouts take "
                 f"{', '.join(JET_FIELDS)} and constituent_<field>; particle layouts take "
                 f"{'|'.join(ENTRY_FIELDS)} and <collection>.<field>)" for k in bmap if k not in mapped]
    problems += _check_types(tree, plan)
    return plan, problems


def _entry_fields(tree: Any, sample: Mapping[str, Any], plan: ReadPlan, bmap: dict[str, str],
                  problems: list[str]) -> set[str]:
    """``event``, ``label`` and ``weight`` of an entry: mapped branches (``weight_branch`` too)."""
    if sample.get("weight_branch"):
        bmap.setdefault("weight", sample["weight_branch"])
    for name in ENTRY_FIELDS:
        if name in bmap:
            if bmap[name] in tree:
                plan.fields[name] = Field(bmap[name], 0)
            else:
                problems.append(f"branches.{name}: no branch {bmap[name]!r}")
    if plan.preset == "delphes" and "weight" not in plan.fields and DELPHES_WEIGHT in tree:
        plan.fields["weight"] = Field(DELPHES_WEIGHT, 1)  # Delphes: one Event object per entry
    return set(ENTRY_FIELDS) & set(bmap)


def _jet_fields(tree: Any, plan: ReadPlan, bmap: dict[str, str], problems: list[str],
                nested: bool, mass: float | None = None) -> set[str]:
    """Jet scalars (optional, computed when absent) and constituents (pt, eta, phi, e or mass; else
    the sample's ``constituent_mass`` for every constituent)."""
    jet_depth = int(nested)
    for name in JET_FIELDS:
        if name in plan.fields or (name in ENTRY_FIELDS and (nested or name in bmap)):
            continue  # per entry: _entry_fields
        branch = bmap.get(name, name)
        if branch in tree:
            plan.fields[name] = Field(branch, 0 if name in ENTRY_FIELDS else jet_depth)
        elif name in bmap:
            problems.append(f"branches.{name}: no branch {branch!r}")
    for f in CONSTITUENT_INPUTS:
        key = f"constituent_{f}"
        branch = bmap.get(key, key)
        if branch in tree:
            plan.fields[key] = Field(branch, jet_depth + 1)
        elif key in bmap:
            problems.append(f"branches.{key}: no branch {branch!r}")
        elif f in ("pt", "eta", "phi"):
            problems.append(f"no branch {branch!r} for the constituents' {f} (map it: "
                            f"branches: {{{key}: <branch>}})")
    if not {"constituent_e", "constituent_mass"} & set(plan.fields) and "constituent_pt" in plan.fields:
        if mass is not None:
            plan.constants["constituent_mass"] = float(mass)
        else:
            problems.append("no constituent energy or mass: map branches.constituent_e or "
                            "branches.constituent_mass, or give every constituent one mass with "
                            "constituent_mass (GeV; 0 for massless)")
    return {k for k in bmap if k in JET_FIELDS or k.startswith("constituent_")}


def _particle_fields(tree: Any, sample: Mapping[str, Any], plan: ReadPlan, bmap: dict[str, str],
                     problems: list[str], kind: str, mass: float | None = None) -> None:
    plan.collections = constituents_from(sample)
    if not plan.collections:
        problems.append("constituents_from: name the particle collections to read (e.g. [GenPart])")
    wanted = set(sample.get("particle_cuts") or {})
    for c in plan.collections:
        _collection(tree, c, ["pt", "eta", "phi", *sorted(wanted)], plan, bmap, problems,
                    delphes=plan.preset == "delphes", mass=mass)
    if sample.get("truth") == "W" and kind == "jets":
        plan.truth = sample.get("truth_from") or ("Particle" if plan.preset == "delphes" else None)
        if plan.truth is None:
            problems.append("truth_from: truth W needs the generator collection (e.g. GenPart)")
        else:
            _collection(tree, plan.truth, ["pdgid", "mother", "eta", "phi"], plan, bmap, problems,
                        delphes=False, optional=())


def _collection(tree: Any, c: str, required: list[str], plan: ReadPlan, bmap: dict[str, str],
                problems: list[str], delphes: bool,
                optional: tuple[str, ...] = ("e", "mass", "charge", "pdgid"),
                mass: float | None = None) -> None:
    """Resolve the fields of collection ``c`` into ``plan`` (Delphes's names and constants first;
    ``mass`` (GeV), the sample's ``constituent_mass``, for a collection with neither energy nor mass)."""
    known, consts = DELPHES.get(c, ({}, {})) if delphes else ({}, {})
    if c == "Tower" and delphes:
        required = [*required, "eem", "ehad"]
    for f in [*dict.fromkeys(required), *optional]:
        key = f"{c}.{f}"
        if f in consts:
            plan.constants[key] = consts[f]
            continue
        # Delphes's own collections follow its convention: no energy or mass looked up
        generic = not (c in DELPHES and delphes and f in ("e", "mass"))
        branch = bmap.get(key) or known.get(f) or (_find(tree, candidates(c, f)) if generic else None)
        if branch is not None and branch in tree:
            plan.fields[key] = Field(branch, 1)
        elif key in bmap:
            problems.append(f"branches.{key}: no branch {bmap[key]!r}")
        elif f in required:
            tried = [bmap[key]] if key in bmap else ([known[f]] if f in known else candidates(c, f)[:3])
            problems.append(f"no branch for {key} (tried {', '.join(tried)}): map it with "
                            f"branches: {{{key}: <branch>}}")
    if "e" in optional and not {f"{c}.e", f"{c}.mass"} & (set(plan.fields) | set(plan.constants)) \
            and not (delphes and c == "Tower"):
        if mass is not None:
            plan.constants[f"{c}.mass"] = float(mass)
        else:
            problems.append(f"no energy or mass for collection {c} (tried {', '.join(candidates(c, 'e')[:3])}"
                            f", {', '.join(candidates(c, 'mass')[:3])}): map branches.{c}.e or {c}.mass, "
                            "or give every particle one mass with constituent_mass (GeV; 0 for massless)")


def _shape(tree: Any, branch: str) -> tuple[int, ak.types.Type]:
    """(list levels per entry, innermost type) of a branch, from its first entry."""
    arr = tree[branch].array(entry_stop=min(1, tree.num_entries), library="ak")
    t, depth = arr.type.content, 0
    while isinstance(t, (ak.types.ListType, ak.types.RegularType, ak.types.OptionType)):
        if t.parameter("__array__") in ("string", "bytestring"):
            break
        depth += not isinstance(t, ak.types.OptionType)
        t = t.content
    return depth, t


def _check_types(tree: Any, plan: ReadPlan) -> list[str]:
    levels = {0: "one number per entry", 1: "a list of numbers per entry",
              2: "a list of lists of numbers per entry"}
    problems = []
    for name, f in plan.fields.items():
        try:
            depth, inner = _shape(tree, f.branch)
        except Exception as err:  # uproot cannot interpret the branch
            problems.append(f"branch {f.branch!r} ({name}) cannot be read ({type(err).__name__})")
            continue
        numeric = isinstance(inner, ak.types.NumpyType) and inner.primitive != "datetime64"
        if not numeric or depth != f.depth:
            found = f"{levels.get(depth, f'{depth} list levels')} of {inner}"
            problems.append(f"branch {f.branch!r} ({name}) must be {levels[f.depth]}, found {found}")
    return problems


def is_energy(name: str) -> bool:
    """Whether the logical field ``name`` is a momentum, an energy or a mass (converted to GeV)."""
    return name in ENERGY_FIELDS or ("." in name and name.split(".", 1)[1] in PARTICLE_ENERGY_FIELDS)


def read_chunk(tree: Any, plan: ReadPlan, start: int, stop: int, path: str) -> dict[str, ak.Array]:
    """Every field of ``plan`` for entries ``[start, stop)``: logical name -> array, momenta,
    energies and masses in GeV (multiplied by ``plan.scale``)."""
    out = {}
    for name, f in plan.fields.items():
        try:
            out[name] = tree[f.branch].array(entry_start=start, entry_stop=stop, library="ak")
        except Exception as err:  # uproot raises many types for damaged baskets
            reason = " ".join(str(err).split())[:200]
            raise InputError(f"{path}: tree {plan.tree!r}: branch {f.branch!r} cannot be read "
                             f"({type(err).__name__}: {reason})") from err
        if plan.scale != 1.0 and is_energy(name):
            out[name] = ak.values_astype(out[name], np.float64) * plan.scale
    return out


def check_energies(e: ak.Array, pt: ak.Array, eta: ak.Array, plan: ReadPlan, key: str, path: str,
                   first: int = 0) -> None:
    """Refuse energies below the momentum: E >= |p| = pT cosh(eta) (so m^2 >= 0) within a relative
    tolerance :data:`ENERGY_RTOL` and :data:`ENERGY_ATOL` GeV (float32 rounding).

    ``e``, ``pt`` and ``eta`` (GeV) hold one list (or list of lists) per entry, the entries
    ``first, first + 1, ...``; ``key`` is the logical name of the energy in ``plan.fields``.

    Raises
    ------
    InputError
        Naming the file, tree, energy branch and the first bad entry (e.g. the energy mapped to pT).
    """
    p = pt * np.cosh(eta)
    bad = e < p * (1 - ENERGY_RTOL) - ENERGY_ATOL
    per_entry = bad
    while per_entry.ndim > 1:
        per_entry = ak.any(per_entry, axis=-1)
    per_entry = ak.to_numpy(ak.fill_none(per_entry, False))
    if not per_entry.any():
        return
    i = int(np.argmax(per_entry))
    flat_bad = ak.to_numpy(ak.flatten(bad[i], axis=None))
    j = int(np.argmax(flat_bad))
    e_ij, p_ij = (float(ak.to_numpy(ak.flatten(x[i], axis=None))[j]) for x in (e, p))
    branch = plan.fields[key].branch if key in plan.fields else key
    raise InputError(f"{path}: tree {plan.tree!r}: branch {branch!r} (the energy) entry {first + i} holds "
                     f"E = {e_ij:.6g} GeV below |p| = {p_ij:.6g} GeV (m^2 < 0; {int(per_entry.sum())} bad "
                     f"entries of {first}-{first + len(per_entry) - 1}): map the energy branch (not pT), "
                     "or map a mass instead, or give the right units")


def median_pt(arrays: Mapping[str, ak.Array], plan: ReadPlan) -> float | None:
    """The median pT (GeV) of the constituents (jet layouts) or particles (``constituents_from``)
    read, those with pT > 0; None when there are none."""
    keys = [f"{c}.pt" for c in plan.collections] if plan.preset in PARTICLE_PRESETS else ["constituent_pt"]
    parts = [ak.to_numpy(ak.flatten(arrays[k], axis=None)).astype(np.float64) for k in keys if k in arrays]
    pt = np.concatenate(parts) if parts else np.zeros(0)
    pt = pt[np.isfinite(pt) & (pt > 0)]
    return float(np.median(pt)) if len(pt) else None


def is_hadron(pdgid: Any) -> Any:
    """Whether each PDG id is a hadron's: a meson or baryon code (3 to 6 digits, excited states too),
    not a diquark (tens digit 0) nor a BSM particle (>= 10^6)."""
    a = abs(pdgid)
    return (a >= 100) & (a < 1_000_000) & ((a // 10) % 10 != 0)


def check_same_counts(arrays: Mapping[str, ak.Array], names: list[str], plan: ReadPlan, path: str) -> None:
    ref = names[0]
    for n in names[1:]:
        if not ak.all(ak.num(arrays[n], axis=-1) == ak.num(arrays[ref], axis=-1)):
            raise InputError(f"{path}: tree {plan.tree!r}: branches {plan.fields[ref].branch!r} and "
                             f"{plan.fields[n].branch!r} hold different numbers of values per entry")


def _values(arrays: Mapping[str, ak.Array], plan: ReadPlan, key: str, like: ak.Array,
            dtype: Any) -> ak.Array:
    if key in arrays:
        return ak.values_astype(arrays[key], dtype)
    return ak.values_astype(ak.zeros_like(like, dtype=np.float64) + plan.constants.get(key, 0), dtype)


def four_momenta(pt, eta, phi, e=None, mass=None) -> dict[str, Any]:
    """``px, py, pz, E`` (GeV) from pt, eta, phi and the energy, or else the mass (0 if neither)."""
    pz = pt * np.sinh(eta)
    if e is None:
        e = np.sqrt((pt * np.cosh(eta)) ** 2 + (0.0 if mass is None else mass) ** 2)
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pz, "E": e}


def select_particles(values: Mapping[str, ak.Array], cuts: Mapping[str, Mapping[str, Any]]) -> ak.Array:
    """Mask of the particles passing ``cuts``: field -> ``{min, max, in, not_in, abs}``
    (``min <= x < max``; ``abs`` applies them to ``|x|``)."""
    keep = ak.ones_like(values["pt"], dtype=bool)
    for name, cut in cuts.items():
        x = abs(values[name]) if cut.get("abs") else values[name]
        if "min" in cut:
            keep = keep & (x >= cut["min"])
        if "max" in cut:
            keep = keep & (x < cut["max"])
        if "in" in cut:
            keep = keep & _isin(x, cut["in"])
        if "not_in" in cut:
            keep = keep & ~_isin(x, cut["not_in"])
    return keep


def _isin(x: ak.Array, values: list[float]) -> ak.Array:
    flat = np.isin(ak.to_numpy(ak.flatten(x, axis=None)), values)
    return ak.unflatten(flat, ak.num(x, axis=1)) if x.ndim > 1 else ak.Array(flat)


def collection_particles(arrays: Mapping[str, ak.Array], plan: ReadPlan, c: str,
                         cuts: Mapping[str, Mapping[str, Any]], eta_max: float, path: str,
                         first: int = 0) -> ak.Array:
    """The particles of collection ``c``: ``(n_events, var)`` records ``px, py, pz, E, charge, pdgid``.

    Particles with pT <= 0 (empty slots, beam particles) or |eta| >= ``eta_max`` are dropped,
    then the ``cuts`` (``particle_cuts``) are applied. Without an energy branch the energy is
    computed from the mass (a constant for Delphes tracks: the pion mass; the sample's
    ``constituent_mass`` for a collection with neither). A read energy of a selected particle is
    checked (:func:`check_energies`; ``first`` is the chunk's first entry).
    """
    keys = [k for k in plan.fields if k.startswith(f"{c}.")]
    check_same_counts(arrays, keys, plan, path)
    pt = ak.values_astype(arrays[f"{c}.pt"], np.float64)
    vals = {k.split(".", 1)[1]: _values(arrays, plan, k, pt, np.float64)
            for k in [*keys, *(k for k in plan.constants if k.startswith(f"{c}."))]}
    keep = (vals["pt"] > 0) & (abs(vals["eta"]) < eta_max) & select_particles(vals, cuts)
    vals = {k: v[keep] for k, v in vals.items()}
    if f"{c}.e" in arrays:
        check_energies(vals["e"], vals["pt"], vals["eta"], plan, f"{c}.e", path, first)
    p4 = four_momenta(vals["pt"], vals["eta"], vals["phi"], vals.get("e"), vals.get("mass"))
    return ak.zip({**p4, "charge": ak.values_astype(vals.get("charge", 0 * vals["pt"]), np.int32),
                   "pdgid": ak.values_astype(vals.get("pdgid", 0 * vals["pt"]), np.int32)})


def tower_deposits(arrays: Mapping[str, ak.Array], eta_max: float) -> list[ak.Array]:
    """Each Delphes tower as an EM deposit (a photon, 22) and a hadronic one (a K_L, 130),
    massless at its (eta, phi)."""
    good = (arrays["Tower.pt"] > 0) & (abs(arrays["Tower.eta"]) < eta_max)
    eta, phi = (ak.values_astype(arrays[f"Tower.{k}"][good], np.float64) for k in ("eta", "phi"))
    out = []
    for key, pdgid in (("eem", 22), ("ehad", 130)):
        e = ak.values_astype(arrays[f"Tower.{key}"][good], np.float64)
        keep = e > 0
        p4 = four_momenta((e / np.cosh(eta))[keep], eta[keep], phi[keep], e[keep])
        out.append(ak.zip({**p4, "charge": ak.values_astype(0 * e[keep], np.int32),
                           "pdgid": ak.values_astype(0 * e[keep], np.int32) + pdgid}))
    return out


def entry_values(arrays: Mapping[str, ak.Array], name: str, n: int, default: float) -> np.ndarray:
    """A per-entry field (Delphes's one-element ``Event.Weight`` too), or ``default``."""
    if name not in arrays:
        return np.full(n, default, dtype=np.float64)
    x = arrays[name]
    if x.ndim > 1:
        x = ak.fill_none(ak.firsts(x), default)
    return ak.to_numpy(x).astype(np.float64)


def iter_chunks(start: int, stop: int, step: int) -> Iterator[tuple[int, int]]:
    """``[a, b)`` ranges of at most ``step`` entries covering ``[start, stop)``."""
    for a in range(start, stop, step):
        yield a, min(a + step, stop)


