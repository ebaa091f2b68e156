"""Users' files in every layout, read by configuration alone: flat NanoAOD-style and class-member
particle collections, events holding jets holding constituents, per-jet trees without jet
variables; and the one-line errors for what cannot be read."""

from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from jetimage.config import ConfigError, validate
from jetimage.formats.errors import InputError
from jetimage.formats.root import EVENTS, iterate_tree, read_jets
from jetimage.physics.jets import build_jets, particle_records
from jetimage.stages.images import make_sample_images
from jetimage.stages.ingest import check_sample, ingest, plan_chunks

from .conftest import SHARED, tiny_raw_config

DELPHES = SHARED / "data" / "delphes_ttbar_10events.root"
needs_delphes = pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} is absent")
WINDOW = {"pt_min": 100.0, "pt_max": 3000.0, "eta_max": 2.5}
#: final-state visible particles: status 1, no neutrinos
VISIBLE = {"status": {"in": [1]}, "pdgid": {"abs": True, "not_in": [12, 14, 16]}}


def _config(sample: dict, **jets) -> dict:
    raw = tiny_raw_config()
    raw["samples"][1] = {"class": "background", **sample}
    raw["jets"].update(jets)
    return validate(raw)


@pytest.fixture(scope="module")
def particles(generated_events) -> ak.Array:
    """Real Pythia events (visible particles), with junk a reader must select away: a neutrino
    (status 1) and a hard intermediate parton (status 23) in every event."""
    events = ak.concatenate(list(iterate_tree([generated_events["qcd_lo"]], EVENTS)))
    p = events.particles
    n = len(p)
    junk = ak.zip({"pt": np.full((n, 2), 150.0), "eta": np.zeros((n, 2)), "phi": np.ones((n, 2)),
                   "e": np.full((n, 2), 150.0), "charge": np.zeros((n, 2), np.int32),
                   "pdgid": np.tile([14, 21], (n, 1)).astype(np.int32)})
    status = ak.concatenate([ak.ones_like(p.pt, dtype=np.int32), np.tile([1, 23], (n, 1))], axis=1)
    p = ak.concatenate([p, ak.Array(junk)], axis=1)
    return ak.with_field(p, status, "status")


def _mass(p: ak.Array) -> ak.Array:
    return np.sqrt(np.maximum(p.e**2 - (p.pt * np.cosh(p.eta)) ** 2, 0))


def _expected_jets(p: ak.Array, cfg) -> dict:
    """The jets jetimage clusters from the visible particles themselves."""
    keep = p.status == 1
    keep = keep & ~((abs(p.pdgid) == 12) | (abs(p.pdgid) == 14) | (abs(p.pdgid) == 16))
    v = p[keep]
    v = v[abs(v.eta) < cfg["jets"]["particle_eta_max"]]
    p4 = ak.zip({"px": v.pt * np.cos(v.phi), "py": v.pt * np.sin(v.phi), "pz": v.pt * np.sinh(v.eta),
                 "E": np.sqrt((v.pt * np.cosh(v.eta)) ** 2 + _mass(v) ** 2), "charge": v.charge,
                 "pdgid": v.pdgid})
    return build_jets(p4, cfg["jets"])


def _ingest_parts(cfg, name: str, tmp_path) -> list:
    """The sample's files ingested chunk by chunk (after its checks pass): the chunk files."""
    s = cfg.sample(name)
    assert list(check_sample(s, "samples[1]", cfg.kind)) == []
    parts = []
    for i, (f, a, b) in enumerate(plan_chunks(s)):
        parts.append(tmp_path / f"{name}{i}.root")
        ingest(cfg, name, f, a, b, parts[-1])
    return parts


def _ingest_and_image(cfg, name: str, path, tmp_path) -> ak.Array:
    parts = _ingest_parts(cfg, name, tmp_path)
    jets = read_jets(parts)
    out = tmp_path / f"{name}.h5"
    assert make_sample_images(cfg, name, parts, out) == len(jets) > 0
    with h5py.File(out, "r") as f:
        assert f["images"].shape[0] == len(jets) and np.isfinite(f["images"][...]).all()
    return jets


def test_flat_nanoaod_collection_is_clustered_like_generated_particles(particles, tmp_path):
    path = tmp_path / "nano.root"
    with uproot.recreate(path) as f:
        record = ak.types.RecordType([ak.types.NumpyType(t) for t in ("float64",) * 4 + ("int32",) * 2],
                                     ["pt", "eta", "phi", "mass", "pdgId", "status"])
        f.mktree("Events", {"GenPart": ak.types.ListType(record), "genWeight": "float64"},
                 counter_name=lambda _: "nGenPart")
        f["Events"].extend({"GenPart": ak.zip({
            "pt": particles.pt, "eta": particles.eta, "phi": particles.phi, "mass": _mass(particles),
            "pdgId": particles.pdgid, "status": particles.status}),
            "genWeight": np.full(len(particles), 2.5)})
    assert "GenPart_pt" in uproot.open(path)["Events"]  # the NanoAOD naming
    sample = {"name": "nano", "files": [str(path)], "preset": "particles", "constituents_from": ["GenPart"],
              "particle_cuts": VISIBLE, "weight_branch": "genWeight", "chunk_entries": 70}
    cfg = _config(sample, **WINDOW)
    jets = _ingest_and_image(cfg, "nano", path, tmp_path)
    expected = _expected_jets(particles, cfg)
    assert len(jets) == len(expected["jet_pt"]) > 0
    np.testing.assert_allclose(ak.to_numpy(jets.jet_pt), expected["jet_pt"], rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_m), expected["jet_m"], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(ak.to_numpy(jets.event), expected["event"])
    assert np.all(ak.to_numpy(jets.weight) == 2.5)
    # without the selection the neutrinos and partons are clustered: the jets change
    cfg = _config({**sample, "particle_cuts": {}}, **WINDOW)
    ingest(cfg, "nano", str(path), 0, len(particles), tmp_path / "uncut.root")
    assert len(read_jets([tmp_path / "uncut.root"])) != len(jets) or not np.allclose(
        ak.to_numpy(read_jets([tmp_path / "uncut.root"]).jet_pt), ak.to_numpy(jets.jet_pt))


def test_dotted_names_and_a_branch_override(particles, tmp_path):
    """``Coll.pt`` naming (as split class members are named), energy instead of mass, and one field
    under a name no pattern finds, mapped with ``branches``."""
    path = tmp_path / "dotted.root"
    data = {"GenParticle.PT": particles.pt, "GenParticle.Eta": particles.eta,
            "GenParticle.Phi": particles.phi, "GenParticle.E": particles.e,
            "GenParticle.PID": particles.pdgid, "GenParticle.st": particles.status}
    with uproot.recreate(path) as f:
        f.mktree("tree", {k: v.type.content for k, v in data.items()},
                 counter_name=lambda name: f"n_{name.replace('.', '_')}")
        f["tree"].extend(data)
    sample = {"name": "dotted", "files": [str(path)], "tree": "tree", "preset": "particles",
              "constituents_from": ["GenParticle"], "particle_cuts": VISIBLE}
    cfg = _config(sample, **WINDOW)
    problems = list(check_sample(cfg.sample("dotted"), "samples[1]"))
    assert len(problems) == 1 and "no branch for GenParticle.status" in problems[0]
    assert "branches: {GenParticle.status: <branch>}" in problems[0] and "dotted.root" in problems[0]
    cfg = _config({**sample, "branches": {"GenParticle.status": "GenParticle.st"}}, **WINDOW)
    jets = _ingest_and_image(cfg, "dotted", path, tmp_path)
    expected = _expected_jets(particles, cfg)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_pt), expected["jet_pt"], rtol=1e-5)


@needs_delphes
def test_class_member_collection_of_a_real_delphes_file(tmp_path):
    """``Particle/Particle.PT`` of a real Delphes file read by the general reader, one field by
    its full path as uproot lists it."""
    sample = {"name": "gen", "files": [str(DELPHES)], "tree": "Delphes", "preset": "particles",
              "constituents_from": ["Particle"], "particle_cuts": VISIBLE,
              "branches": {"Particle.pt": "Particle/Particle.PT"}}
    cfg = _config(sample, **WINDOW)
    jets = _ingest_and_image(cfg, "gen", DELPHES, tmp_path)
    t = uproot.open(DELPHES)["Delphes"]
    a = t.arrays(["Particle.PT", "Particle.Eta", "Particle.Status", "Particle.PID"])
    pid = abs(a["Particle.PID"])
    visible = (a["Particle.Status"] == 1) & (pid != 12) & (pid != 14) & (pid != 16) \
        & (abs(a["Particle.Eta"]) < 5)
    # every constituent is a visible generator particle of its event
    for event, cons in zip(ak.to_numpy(jets.event), ak.to_list(jets.constituents.pt), strict=True):
        pool = ak.to_numpy(a["Particle.PT"][event][visible[event]]).astype(np.float64)
        assert all(np.isclose(pool, c, rtol=1e-6).any() for c in cons)


def test_nested_jets_one_image_per_jet_without_reclustering(generated, tmp_path):
    """Events holding jets holding constituents (``vector<vector<float>>``-like; written as an
    RNTuple, which uproot writes with any nesting): one row per jet in the window."""
    source = read_jets([generated["qcd"]])
    counts = np.array([1, 2, 0, 3] * len(source))[: len(source)]
    counts = counts[: np.searchsorted(np.cumsum(counts), len(source)) + 1]
    counts[-1] -= counts.sum() - len(source)
    c = source.constituents
    nested = {"constituent_pt": ak.unflatten(c.pt, counts), "constituent_eta": ak.unflatten(c.eta, counts),
              "constituent_phi": ak.unflatten(c.phi, counts), "constituent_e": ak.unflatten(c.e, counts),
              "jet_pt": ak.unflatten(source.jet_pt, counts)}
    path = tmp_path / "nested.root"
    with uproot.recreate(path) as f:
        f["events"] = nested
    sample = {"name": "nested", "files": [str(path)], "preset": "nested", "chunk_entries": 25}
    cfg = _config(sample, pt_min=260.0)  # a narrower window than the file's
    jets = _ingest_and_image(cfg, "nested", path, tmp_path)
    keep = ak.to_numpy(source.jet_pt) >= 260.0
    assert 0 < len(jets) == keep.sum() < len(source)
    np.testing.assert_array_equal(ak.to_numpy(jets.jet_pt), ak.to_numpy(source.jet_pt)[keep])
    np.testing.assert_allclose(ak.to_numpy(jets.jet_m), ak.to_numpy(source.jet_m)[keep], rtol=1e-6)
    entry_of_jet = np.repeat(np.arange(len(counts)), counts)
    np.testing.assert_array_equal(ak.to_numpy(jets.event), entry_of_jet[keep])


def test_per_jet_tree_without_jet_variables(generated, tmp_path):
    """Only constituents: jet pT, eta, phi, mass, energy, tau21 and subjets are computed, and
    the study's window applies (jets of the file below it are dropped)."""
    source = read_jets([generated["qcd"]])
    source = source[np.argsort(ak.to_numpy(source.jet_pt))]
    n_below = int((ak.to_numpy(source.jet_pt) < 260.0).sum())
    path = tmp_path / "constituents.root"
    c = source.constituents
    with uproot.recreate(path) as f:
        f.mktree("data", {"c": ak.types.ListType(ak.types.RecordType(
            [ak.types.NumpyType("float64")] * 4, ["pt", "eta", "phi", "m"]))}, counter_name=lambda _: "nc")
        f["data"].extend({"c": ak.zip({"pt": c.pt, "eta": c.eta, "phi": c.phi, "m": _mass(c)})})
    branches = {"constituent_pt": "c_pt", "constituent_eta": "c_eta", "constituent_phi": "c_phi",
                "constituent_mass": "c_m"}
    # the first chunk holds only jets below the window: an empty part, which images skip
    sample = {"name": "cons", "files": [str(path)], "tree": "data", "branches": branches,
              "chunk_entries": n_below}
    cfg = _config(sample, pt_min=260.0)
    jets = _ingest_and_image(cfg, "cons", path, tmp_path)
    keep = ak.to_numpy(source.jet_pt) >= 260.0
    assert 0 < len(jets) == keep.sum() < len(source)
    for name in ("jet_pt", "jet_eta", "jet_phi", "jet_e"):
        np.testing.assert_allclose(ak.to_numpy(jets[name]), ak.to_numpy(source[name])[keep], rtol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_m), ak.to_numpy(source.jet_m)[keep], rtol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(jets.tau21), ak.to_numpy(source.tau21)[keep], rtol=1e-3)
    same = ak.to_numpy(jets.n_subjets) == ak.to_numpy(source.n_subjets)[keep]
    assert same.mean() > 0.95
    np.testing.assert_allclose(ak.to_numpy(jets.subjet1_pt)[same],
                               ak.to_numpy(source.subjet1_pt)[keep][same], rtol=1e-3)


def test_layout_mistakes_are_one_line_naming_file_tree_and_branch(particles, tmp_path):
    path = tmp_path / "nano.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"GenPart_pt": "var * float64", "GenPart_eta": "var * float64",
                            "GenPart_phi": "var * float64", "GenPart_e": "var * float64"},
                 counter_name=lambda _: "nGenPart")
        f["Events"].extend({"GenPart_pt": particles.pt, "GenPart_eta": particles.eta,
                            "GenPart_phi": particles.phi, "GenPart_e": particles.e})

    def problems(sample: dict) -> list[str]:
        return list(check_sample({"files": [str(path)], "tree": "Events", **sample}, "samples[1]"))

    # per-event particles mapped as the constituents of a per-jet tree: the jet field is a list
    got = problems({"branches": {"jet_pt": "GenPart_pt", "constituent_pt": "GenPart_pt",
                                 "constituent_eta": "GenPart_eta", "constituent_phi": "GenPart_phi",
                                 "constituent_e": "GenPart_e"}})
    assert got == [f"samples[1]: {path}: tree 'Events': branch 'GenPart_pt' (jet_pt) must be one "
                   f"number per entry, found a list of numbers per entry of float64"]
    # a jet field given to a particle layout is refused, not ignored
    got = problems({"preset": "particles", "constituents_from": ["GenPart"], "branches": {"jet_m": "x"}})
    assert len(got) == 1 and got[0].startswith("samples[1].branches.jet_m: ") and "particle layouts" in got[0]
    # a particle layout without a collection, and a field that resolves to nothing
    got = problems({"preset": "particles"})
    assert got[0].startswith("samples[1].constituents_from: ") and "name the particle collections" in got[0]
    got = problems({"preset": "particles", "constituents_from": ["GenPart"],
                    "particle_cuts": {"status": {"in": [1]}}})
    assert len(got) == 1 and "no branch for GenPart.status (tried GenPart_status, GenPart.status" in got[0]
    # the per-jet layout needs constituents, and an energy or a mass
    got = problems({"branches": {"constituent_pt": "GenPart_pt", "constituent_eta": "GenPart_eta",
                                 "constituent_phi": "GenPart_phi"}})
    assert len(got) == 1 and "no constituent energy or mass" in got[0]
    # the job itself refuses what the start-up check refuses, as one line
    cfg = _config({"name": "bad", "files": [str(path)], "tree": "Events",
                   "branches": {"jet_pt": "GenPart_pt"}})
    with pytest.raises(InputError, match=r"^samples\[1\]: .*nano.root: tree 'Events': branch 'GenPart_pt'"):
        ingest(cfg, "bad", str(path), 0, 10, tmp_path / "out.root")
    assert not (tmp_path / "out.root").exists()
    # particle settings on a jet layout are a configuration error naming the key
    with pytest.raises(ConfigError, match=r"samples\[1\]\.constituents_from: the jetimage preset"):
        _config({"name": "x", "files": [str(path)], "constituents_from": ["GenPart"]})


def test_particle_layout_with_unequal_collection_lengths_is_named(particles, tmp_path):
    path = tmp_path / "odd.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"P_pt": "var * float64", "P_eta": "var * float64", "P_phi": "var * float64",
                            "P_e": "var * float64"}, counter_name=lambda name: f"n{name}")
        f["Events"].extend({"P_pt": particles.pt, "P_eta": particles.eta, "P_phi": particles.phi,
                            "P_e": particles.e[:, 1:]})
    cfg = _config({"name": "odd", "files": [str(path)], "preset": "particles", "constituents_from": ["P"]},
                  **WINDOW)
    with pytest.raises(InputError, match=r"odd.root: tree 'Events': branches 'P_pt' and 'P_e' hold "
                                         r"different numbers"):
        ingest(cfg, "odd", str(path), 0, len(particles), tmp_path / "out.root")


def test_particle_records_round_trip():
    """The stored constituent records are those of the particles given (a guard for the tests
    above, which compare jets built from read and from stored particles)."""
    p = ak.Array([[{"px": 3.0, "py": 4.0, "pz": 0.0, "E": 5.0, "charge": 1, "pdgid": 211}]])
    r = particle_records(p)
    assert r.pt.tolist() == [[5.0]] and r.eta.tolist() == [[0.0]]


def test_vector_of_vectors_written_by_root(tmp_path):
    """The nested layout as ROOT writes it (``std::vector<std::vector<float>>`` constituents, a
    ``std::vector<float>`` jet field, an event-number branch): tests/data/nested_vecvec.root,
    written by ROOT itself (tests/data/make_nested.py)."""
    path = Path(__file__).parent / "data" / "nested_vecvec.root"
    branches = {f"constituent_{k}": f"jet_constituent_{k}" for k in ("pt", "eta", "phi", "e")}
    sample = {"name": "vv", "files": [str(path)], "preset": "nested", "chunk_entries": 15,
              "branches": {**branches, "jet_eta": "jet_eta", "event": "event_number"}}
    cfg = _config(sample, pt_min=60.0, pt_max=3000.0, eta_max=1.5)
    jets = _ingest_and_image(cfg, "vv", path, tmp_path)
    t = uproot.open(path)["events"]
    c = {k: t[f"jet_constituent_{k}"].array() for k in ("pt", "eta", "phi")}
    px, py = ak.sum(c["pt"] * np.cos(c["phi"]), axis=2), ak.sum(c["pt"] * np.sin(c["phi"]), axis=2)
    pt, eta = np.hypot(px, py), t["jet_eta"].array()
    keep = (pt >= 60) & (pt < 3000) & (abs(eta) < 1.5)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_pt), ak.to_numpy(ak.flatten(pt[keep])), rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_eta), ak.to_numpy(ak.flatten(eta[keep])), rtol=1e-6)
    numbers = ak.broadcast_arrays(t["event_number"].array(), pt)[0]
    np.testing.assert_array_equal(ak.to_numpy(jets.event), ak.to_numpy(ak.flatten(numbers[keep])))
    assert len(jets) > 5


# -- your own files: massless and fixed-mass constituents, MeV files, bad energies, pruned records --

def _sprays(n_events: int = 12, per_jet: int = 40, seed: int = 5) -> ak.Array:
    """Events of two back-to-back sprays of ``per_jet`` particles (about 300 GeV each, spread 0.1 in
    eta and phi): pt, eta, phi (GeV) and pdgid (pions, photons, K_L, protons)."""
    rng = np.random.default_rng(seed)
    n = 2 * n_events * per_jet
    eta0 = np.repeat(rng.uniform(-1, 1, 2 * n_events), per_jet)
    phi0 = np.repeat(rng.uniform(-np.pi, np.pi, n_events)[:, None] + [0, np.pi], per_jet).ravel()
    pt = 300 * rng.dirichlet(np.ones(per_jet), 2 * n_events).ravel() + 0.5
    phi = np.mod(phi0 + rng.normal(0, 0.1, n) + np.pi, 2 * np.pi) - np.pi
    counts = np.full(n_events, 2 * per_jet)
    return ak.unflatten(ak.zip({"pt": pt, "eta": eta0 + rng.normal(0, 0.1, n), "phi": phi,
                                "pdgid": rng.choice([211, -211, 22, 22, 130, 2212], n).astype(np.int32)}),
                        counts)


def _write_particles(path, p: ak.Array, e: ak.Array | None = None, scale: float = 1.0) -> None:
    """A particles-layout file (tree Events, collection P): pT, eta, phi, pdgid, the energy if given,
    momenta multiplied by ``scale`` (1000: MeV)."""
    data = {"P_pt": p.pt * scale, "P_eta": p.eta, "P_phi": p.phi, "P_pdgId": p.pdgid}
    if e is not None:
        data["P_e"] = e * scale
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: v.type.content for k, v in data.items()}, counter_name=lambda _: "nP")
        f["Events"].extend(data)


def _write_jets(path, c: ak.Array, e: ak.Array | None = None, scale: float = 1.0) -> None:
    """A jetimage-layout file (tree jets): one jet per entry, constituents ``constituent_pt/eta/phi``
    (and ``constituent_e`` if given), momenta multiplied by ``scale``."""
    fields = {"pt": c.pt * scale, "eta": c.eta, "phi": c.phi, **({"e": e * scale} if e is not None else {})}
    record = ak.types.RecordType([ak.types.NumpyType("float64")] * len(fields), list(fields))
    with uproot.recreate(path) as f:
        f.mktree("jets", {"constituent": ak.types.ListType(record)}, counter_name=lambda _: "n_constituent")
        f["jets"].extend({"constituent": ak.zip(fields)})


def _ingest_jets(cfg, name: str, tmp_path) -> ak.Array:
    return read_jets(_ingest_parts(cfg, name, tmp_path))


def _p4(pt, eta, phi, mass) -> dict:
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
            "E": np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)}


def _invariant_mass(c: ak.Array, mass: float) -> np.ndarray:
    """Hand-computed jet mass: the constituents' (pt, eta, phi) with one ``mass`` each, summed."""
    s = {k: ak.to_numpy(ak.sum(v, axis=-1)) for k, v in _p4(c.pt, c.eta, c.phi, mass).items()}
    return np.sqrt(np.maximum(s["E"] ** 2 - s["px"] ** 2 - s["py"] ** 2 - s["pz"] ** 2, 0))


@pytest.mark.parametrize("mass", [0.0, 0.13957])
def test_pt_eta_phi_only_constituents_with_a_fixed_mass(mass, tmp_path):
    """Constituents with pT, eta and phi only (no energy, no mass branch) are read with the sample's
    constituent_mass, in the particles, jetimage and nested layouts; without it they are refused
    with a fix naming the option."""
    p = _sprays()
    path = tmp_path / "ptetaphi.root"
    _write_particles(path, p)
    sample = {"name": "bare", "files": [str(path)], "preset": "particles", "constituents_from": ["P"]}
    got = list(check_sample(sample, "samples[1]"))
    assert len(got) == 1 and "no energy or mass for collection P" in got[0] and "constituent_mass" in got[0]
    cfg = _config({**sample, "constituent_mass": mass}, **WINDOW)
    jets = _ingest_jets(cfg, "bare", tmp_path)
    # clustered exactly as particles given their four-momenta by hand
    expected = build_jets(ak.zip({**_p4(p.pt, p.eta, p.phi, mass), "charge": 0 * p.pdgid,
                                  "pdgid": p.pdgid}), cfg["jets"])
    assert len(jets) == len(expected["jet_pt"]) > 10
    np.testing.assert_allclose(ak.to_numpy(jets.jet_m), expected["jet_m"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_m), _invariant_mass(jets.constituents, mass),
                               rtol=1e-5, atol=1e-4)
    # the same constituents, one jet per entry (jetimage layout)
    c = jets.constituents
    _write_jets(tmp_path / "perjet.root", c)
    sample = {"name": "perjet", "files": [str(tmp_path / "perjet.root")]}
    assert any("constituent_mass (GeV; 0 for massless)" in x for x in check_sample(sample, "samples[1]"))
    cfg = _config({**sample, "constituent_mass": mass}, **WINDOW)
    again = _ingest_jets(cfg, "perjet", tmp_path)
    np.testing.assert_allclose(ak.to_numpy(again.jet_m), _invariant_mass(c, mass), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ak.to_numpy(again.jet_pt), ak.to_numpy(jets.jet_pt), rtol=1e-6)
    # nested: a vector<vector<float>> TTree written by ROOT (uproot writes no list of lists in a TTree)
    vv = Path(__file__).parent / "data" / "nested_vecvec.root"
    branches = {f"constituent_{k}": f"jet_constituent_{k}" for k in ("pt", "eta", "phi")}
    cfg = _config({"name": "vv", "files": [str(vv)], "preset": "nested", "branches": branches,
                   "constituent_mass": mass}, pt_min=60.0, pt_max=3000.0, eta_max=2.5)
    nested = _ingest_jets(cfg, "vv", tmp_path)
    t = uproot.open(vv)["events"]
    cons = ak.zip({k: ak.values_astype(t[f"jet_constituent_{k}"].array(), np.float64)
                   for k in ("pt", "eta", "phi")})
    m = ak.unflatten(_invariant_mass(ak.flatten(cons, axis=1), mass), ak.num(cons, axis=1))
    s = {k: ak.sum(v, axis=-1) for k, v in _p4(cons.pt, cons.eta, cons.phi, mass).items()}
    pt = np.hypot(s["px"], s["py"])
    keep = (pt >= 60) & (pt < 3000) & (abs(np.arcsinh(s["pz"] / pt)) < 2.5)
    assert len(nested) > 5
    np.testing.assert_allclose(ak.to_numpy(nested.jet_m), ak.to_numpy(ak.flatten(m[keep])), rtol=1e-4,
                               atol=1e-3)


def test_a_mev_file_gives_the_jets_of_its_gev_twin(tmp_path, caplog):
    """units: MeV converts momenta, energies and masses to GeV on reading (particles and jetimage
    layouts); momenta a thousand times off for the units given are one warning naming sample and file."""
    p = _sprays()
    e = np.sqrt((p.pt * np.cosh(p.eta)) ** 2 + 0.13957**2)
    _write_particles(tmp_path / "gev.root", p, e)
    _write_particles(tmp_path / "mev.root", p, e, scale=1000.0)
    twins = []
    with caplog.at_level(logging.INFO, logger="jetimage.stages.ingest"):
        for name, units in (("gev", "GeV"), ("mev", "MeV")):
            cfg = _config({"name": name, "files": [str(tmp_path / f"{name}.root")], "preset": "particles",
                           "constituents_from": ["P"], "units": units}, **WINDOW)
            twins.append(_ingest_jets(cfg, name, tmp_path))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    gev, mev = twins
    assert len(gev) == len(mev) > 10
    for name in ("jet_pt", "jet_m", "jet_e", "tau21", "subjet1_pt"):
        np.testing.assert_allclose(ak.to_numpy(mev[name]), ak.to_numpy(gev[name]), rtol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(mev.constituents.e)),
                               ak.to_numpy(ak.flatten(gev.constituents.e)), rtol=1e-9)
    # one jet per entry: the GeV jets' constituents, and their MeV twin
    c = gev.constituents
    _write_jets(tmp_path / "jets_gev.root", c, c.e)
    _write_jets(tmp_path / "jets_mev.root", c, c.e, scale=1000.0)
    per_jet = []
    for name, units in (("jets_gev", "GeV"), ("jets_mev", "MeV")):
        cfg = _config({"name": name, "files": [str(tmp_path / f"{name}.root")], "units": units}, **WINDOW)
        per_jet.append(_ingest_jets(cfg, name, tmp_path))
    for name in ("jet_pt", "jet_m", "jet_e"):
        np.testing.assert_allclose(ak.to_numpy(per_jet[1][name]), ak.to_numpy(gev[name]), rtol=1e-6)
        np.testing.assert_allclose(ak.to_numpy(per_jet[0][name]), ak.to_numpy(gev[name]), rtol=1e-6)
    # the MeV file read as GeV: one warning line naming the sample and the file (and no jet in the window)
    caplog.clear()
    cfg = _config({"name": "mev", "files": [str(tmp_path / "mev.root")], "preset": "particles",
                   "constituents_from": ["P"]}, **WINDOW)
    with caplog.at_level(logging.WARNING, logger="jetimage.stages.ingest"):
        ingest(cfg, "mev", str(tmp_path / "mev.root"), 0, 12, tmp_path / "wrong.root")
    warned = [r.getMessage() for r in caplog.records if "thousand times off" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(f"mev: {tmp_path / 'mev.root'}: median constituent pT")
    assert "set units: MeV" in warned[0]


def test_an_energy_below_the_momentum_is_refused_naming_the_branch(tmp_path):
    """E >= |p| (m^2 >= 0) of every energy read: the energy mapped to pT is one line naming the file,
    tree, branch and first bad entry."""
    p = _sprays(n_events=4)
    _write_jets(tmp_path / "jets.root", p[:, :40], p.pt[:, :40] * np.cosh(p.eta[:, :40]))
    branches = {"constituent_pt": "constituent_pt", "constituent_eta": "constituent_eta",
                "constituent_phi": "constituent_phi", "constituent_e": "constituent_pt"}
    cfg = _config({"name": "bad", "files": [str(tmp_path / "jets.root")], "branches": branches}, **WINDOW)
    with pytest.raises(InputError, match=r"jets.root: tree 'jets': branch 'constituent_pt' \(the energy\) "
                                         r"entry 2 holds E = \S+ GeV below \|p\| = "):
        ingest(cfg, "bad", str(tmp_path / "jets.root"), 2, 4, tmp_path / "out.root")
    assert not (tmp_path / "out.root").exists()
    # the right energy passes (float32 rounding within the tolerance)
    ingest(_config({"name": "bad", "files": [str(tmp_path / "jets.root")]}, **WINDOW), "bad",
           str(tmp_path / "jets.root"), 0, 4, tmp_path / "good.root")
    # a particle collection whose energy is its pT, in the particles layout
    _write_particles(tmp_path / "ev.root", p, p.pt)
    cfg = _config({"name": "ev", "files": [str(tmp_path / "ev.root")], "preset": "particles",
                   "constituents_from": ["P"]}, **WINDOW)
    with pytest.raises(InputError, match=r"ev.root: tree 'Events': branch 'P_e' \(the energy\) entry 0 "):
        ingest(cfg, "ev", str(tmp_path / "ev.root"), 0, 4, tmp_path / "out.root")


def test_a_pruned_particle_list_is_one_warning(tmp_path, caplog):
    """Constituents per jet and the hadron fraction are logged per chunk; jets of a few partons (a
    pruned generator record) are one warning line; a final state is not warned."""
    rng = np.random.default_rng(2)
    n = 10
    partons = ak.unflatten(ak.zip({"pt": rng.uniform(100, 200, 3 * n), "eta": rng.normal(0, 0.1, 3 * n),
                                   "phi": rng.normal(0, 0.1, 3 * n),
                                   "pdgid": np.tile([1, -2, 21], n).astype(np.int32)}), np.full(n, 3))
    _write_particles(tmp_path / "pruned.root", partons)
    _write_particles(tmp_path / "final.root", _sprays(n_events=n))
    for name in ("pruned", "final"):
        cfg = _config({"name": name, "files": [str(tmp_path / f"{name}.root")], "preset": "particles",
                       "constituents_from": ["P"], "constituent_mass": 0.0}, **WINDOW)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="jetimage.stages.ingest"):
            assert ingest(cfg, name, str(tmp_path / f"{name}.root"), 0, n, tmp_path / f"{name}_out.root") > 0
        summary = [r.getMessage() for r in caplog.records if "constituents per jet" in r.getMessage()
                   and r.levelno == logging.INFO]
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(summary) == 1 and "hadron fraction" in summary[0]
        if name == "pruned":
            assert len(warned) == 1 and "pruned generator record" in warned[0] and "\n" not in warned[0]
            assert "hadron fraction 0.00" in warned[0] and warned[0].startswith(f"pruned: {tmp_path}")
        else:
            assert warned == [], warned
