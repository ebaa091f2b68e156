"""Event classification from whole-event images: real Pythia, FastJet, uproot and Snakemake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot
import yaml

from jetimage import events as ev
from jetimage.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
DELPHES = Path(__file__).resolve().parents[2] / "shared/data/delphes_ttbar_10events.root"


def _cfg(**events) -> dict:
    return {"seed": 7, "events": ev.validate_section({"enabled": True, **events})}


TINY = {
    "batch_size": 100,
    "signal": {"n_events": 120, "n_shards": 1},
    "background": [
        {"name": "qcd", "n_events": 300, "n_shards": 1,
         "pythia": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 600."]},
    ],
    "images": {"n_eta": 16, "n_phi": 16},
    "train": {"epochs": 1, "batch_size": 32,
              "split": {"train": 0.5, "validation": 0.2, "test": 0.3}},
}


@pytest.fixture(scope="module")
def signal_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "gluino.root"
    cfg = _cfg(**{**TINY, "skim": False, "signal": {"n_events": 60, "n_shards": 1}})
    assert ev.generate_events(cfg, "gluino", 0, out) == 60
    return out


def test_config_defaults_and_errors():
    cfg = ev.validate_section({})
    assert cfg["enabled"] is False
    assert cfg["images"]["n_eta"] == 64 and cfg["images"]["channels"] == ["em", "had", "charged_count"]
    assert cfg["selection"]["lead_pt_min"] == 440.0
    with pytest.raises(ConfigError, match="events.images.n_eta"):
        ev.validate_section({"images": {"n_eta": 0}})
    with pytest.raises(ConfigError, match="bogus"):
        ev.validate_section({"bogus": 1})
    with pytest.raises(ConfigError, match="split"):
        ev.validate_section({"train": {"split": {"train": 0.5, "validation": 0.5, "test": 0.5}}})


def test_slha_spectrum_initializes_and_neutralinos_decay():
    from jetimage.generate import make_pythia

    cmds = ev.pythia_commands(ev.samples(ev.validate_section({}))["gluino"])
    pythia = make_pythia(cmds, 3, 13000.0)
    assert pythia.particleData.m0(1000021) == pytest.approx(1400.0)
    assert pythia.particleData.m0(1000022) == pytest.approx(850.0)
    batch = pythia.nextBatch(40, "skip")
    ids = abs(batch.prt.id)
    assert ak.all(ak.sum(ids == 1000021, axis=1) >= 2)  # gluino pairs were produced
    assert ak.all(ak.sum(ids == 1000022, axis=1) >= 2)  # ... and decayed to neutralinos
    final = ids[batch.prt.status > 0]
    assert not ak.any(final > 1000000)  # no sparticle, in particular no neutralino, survives
    assert pythia.infoPython().sigmaGen() * 1e9 == pytest.approx(0.014, rel=0.3)  # pb, LO


def test_events_tree_round_trip(signal_file):
    with uproot.open(signal_file) as f:
        tree = f["events"]
        assert type(tree).__name__.startswith("Model_TTree")
        for b in ("n_particles", "particle_pt", "particle_pdgid", "n_fatjets", "fatjet_m", "weight"):
            assert b in tree
        a = tree.arrays(library="ak")
        run = f["run"].arrays(library="np")
    assert len(a) == 60 and run["n_generated"][0] == 60
    assert np.all(ak.to_numpy(a.n_particles) == ak.to_numpy(ak.num(a.particle_pt)))
    assert ak.min(a.n_particles) > 100  # 10 quarks: high multiplicity
    assert set(np.unique(np.abs(ak.to_numpy(ak.flatten(a.particle_pdgid))))) >= {22, 211}
    assert not np.isin(np.abs(ak.to_numpy(ak.flatten(a.particle_pdgid))), [12, 14, 16]).any()
    # weights add up to the cross section; fat jets sorted and above the storage threshold
    assert ak.sum(a.weight) == pytest.approx(run["sigma_pb"][0], rel=1e-6)
    pt = a.fatjet_pt
    assert ak.all(pt[:, 1:] <= pt[:, :-1]) and ak.all(pt > 100.0)
    # re-reading through iterate_events gives the same particles
    chunk = next(ev.iterate_events([signal_file], step_size=1000))
    assert ak.all(chunk.particles.e == a.particle_e)


def test_skim_keeps_weights_absolute(tmp_path):
    cfg = _cfg(**TINY)
    out = tmp_path / "qcd.root"
    n = ev.generate_events(cfg, "qcd", 0, out)
    run = ev.read_run([out])
    assert 0 < n < 300 and run["n_generated"] == 300 and run["n_written"] == n
    with uproot.open(out) as f:
        a = f["events"].arrays(library="ak")
    fat = ak.zip({"pt": a.fatjet_pt, "eta": a.fatjet_eta, "m": a.fatjet_m})
    assert ev.event_variables(fat, cfg["events"]["selection"])["presel"].all()
    assert ak.sum(a.weight) < run["sigma_pb"]  # the skimmed events carry only their share
    assert np.all(a.weight > 0)


def test_event_images_energy_and_periodic_phi():
    rng = np.random.default_rng(1)
    n_ev, per = 5, 400
    counts = np.full(n_ev, per)
    eta = rng.uniform(-4, 4, n_ev * per)
    phi = rng.uniform(-np.pi, np.pi, n_ev * per)
    pdg = rng.choice([22, 11, -11, 211, -211, 130, 2112, 13], n_ev * per)
    charge = np.where(np.isin(pdg, [11, -211, 13]), -1, np.where(np.isin(pdg, [-11, 211]), 1, 0))
    e = rng.exponential(10.0, n_ev * per)
    w = ev.particle_channel_weights(pdg, charge, e, ["em", "had", "charged_count"])
    img = ev.event_images(eta, phi, w, counts, 64, 64, 2.5)
    assert img.shape == (n_ev, 64, 64, 3)
    inside = (np.abs(eta) < 2.5).reshape(n_ev, per)
    apdg = np.abs(pdg).reshape(n_ev, per)
    ee = e.reshape(n_ev, per)
    em = np.where(inside & np.isin(apdg, [11, 22]), ee, 0).sum(1)
    had = np.where(inside & (apdg > 100), ee, 0).sum(1)
    ncharged = (inside & (charge.reshape(n_ev, per) != 0)).sum(1)
    np.testing.assert_allclose(img[..., 0].sum((1, 2)), em, rtol=1e-5)
    np.testing.assert_allclose(img[..., 1].sum((1, 2)), had, rtol=1e-5)
    np.testing.assert_array_equal(img[..., 2].sum((1, 2)), ncharged)
    # muons in neither energy channel
    assert em.sum() + had.sum() < np.where(inside, ee, 0).sum()
    # phi is periodic: +2 pi is the same image, a shift by k pixels rolls the image
    np.testing.assert_array_equal(ev.event_images(eta, phi + 2 * np.pi, w, counts, 64, 64, 2.5), img)
    shifted = ev.event_images(eta, phi + 5 * 2 * np.pi / 64, w, counts, 64, 64, 2.5)
    np.testing.assert_allclose(shifted, np.roll(img, 5, axis=2), rtol=1e-5)
    # a particle just below +pi and one just above -pi land in the last and first column
    edge = ev.event_images(np.zeros(2), np.array([np.pi - 1e-9, -np.pi + 1e-9]),
                           np.ones((2, 1)), np.array([1, 1]), 8, 8, 2.5)
    assert edge[0, 4, 7, 0] == 1 and edge[1, 4, 0, 0] == 1


SEL = ev.validate_section({})["selection"]


def _jets(rows):
    return ak.Array([[{"pt": pt, "eta": eta, "m": m} for pt, eta, m in row] for row in rows])


def test_cut_based_selection_each_cut_can_fail():
    passing4 = [(600, 0.1, 250), (400, 0.5, 250), (300, -0.5, 200), (250, 1.0, 150)]  # M_J 850
    passing5 = [(600, 0.1, 150), (400, 0.5, 150), (300, -0.5, 100), (250, 1.0, 210),
                (210, 0.0, 80)]  # 5 jets, M_J (4 leading) = 610
    rows = {
        "pass4": passing4,
        "pass5": passing5,
        "too_few_jets": passing4[:2],
        "lead_pt": [(430, 0.1, 250)] + passing4[1:],
        "deta": [(600, 0.1, 250), (400, 1.6, 250)] + passing4[2:],
        "mj4": [(j[0], j[1], 150) for j in passing4],                   # 4 jets, M_J 600
        "mj5_needs_5": passing5[:4],                                    # M_J 610 but 4 jets
        "eta_acceptance": passing4[:3] + [(250, 2.3, 150)],             # 4th jet out of |eta| < 2
        "pt_threshold": passing4[:3] + [(190, 1.0, 150)],               # 4th jet below 200 GeV
    }
    v = ev.event_variables(_jets(list(rows.values())), SEL)
    result = dict(zip(rows, v["cut_pass"], strict=True))
    assert result == {k: k.startswith("pass") for k in rows}, result
    assert v["n_fatjets"].tolist() == [4, 5, 2, 4, 4, 4, 4, 3, 3]
    assert v["mj"][0] == pytest.approx(850) and v["mj"][1] == pytest.approx(610)
    assert v["presel"].tolist() == [True, True, False, False, True, True, True, True, True]


@pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} not present")
def test_delphes_reader_eflow_and_tower():
    d = ev.read_delphes(DELPHES, "eflow")
    dep = d["deposits"]
    assert len(dep) == 10 and d["weight"].shape == (10,)
    with uproot.open(DELPHES) as f:
        t = f["Delphes"]
        ntrk = ak.sum((t["EFlowTrack.PT"].array() > 0) & (abs(t["EFlowTrack.Eta"].array()) < 100),
                      axis=1)
        pho_e = t["EFlowPhoton.E"].array()
        nh_e = t["EFlowNeutralHadron.E"].array()
        pid = t["EFlowTrack.PID"].array()
        p = t["EFlowTrack.P"].array()
        ok = (t["EFlowTrack.PT"].array() > 0) & (abs(t["EFlowTrack.Eta"].array()) < 100)
    expected_n = ntrk + ak.num(pho_e) + ak.num(nh_e)
    assert ak.all(ak.num(dep) == expected_n)
    assert ak.all(ak.sum(dep.charge != 0, axis=1) == ntrk)
    ele = ak.sum(p[ok & (abs(pid) == 11)], axis=1)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(dep.em, axis=1)),
                               ak.to_numpy(ak.sum(pho_e, axis=1) + ele), rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(dep.em + dep.had, axis=1)),
                               ak.to_numpy(ak.sum(pho_e, axis=1) + ak.sum(nh_e, axis=1)
                                           + ak.sum(p[ok], axis=1)), rtol=1e-5)
    flat = ak.flatten(dep)
    w = ev.deposit_channel_weights(flat, "e", ["em", "had", "charged_count"])
    img = ev.event_images(ak.to_numpy(flat.eta), ak.to_numpy(flat.phi), w,
                          ak.to_numpy(ak.num(dep)), 64, 64, 2.5)
    inside = abs(dep.eta) < 2.5
    np.testing.assert_allclose(img[..., 1].sum((1, 2)),
                               ak.to_numpy(ak.sum(dep.had[inside], axis=1)), rtol=1e-4)
    assert (img[..., 2].sum((1, 2)) == ak.to_numpy(ak.sum((dep.charge != 0) & inside, axis=1))).all()
    # ttbar: fat jets exist, and the file has no Tower branch, which is named in the error
    jets = ev.delphes_fatjets(dep, 1.0, 100.0)
    assert ak.sum(ak.num(jets)) > 5
    from jetimage.io import InputError

    with pytest.raises(InputError, match="Tower"):
        ev.read_delphes(DELPHES, "tower")


@pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} not present")
def test_delphes_images_stage(tmp_path):
    cfg = _cfg(source="delphes", skim=False, images={"n_eta": 32, "n_phi": 32},
               delphes={"mode": "eflow", "signal": [str(DELPHES)], "background": []})
    out = tmp_path / "delphes.h5"
    assert ev.make_event_images(cfg, "gluino", [DELPHES], out) == 10
    with h5py.File(out, "r") as f:
        assert f["images"].shape == (10, 32, 32, 3)
        assert (f["labels"][...] == 1).all() and f.attrs["n_generated"] == 10


def test_working_point_interpolation():
    eps_s = np.array([0.0, 0.5, 0.8, 1.0])
    eps_b = np.array([0.0, 0.001, 0.01, 1.0])
    assert ev.working_point(eps_s, eps_b, 0.001) == pytest.approx(0.5)
    assert ev.working_point(eps_s, eps_b, 0.0055) == pytest.approx(0.65)


def test_reference_cnn_architecture():
    model = ev.build_model("bhimji", (64, 64, 3))
    convs = [ly for ly in model.layers if ly.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [128] * 3 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(ly.__class__.__name__ == "MaxPooling2D" for ly in model.layers) == 3
    assert model.get_layer("dropout").rate == 0.5 and model.get_layer("dense").units == 512
    assert model.output_shape == (None, 1)
    with pytest.raises(ConfigError, match="unknown model"):
        ev.build_model("nope", (8, 8, 1))


@pytest.mark.slow
def test_event_workflow_end_to_end(tmp_path):
    """The real snakemake command line on a tiny event study; checks what it wrote."""
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    from .conftest import tiny_raw_config

    # the main workflow, with the event study one word away: events.enabled
    config = {**tiny_raw_config(), "seed": 11,
              "events": {**TINY, "enabled": True, "study": "evtiny"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main = ["-s", str(REPO / "Snakefile"), "--configfile", str(tmp_path / "config.yaml")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([snakemake, "events_all", *main, "--cores", "2", "--quiet"],
                          cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log")) \
        if (tmp_path / "logs").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + logs[-3000:]
    out = tmp_path / "results/evtiny"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("auc", "cut_sig_eff", "cut_bkg_eff", "cnn_sig_eff_at_cut_bkg_eff", "factor"):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["auc"] <= 1 and 0 < metrics["cut_sig_eff"] < 1
    assert metrics["presel_eff"]["signal"] > 0.8 > metrics["presel_eff"]["background"]
    assert metrics["sigma_pb"]["background"] > 1e3 * metrics["sigma_pb"]["signal"]
    with uproot.open(out / "samples/gluino/shard0.root") as f:
        assert f["events"].num_entries > 100 and f["run"]["n_generated"].array()[0] == 120
    with h5py.File(out / "images/qcd.h5", "r") as f:
        assert f["images"].shape[1:] == (16, 16, 3) and (f["labels"][...] == 0).all()
    for name in ev_plots():
        for ext in ("pdf", "png"):
            assert (out / f"plots/{name}.{ext}").stat().st_size > 1000
    assert (out / "benchmarks/train.tsv").exists()
    # nothing left to do on a re-run
    dry = subprocess.run([snakemake, "events_all", *main, "-n", "--cores", "2"], cwd=tmp_path,
                         env=env,
                         capture_output=True, text=True, timeout=120)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def ev_plots() -> list[str]:
    return ["roc", "cnn_vs_n_fatjets", "cnn_vs_mj", "cnn_in_bins_of_n_fatjets",
            "cnn_in_bins_of_mj", "images_mean", "images_example"]
