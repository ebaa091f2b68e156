"""Reading users' ROOT files: the Delphes preset, explicit branch maps, chunking and clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from jetimage.config import validate
from jetimage.formats.root import JET_BRANCHES, read_jets
from jetimage.stages.ingest import check_sample, ingest, plan_chunks

from .conftest import REPO, SHARED, tiny_raw_config

DELPHES = SHARED / "data" / "delphes_ttbar_10events.root"
needs_delphes = pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} is absent")


def _config(sample: dict, **jets) -> dict:
    raw = tiny_raw_config()
    raw["samples"][1] = {"class": "background", **sample}
    raw["jets"].update(jets)
    return validate(raw)


@needs_delphes
def test_delphes_preset_clusters_eflow_objects(tmp_path):
    cfg = _config({"name": "ttbar", "files": [str(DELPHES)], "preset": "delphes", "truth": "W"},
                  pt_min=100.0, pt_max=2000.0, eta_max=2.5)
    out = tmp_path / "ttbar.root"
    n = ingest(cfg, "ttbar", str(DELPHES), 0, 10, out)
    jets = read_jets([out])
    assert n == len(jets) > 0
    pt = ak.to_numpy(jets.jet_pt)
    assert np.all((pt >= 100) & (pt < 2000))
    # constituents are the Delphes energy-flow objects, each found in its event
    t = uproot.open(DELPHES)["Delphes"]
    eflow = {k: t[f"{k}.{'PT' if k == 'EFlowTrack' else 'ET'}"].array()
             for k in ("EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron")}
    for event, cons_pt in zip(ak.to_numpy(jets.event), ak.to_list(jets.constituents.pt), strict=True):
        available = np.concatenate([ak.to_numpy(v[event]).astype(np.float64) for v in eflow.values()])
        for value in cons_pt:
            assert np.isclose(available, value, rtol=1e-6).any()
    # the jet four-vector is the sum of its constituents
    c = jets.constituents
    sum_pt = np.hypot(ak.to_numpy(ak.sum(c.pt * np.cos(c.phi), axis=1)),
                      ak.to_numpy(ak.sum(c.pt * np.sin(c.phi), axis=1)))
    np.testing.assert_allclose(sum_pt, pt, rtol=1e-6)
    # tt -> W b: hadronic W bosons are found in the Particle branch and matched to some jets
    labels = ak.to_numpy(jets.label)
    assert set(np.unique(labels)) <= {0, 1}


@needs_delphes
def test_chunks_cover_the_file_and_concatenate_to_the_whole(tmp_path):
    sample = {"name": "ttbar", "files": [str(DELPHES)], "preset": "delphes", "chunk_entries": 3}
    cfg = _config(sample, pt_min=50.0, pt_max=3000.0, eta_max=2.5)
    chunks = plan_chunks(cfg.sample("ttbar"))
    assert [(b, e) for _, b, e in chunks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    parts = []
    for i, (path, b, e) in enumerate(chunks):
        ingest(cfg, "ttbar", path, b, e, tmp_path / f"part{i}.root")
        parts.append(tmp_path / f"part{i}.root")
    ingest(cfg, "ttbar", str(DELPHES), 0, 10, tmp_path / "whole.root")
    a, b = read_jets(parts), read_jets([tmp_path / "whole.root"])
    for name in ("event", "jet_pt", "jet_m", "tau21"):
        np.testing.assert_array_equal(ak.to_numpy(a[name]), ak.to_numpy(b[name]))


def test_branch_map_and_cuts_and_cross_section(generated, tmp_path):
    """A user's file with other branch names is read through an explicit map."""
    source = read_jets([generated["qcd"]])
    renamed = tmp_path / "user.root"
    with uproot.recreate(renamed) as f:
        f.mktree("FatJets", {"pT": "float64", "eta": "float64", "phi": "float64", "mass": "float64",
                             "sj1_eta": "float64", "sj1_phi": "float64",
                             "c": ak.types.ListType(ak.types.RecordType(
                                 [ak.types.NumpyType("float64")] * 4 + [ak.types.NumpyType("int32")] * 2,
                                 ["pt", "eta", "phi", "e", "q", "id"]))},
                 counter_name=lambda _: "nc").extend({
            "pT": ak.to_numpy(source.jet_pt), "eta": ak.to_numpy(source.jet_eta),
            "phi": ak.to_numpy(source.jet_phi), "mass": ak.to_numpy(source.jet_m),
            "sj1_eta": ak.to_numpy(source.subjet1_eta), "sj1_phi": ak.to_numpy(source.subjet1_phi),
            "c": ak.zip({"pt": source.constituents.pt, "eta": source.constituents.eta,
                         "phi": source.constituents.phi, "e": source.constituents.e,
                         "q": source.constituents.charge, "id": source.constituents.pdgid}),
        })
    branches = {"jet_pt": "pT", "jet_eta": "eta", "jet_phi": "phi", "jet_m": "mass",
                "subjet1_eta": "sj1_eta", "subjet1_phi": "sj1_phi",
                "constituent_pt": "c_pt", "constituent_eta": "c_eta", "constituent_phi": "c_phi",
                "constituent_e": "c_e", "constituent_charge": "c_q", "constituent_pdgid": "c_id"}
    sample = {"name": "mine", "files": [str(renamed)], "tree": "FatJets", "branches": branches,
              "cuts": {"jet_m": {"min": 30.0}}, "cross_section": 2.0}
    cfg = _config(sample)
    out = tmp_path / "mine.root"
    ingest(cfg, "mine", str(renamed), 0, len(source), out)
    jets = read_jets([out])
    keep = ak.to_numpy(source.jet_m) >= 30.0
    assert 0 < len(jets) == keep.sum() < len(source)
    np.testing.assert_array_equal(ak.to_numpy(jets.jet_m), ak.to_numpy(source.jet_m)[keep])
    assert ak.all(jets.constituents.pt == source.constituents.pt[keep])
    np.testing.assert_allclose(ak.to_numpy(jets.weight), 2.0 / len(source))


def test_missing_file_tree_and_branch_are_named(generated, tmp_path):
    problems = list(check_sample({"files": [str(tmp_path / "nope.root")], "preset": "jetimage"},
                                 "samples[1]"))
    assert problems == [f"samples[1].files: {tmp_path / 'nope.root'}: no such file"]
    problems = list(check_sample({"files": [str(generated["qcd"])], "preset": "jetimage",
                                  "tree": "Events"}, "samples[1]"))
    assert len(problems) == 1 and "no tree 'Events'" in problems[0] and "qcd.root" in problems[0]
    problems = list(check_sample({"files": [str(generated["qcd"])], "preset": "jetimage",
                                  "branches": {"jet_m": "m_trimmed"}}, "samples[1]"))
    assert len(problems) == 1 and problems[0].startswith("samples[1].branches.jet_m: ")
    assert "qcd.root: tree 'jets': no branch 'm_trimmed'" in problems[0]
    problems = list(check_sample({"files": [str(tmp_path / "*.none")], "preset": "jetimage"},
                                 "samples[0]"))
    assert problems and "no file matches" in problems[0]


@pytest.mark.slow
def test_workflow_reads_a_user_sample_and_refuses_a_missing_branch(generated, tmp_path):
    # paths with spaces, as users have them: the input file and the working directory
    user_file = tmp_path / "my files" / "qcd shard.root"
    user_file.parent.mkdir()
    shutil.copy(generated["qcd"], user_file)
    tmp_path = tmp_path / "work dir"
    tmp_path.mkdir()
    raw = tiny_raw_config(study="user")
    raw["samples"][1] = {"name": "myqcd", "class": "background", "files": [str(user_file)],
                         "chunk_entries": 100}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    snakemake = [sys.executable.replace("python", "snakemake").rsplit("/", 1)[0] + "/snakemake",
                 "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                 str(tmp_path / "config.yaml"), "--cores", "2"]
    proc = subprocess.run([*snakemake, "results/user/images/myqcd.h5"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_jets = len(read_jets([generated["qcd"]]))
    parts = sorted((tmp_path / "results/user/samples/myqcd").glob("part*.root"))
    assert len(parts) == -(-n_jets // 100)
    assert len(read_jets(parts)) == n_jets
    raw["samples"][1]["branches"] = {"tau21": "tau32"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([*snakemake, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "samples[1].branches.tau21: " in proc.stdout + proc.stderr
    assert "tree 'jets': no branch 'tau32'" in proc.stdout + proc.stderr
    assert set(JET_BRANCHES) >= {"tau21"}


def _weighted_file(path, weights) -> None:
    """A per-jet user file: one jet of 5 constituents (about 275 GeV) per entry and a weight branch."""
    n = len(weights)
    rng = np.random.default_rng(3)
    pt = ak.unflatten(rng.uniform(50, 60, 5 * n), np.full(n, 5))
    eta = ak.unflatten(rng.normal(0, 0.1, 5 * n), np.full(n, 5))
    phi = ak.unflatten(rng.normal(0, 0.1, 5 * n), np.full(n, 5))
    with uproot.recreate(path) as f:
        f.mktree("jets", {"w": "float64", "c": ak.types.ListType(ak.types.RecordType(
            [ak.types.NumpyType("float64")] * 4, ["pt", "eta", "phi", "e"]))},
            counter_name=lambda _: "nc").extend(
            {"w": np.asarray(weights, np.float64),
             "c": ak.zip({"pt": pt, "eta": eta, "phi": phi, "e": pt * np.cosh(eta)})})


def _weighted_sample(path) -> dict:
    return {"name": "mine", "files": [str(path)], "tree": "jets", "weight_branch": "w",
            "branches": {"constituent_pt": "c_pt", "constituent_eta": "c_eta", "constituent_phi": "c_phi",
                         "constituent_e": "c_e"}}


def test_a_nan_weight_is_refused_at_ingest_naming_file_branch_and_entry(tmp_path):
    """One NaN in weight_branch made every weight of the image file NaN, ingest and images exit 0."""
    user = tmp_path / "user.root"
    _weighted_file(user, [1.0, 0.5, -0.2, np.nan, 1.0, np.nan])
    raw = tiny_raw_config()
    raw["samples"][1] = {"class": "background", **_weighted_sample(user)}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "part0.root"
    proc = subprocess.run([sys.executable, "-m", "jetimage", "ingest", "--config", str(config), "--sample",
                           "mine", "--file", str(user), "--start", "0", "--stop", "6", "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"jetimage ingest: error: {user}: tree 'jets': branch 'w' (the event weight) "
                           "entry 3 holds nan (2 non-finite of entries 0-5)"), last
    assert "Traceback" not in proc.stderr and not out.exists()


def test_all_zero_weights_are_refused_at_ingest_and_negative_ones_kept(tmp_path):
    from jetimage.formats.errors import InputError

    user = tmp_path / "zero.root"
    _weighted_file(user, np.zeros(4))
    cfg = _config(_weighted_sample(user))
    with pytest.raises(InputError, match=rf"{user}: tree 'jets': branch 'w' \(the event weight\) is 0 in "
                                         r"every entry 0-3"):
        ingest(cfg, "mine", str(user), 0, 4, tmp_path / "zero_part.root")
    assert not (tmp_path / "zero_part.root").exists()
    # NLO weights: negative ones are kept as they are
    _weighted_file(user, [1.0, -0.5, 2.0, 0.0])
    ingest(cfg, "mine", str(user), 0, 4, tmp_path / "nlo_part.root")
    with uproot.open(tmp_path / "nlo_part.root") as f:
        assert f["run"]["sum_weights"].array(library="np")[0] == pytest.approx(2.5)
