"""Generation: real Pythia + FastJet shards, the ROOT format, truth labels and reproducibility."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from jetimage.formats.errors import InputError
from jetimage.formats.root import (
    CONSTITUENT_FIELDS,
    COUNTER,
    JET_BRANCHES,
    RUN_BRANCHES,
    JetTreeWriter,
    iterate_jets,
    read_jets,
    read_run,
)
from jetimage.physics.jets import delta_phi, delta_r, kinematics
from jetimage.stages.generate import GenerationError, generate, make_pythia


def _synthetic_jets(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, n)
    total = counts.sum()
    jets = {name: rng.normal(size=n).astype(dtype) for name, dtype in JET_BRANCHES.items()}
    constituents = {f: rng.normal(size=total).astype(dtype) for f, dtype in CONSTITUENT_FIELDS.items()}
    jets["constituents"] = ak.unflatten(ak.zip(constituents), counts)
    return jets


def test_root_file_round_trips(tmp_path):
    path = tmp_path / "jets.root"
    batches = [_synthetic_jets(n, seed) for seed, n in enumerate([7, 0, 130])]
    with JetTreeWriter(path, basket_size=50) as writer:
        for b in batches:
            writer.extend(b)
    assert writer.n_written == 137
    with uproot.open(path) as f:
        assert f.classname_of("jets") == "TTree"  # not an RNTuple
        tree = f["jets"]
        assert tree.num_entries == 137
        names = set(tree.keys())
        assert set(JET_BRANCHES) <= names
        assert {f"constituent_{c}" for c in CONSTITUENT_FIELDS} | {COUNTER} <= names
        counts = tree[COUNTER].array(library="np")
    expected_counts = np.concatenate([ak.to_numpy(ak.num(b["constituents"])) for b in batches])
    np.testing.assert_array_equal(counts, expected_counts)
    back = read_jets([path])
    for name, dtype in JET_BRANCHES.items():
        expected = np.concatenate([b[name] for b in batches]).astype(dtype)
        np.testing.assert_array_equal(ak.to_numpy(back[name]), expected)
    for field in CONSTITUENT_FIELDS:
        expected = ak.concatenate([b["constituents"][field] for b in batches])
        assert ak.all(back.constituents[field] == expected)


def test_reader_names_missing_tree_and_branch(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"x": "float64"}).extend({"x": np.arange(3.0)})
    with pytest.raises(InputError, match="other.root: no tree 'jets'"):
        read_jets([path])
    with pytest.raises(InputError, match=r"other.root: tree 'events' lacks branches \['event'"):
        list(iterate_jets([path], tree="events"))
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"this is not a ROOT file")
    with pytest.raises(InputError, match="junk.root"):
        read_jets([junk])


def test_generated_jets_are_physical(generated, tiny_config):
    jets_cfg = tiny_config["jets"]
    for name, path in generated.items():
        jets = read_jets([path])
        assert len(jets) > 20, f"{name}: too few jets"
        pt = ak.to_numpy(jets.jet_pt)
        assert np.all((pt >= jets_cfg["pt_min"]) & (pt < jets_cfg["pt_max"]))
        assert np.all(np.abs(ak.to_numpy(jets.jet_eta)) < jets_cfg["eta_max"])
        # the jet four-vector is the sum of its (trimmed) constituents
        c = jets.constituents
        px, py = ak.sum(c.pt * np.cos(c.phi), axis=1), ak.sum(c.pt * np.sin(c.phi), axis=1)
        pz, e = ak.sum(c.pt * np.sinh(c.eta), axis=1), ak.sum(c.e, axis=1)
        kin = kinematics(ak.to_numpy(px), ak.to_numpy(py), ak.to_numpy(pz), ak.to_numpy(e))
        np.testing.assert_allclose(kin["pt"], pt, rtol=1e-9)
        np.testing.assert_allclose(kin["m"], ak.to_numpy(jets.jet_m), rtol=1e-6, atol=1e-6)
        tau21 = ak.to_numpy(jets.tau21)
        assert np.all((tau21[np.isfinite(tau21)] >= 0) & (tau21[np.isfinite(tau21)] <= 1))
        charges = set(np.unique(ak.to_numpy(ak.flatten(c.charge))).tolist())
        assert charges <= {-1, 0, 1} and {-1, 0, 1} <= charges | {0}
        assert not np.isin(np.abs(ak.to_numpy(ak.flatten(c.pdgid))), [12, 14, 16]).any()
    w = read_jets([generated["wjets"]])
    q = read_jets([generated["qcd"]])
    assert ak.all(q.label == 0)
    w_mass = ak.to_numpy(w.jet_m[w.label == 1])
    assert 70 < np.median(w_mass) < 90, "W-matched jets must peak at the W mass"
    assert np.median(w_mass) > np.median(ak.to_numpy(q.jet_m)) + 20
    assert np.nanmedian(ak.to_numpy(w.tau21[w.label == 1])) < np.nanmedian(ak.to_numpy(q.tau21))


def test_every_shard_carries_its_run_summary(generated, tiny_config):
    """The ``run`` tree from which the image stage forms weights in pb."""
    for name, path in generated.items():
        s = tiny_config.sample(name)
        with uproot.open(path) as f:
            assert set(f["run"].keys()) == set(RUN_BRANCHES) and f["run"].num_entries == 1
            n_jets = f["jets"].num_entries
        run = read_run(path)
        assert run["n_generated"] == s["n_events"] // s["n_shards"]
        assert run["n_written"] == n_jets
        assert run["n_shards"] == s["n_shards"]
        # unweighted Pythia events: each has weight 1
        assert run["sum_weights"] == pytest.approx(run["n_generated"])
        # sigma_gen in pb, with its statistical error
        assert 0 < run["sigma_err_pb"] < run["sigma_pb"]
    # QCD dijets at pTHat 220-330 GeV: tens of nb; ZW -> nu nu q q' in that range: far less
    assert read_run(generated["qcd"])["sigma_pb"] > 100 * read_run(generated["wjets"])["sigma_pb"]


def _w_quarks_by_walking_the_record(pythia) -> list[tuple[float, float]]:
    """The W decay quarks of the current event, found one particle at a time (reference)."""
    out = []
    event = pythia.event
    for i in range(event.size()):
        p = event[i]
        if abs(p.id()) == 24 and p.daughter1() > 0:
            for d in range(p.daughter1(), p.daughter2() + 1):
                q = event[d]
                if 1 <= abs(q.id()) <= 5 and q.mother1() == i:
                    out.append((q.eta(), q.phi()))
    return out


def test_labels_match_truth(generated, tiny_config):
    """Re-run the shard's Pythia with its seed and check every label against the W quarks."""
    s = tiny_config.sample("wjets")
    n_events = s["n_events"] // s["n_shards"]
    pythia = make_pythia(
        tiny_config["generation"]["common"] + s["pythia"],
        tiny_config.shard_seed("wjets", 0),
        tiny_config["generation"]["sqrt_s"],
    )
    quarks = {}
    for i in range(n_events):
        assert pythia.next()
        quarks[i] = _w_quarks_by_walking_the_record(pythia)
    jets = read_jets([generated["wjets"]])
    dr_max = tiny_config["jets"]["truth_match_dr"]
    n_matched = 0
    for event, eta, phi, label in zip(
        ak.to_numpy(jets.event), ak.to_numpy(jets.jet_eta), ak.to_numpy(jets.jet_phi),
        ak.to_numpy(jets.label), strict=True,
    ):
        qs = quarks[int(event)]
        assert len(qs) == 2, f"event {event}: expected two W decay quarks, found {qs}"
        matched = all(delta_r(qe, qp, eta, phi) < dr_max for qe, qp in qs)
        assert label == int(matched), f"event {event}: label {label}, truth {matched}"
        n_matched += matched
    assert 0 < n_matched < len(jets) + 1


def test_w_decay_quarks_are_one_definition_for_pythia_and_file_records():
    """The same records, indexed as Pythia does (0 = no mother) and as a file's truth
    collection does (-1 = none), give the same quarks: those whose mother is a W."""
    from jetimage.physics.jets import is_w_decay_quark

    # event 0: t -> W+ b, W+ -> u dbar, plus a gluon; event 1: W- -> e nu, a d quark from a gluon
    ids = [[6, 24, 5, 2, -1, 21], [-24, 11, -12, 21, 1]]
    file_mothers = [[-1, 0, 0, 1, 1, -1], [-1, 0, 0, -1, 3]]
    expect = [[False, False, False, True, True, False], [False, False, False, False, False]]
    pid, m = ak.Array(ids), ak.Array(file_mothers)
    assert is_w_decay_quark(pid, m, m >= 0).tolist() == expect
    # Pythia's record: a system entry at 0, every index shifted by one
    p_ids = ak.Array([[90, *e] for e in ids])
    p_m = ak.Array([[0, *[k + 1 if k >= 0 else 0 for k in e]] for e in file_mothers])
    assert is_w_decay_quark(p_ids, p_m, p_m > 0).tolist() == [[False, *e] for e in expect]


def test_a_jet_matches_one_w_of_a_ttbar_event_when_both_its_quarks_are_inside():
    from jetimage.physics.jets import truth_match

    # one event with two hadronic W (parents 7 and 9) and four jets; an event with one W; none
    q_eta = ak.Array([[0.0, 0.4, 1.0, 1.6], [0.0, 0.3], []])
    q_phi = ak.Array([[0.0, 0.3, 0.3, 0.8], [0.0, 0.0], []])
    parent = ak.Array([[7, 7, 9, 9], [4, 4], []])
    rows = np.array([0, 0, 0, 0, 1, 2])
    jet_eta = np.array([0.2, 1.3, 0.7, 0.0, 0.1, 0.0])
    jet_phi = np.array([0.1, 0.55, 0.3, 0.0, 0.0, 0.0])
    # jet 0 holds both quarks of W 7, jet 1 both of W 9; jet 2 one quark of each: no W; jet 3 sits
    # on a quark of W 7 with its sibling 0.5 away: matched
    got = truth_match(jet_eta, jet_phi, q_eta[rows], q_phi[rows], 0.6, parent[rows])
    assert got.tolist() == [True, True, False, True, True, False]
    inside = delta_r(q_eta[rows], q_phi[rows], jet_eta, jet_phi) < 0.6
    assert ak.sum(inside, axis=1).tolist()[:3] == [2, 2, 2]  # as many quarks inside each
    # without parents every quark of the event must be inside (one W per event)
    one_w = truth_match(jet_eta, jet_phi, q_eta[rows], q_phi[rows], 0.6)
    assert one_w.tolist() == [False, False, False, False, True, False]


def test_same_seed_same_jets_other_seed_other_jets(generated, tiny_config, tmp_path):
    again = tmp_path / "again.root"
    generate(tiny_config, "qcd", 0, again)
    a, b = read_jets([generated["qcd"]]), read_jets([again])
    assert len(a) == len(b)
    for name in JET_BRANCHES:
        np.testing.assert_array_equal(ak.to_numpy(a[name]), ak.to_numpy(b[name]))
    assert ak.all(ak.flatten(a.constituents.pt) == ak.flatten(b.constituents.pt))
    other = tmp_path / "other.root"
    generate(tiny_config, "qcd", 1, other)
    assert not np.array_equal(ak.to_numpy(read_jets([other]).jet_pt)[:5], ak.to_numpy(a.jet_pt)[:5])


def test_bad_pythia_command_is_named():
    with pytest.raises(GenerationError, match="NoSuch:setting"):
        make_pythia(["NoSuch:setting = on"], seed=1, sqrt_s=13000.0)


def _write_lhe(path, n_events: int) -> list[float]:
    """A Les Houches file of g g -> d d~ events at pT = 300 GeV, event k at azimuth 0.5 k."""
    lines = ['<LesHouchesEvents version="3.0">', "<init>",
             "2212 2212 6.5e+03 6.5e+03 0 0 247000 247000 -4 1", "1.0e+01 1.0e-01 1.0e+00 1",
             "</init>"]
    phis = []
    for k in range(n_events):
        phi = delta_phi(0.5 * k, 0.0)
        phis.append(float(phi))
        px, py = 300 * np.cos(phi), 300 * np.sin(phi)
        lines += ["<event>", "4 1 1.0e+00 3.0e+02 7.8e-03 1.1e-01",
                  "21 -1 0 0 501 502 0 0 300 300 0 0 9", "21 -1 0 0 502 503 0 0 -300 300 0 0 9",
                  f"1 1 1 2 501 0 {px:.6f} {py:.6f} 0 300 0 0 9",
                  f"-1 1 1 2 0 503 {-px:.6f} {-py:.6f} 0 300 0 0 9", "</event>"]
    path.write_text("\n".join([*lines, "</LesHouchesEvents>"]) + "\n")
    return phis


def test_lhe_samples_are_showered_and_sharded(tmp_path):
    from jetimage.config import validate

    from .conftest import tiny_raw_config

    phis = _write_lhe(tmp_path / "dijets.lhe", 6)
    raw = tiny_raw_config()
    raw["samples"][1] = {"name": "lhe", "class": "background", "lhe": str(tmp_path / "dijets.lhe"),
                         "n_events": 8, "n_shards": 2, "lhe_accept_fewer": True}
    raw["jets"].update(pt_min=100.0, pt_max=1000.0, eta_max=2.5)
    cfg = validate(raw)
    events = {}
    for shard in (0, 1):
        generate(cfg, "lhe", shard, tmp_path / f"shard{shard}.root")
        jets = read_jets([tmp_path / f"shard{shard}.root"])
        events[shard] = set(ak.to_numpy(jets.event).tolist())
        directions = np.array([[p, p + np.pi] for p in phis])  # (event, parton)
        for event, phi in zip(ak.to_numpy(jets.event), ak.to_numpy(jets.jet_phi), strict=True):
            # each jet follows one of its own event's two back-to-back partons
            distance = np.abs(delta_phi(phi, directions))
            assert np.unravel_index(distance.argmin(), distance.shape)[0] == event
            assert distance.min() < 0.6
    # shard 0 reads events 0-3, shard 1 starts at event 4 and meets the end of the file
    assert events[0] <= {0, 1, 2, 3} and len(events[0]) >= 3
    assert events[1] <= {4, 5} and len(events[1]) >= 1
    with pytest.raises(Exception, match="lhe: .*no such file"):
        validate({**raw, "samples": [raw["samples"][0], {**raw["samples"][1], "lhe": "nope.lhe"}]})


def test_lhe_file_ending_on_a_batch_boundary_and_gzipped(tmp_path):
    """More events asked than a gzipped file holds, the file ending exactly on a batch boundary;
    ``pythia: []`` (shower defaults only) is accepted for an LHE sample."""
    import gzip

    from jetimage.config import validate
    from jetimage.formats.root import read_run

    from .conftest import tiny_raw_config

    _write_lhe(tmp_path / "dijets.lhe", 4)
    gz = tmp_path / "dijets.lhe.gz"
    gz.write_bytes(gzip.compress((tmp_path / "dijets.lhe").read_bytes()))
    raw = tiny_raw_config()
    raw["generation"]["batch_size"] = 2
    raw["samples"][1] = {"name": "lhe", "class": "background", "lhe": str(gz), "pythia": [],
                         "n_events": 10, "n_shards": 1, "lhe_accept_fewer": True}
    raw["jets"].update(pt_min=100.0, pt_max=1000.0, eta_max=2.5)
    cfg = validate(raw)
    assert generate(cfg, "lhe", 0, tmp_path / "shard0.root") > 0
    assert read_run(tmp_path / "shard0.root")["n_generated"] == 4
    assert set(ak.to_numpy(read_jets([tmp_path / "shard0.root"]).event).tolist()) <= {0, 1, 2, 3}


def test_lhe_file_shorter_than_n_events_is_an_error_unless_accepted(tmp_path, caplog):
    """A shard meeting the end of its LHE file fails, naming the file, the events asked and found,
    and writes nothing; with ``lhe_accept_fewer: true`` it keeps what the file had and warns once."""
    import logging

    from jetimage.config import validate
    from jetimage.formats.root import read_run

    from .conftest import tiny_raw_config

    lhe = tmp_path / "short.lhe"
    _write_lhe(lhe, 3)
    raw = tiny_raw_config()
    raw["generation"]["batch_size"] = 2
    raw["samples"][1] = {"name": "lhe", "class": "background", "lhe": str(lhe), "n_events": 5, "n_shards": 1}
    raw["jets"].update(pt_min=100.0, pt_max=1000.0, eta_max=2.5)
    with pytest.raises(GenerationError) as err:
        generate(validate(raw), "lhe", 0, tmp_path / "shard0.root")
    message = str(err.value)
    assert "\n" not in message
    assert str(lhe) in message and "holds 3 events" in message and "n_events = 5" in message
    assert "lhe_accept_fewer: true" in message
    assert not (tmp_path / "shard0.root").exists()

    raw["samples"][1]["lhe_accept_fewer"] = True
    with caplog.at_level(logging.WARNING, logger="jetimage.stages.generate"):
        assert generate(validate(raw), "lhe", 0, tmp_path / "shard0.root") > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(lhe) in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert read_run(tmp_path / "shard0.root")["n_generated"] == 3


def test_a_truth_selection_keeping_no_jet_is_named_not_the_window(tiny_config, tmp_path):
    """Jets in the window, none truth-matched: the error names the truth selection (samples[].truth),
    not the pT/eta window; with no jet at all it still names the window."""
    from jetimage.stages.images import make_sample_images

    signal = next(n for n in tiny_config.sample_names if tiny_config.sample(n).get("truth") == "W")
    jets = _synthetic_jets(20, seed=3)
    jets["label"] = np.zeros(20, dtype=np.int32)  # none matched to a W
    path = tmp_path / "unmatched.root"
    run = {"n_generated": 20, "n_written": 20, "sum_weights": 20.0, "sigma_pb": 1.0, "sigma_err_pb": 0.1,
           "n_shards": tiny_config.sample(signal)["n_shards"]}
    with JetTreeWriter(path) as writer:
        writer.extend(jets)
        writer.run = run
    with pytest.raises(InputError) as err:
        make_sample_images(tiny_config, signal, [path], tmp_path / "out.h5")
    message = str(err.value)
    assert "\n" not in message and "truth selection" in message and "truth: W" in message
    assert "among the 20 jets in the pT/eta window" in message and "pT in [" not in message
    empty = tmp_path / "empty.root"
    with JetTreeWriter(empty) as writer:
        writer.extend(_synthetic_jets(0, seed=4))
        writer.run = {**run, "n_written": 0}
    with pytest.raises(InputError, match=r"no example passes the selection \(jets: pT in \["):
        make_sample_images(tiny_config, signal, [empty], tmp_path / "out.h5")
