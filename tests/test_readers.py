"""Users' files in every layout, read by configuration alone: flat NanoAOD-style and class-member
particle collections, events holding jets holding constituents, per-jet trees without jet
variables; and the one-line errors for what cannot be read."""

from __future__ import annotations

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


def _ingest_and_image(cfg, name: str, path, tmp_path) -> ak.Array:
    s = cfg.sample(name)
    assert list(check_sample(s, "samples[1]", cfg.kind)) == []
    parts = []
    for i, (f, a, b) in enumerate(plan_chunks(s)):
        parts.append(tmp_path / f"{name}{i}.root")
        ingest(cfg, name, f, a, b, parts[-1])
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
