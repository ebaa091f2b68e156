"""Pileup overlay and particle-level mitigation (CHS, SoftKiller) against their definitions."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jetimage.physics.pileup import (
    chs,
    grid_rho,
    leading_vertex,
    overlay,
    softkiller,
    softkiller_cut,
    subtract_area,
)


def events(n: int, seed: int, mean: float = 8.0) -> ak.Array:
    """``(n, var)`` particle records ``px, py, pz, E, charge, pdgid`` (massless)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean, n)
    m = int(counts.sum())
    pt, eta, phi = rng.exponential(2.0, m) + 0.1, rng.uniform(-2, 2, m), rng.uniform(-np.pi, np.pi, m)
    pid = rng.choice([211, -211, 22, 130], m)
    flat = ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
                   "E": pt * np.cosh(eta), "charge": np.where(np.abs(pid) == 211, np.sign(pid), 0),
                   "pdgid": pid})
    return ak.unflatten(flat, counts)


def test_mu_zero_leaves_the_hard_particles_as_they_are():
    hard = events(50, 1)
    out = overlay(hard, events(20, 2), 0.0, np.random.default_rng(3))
    assert out.n_pileup.sum() == 0
    assert ak.all(out.particles.origin == 0)
    for f in hard.fields:
        assert ak.to_list(out.particles[f]) == ak.to_list(hard[f])


def test_overlay_adds_rotated_pool_events_and_is_reproducible():
    hard, pool = events(400, 1), events(30, 2, mean=20.0)
    out = overlay(hard, pool, 5.0, np.random.default_rng(7))
    again = overlay(hard, pool, 5.0, np.random.default_rng(7))
    assert ak.to_list(out.particles) == ak.to_list(again.particles)
    assert abs(out.n_pileup.mean() - 5.0) < 0.3
    assert np.array_equal(ak.to_numpy(ak.num(out.particles)),
                          ak.to_numpy(ak.num(hard)) + np.bincount(
                              np.repeat(np.arange(len(hard)), out.n_pileup),
                              weights=ak.to_numpy(ak.num(pool))[out.picks], minlength=len(hard)))
    lv = leading_vertex(out.particles)
    assert ak.to_list(lv[hard.fields]) == ak.to_list(hard)
    # the pileup of event 0 is its picked pool events, each rotated in phi (pT, pz, E kept)
    pu = out.particles[0][out.particles[0].origin == 1]
    assert out.n_pileup[0] > 0
    picked = ak.concatenate([pool[i] for i in out.picks[:out.n_pileup[0]]])
    np.testing.assert_allclose(np.hypot(pu.px, pu.py), np.hypot(picked.px, picked.py), rtol=1e-12)
    np.testing.assert_array_equal(pu.pz, picked.pz)
    assert not np.allclose(ak.to_numpy(pu.px), ak.to_numpy(picked.px))  # rotated


def test_chs_removes_the_charged_pileup_only():
    out = overlay(events(100, 1), events(30, 2), 10.0, np.random.default_rng(0)).particles
    kept = chs(out)
    charged_pu = (out.charge != 0) & (out.origin == 1)
    assert ak.sum(charged_pu) > 0 and not ak.any((kept.charge != 0) & (kept.origin == 1))
    assert ak.sum(ak.num(kept)) == ak.sum(ak.num(out)) - ak.sum(charged_pu)


def test_softkiller_cut_on_a_hand_made_grid():
    """eta_max 1, grid 1: 2 x 6 = 12 tiles. Seven hold particles with maxima 5, 4, 3, 2, 1.5, 1,
    0.5, five are empty: sorted 0 0 0 0 0 0.5 1 1.5 2 3 4 5, the upper median (index 6) is 1."""
    d_phi = 2 * np.pi / 6
    centres = [(-0.5, -np.pi + (k + 0.5) * d_phi) for k in range(6)] + [(0.5, -np.pi + 0.5 * d_phi)]
    maxima = [5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5]
    pt, eta, phi = [], [], []
    for (e, p), top in zip(centres, maxima, strict=True):
        pt += [top, top / 3]  # each tile also holds a softer particle
        eta += [e, e + 0.1]
        phi += [p, p - 0.1]
    pt += [0.9]  # outside the grid: no tile, but cut like every other particle
    eta += [1.7]
    phi += [0.0]
    particles = ak.Array([{"pt": a, "eta": b, "phi": c} for a, b, c in zip(pt, eta, phi, strict=True)])
    particles = ak.Array([particles, particles[:2]])  # a second event: one tile, cut 0
    cut = softkiller_cut(particles.pt, particles.eta, particles.phi, grid_size=1.0, eta_max=1.0)
    assert cut.tolist() == [1.0, 0.0]
    kept = softkiller(particles, grid_size=1.0, eta_max=1.0)
    assert sorted(ak.to_list(kept.pt[0])) == [4 / 3, 1.5, 5 / 3, 2.0, 3.0, 4.0, 5.0]  # 1 goes
    assert sorted(ak.to_list(kept.pt[1])) == [5 / 3, 5.0]


@pytest.mark.parametrize("n_tiles_eta", [1, 3])
def test_softkiller_is_the_median_of_tile_maxima(n_tiles_eta):
    """Against a direct per-event loop over the tiles (the definition, not the columnar code)."""
    ev = events(30, n_tiles_eta, mean=60.0)
    pt, phi = np.hypot(ev.px, ev.py), np.arctan2(ev.py, ev.px)
    eta = np.arcsinh(ev.pz / pt)
    grid = 2.0 / n_tiles_eta
    cut = softkiller_cut(pt, eta, phi, grid_size=grid, eta_max=1.0)
    n_phi = round(2 * np.pi / grid)
    for k in range(len(ev)):
        tiles = np.zeros((n_tiles_eta, n_phi))
        for a, b, c in zip(ak.to_numpy(pt[k]), ak.to_numpy(eta[k]), ak.to_numpy(phi[k]), strict=True):
            if abs(b) < 1.0:
                i = min(int((b + 1.0) / 2.0 * n_tiles_eta), n_tiles_eta - 1)
                j = int(np.floor((c + np.pi) / (2 * np.pi) * n_phi)) % n_phi
                tiles[i, j] = max(tiles[i, j], a)
        assert cut[k] == np.sort(tiles.ravel())[tiles.size // 2]


@pytest.fixture(scope="module")
def piled_samples(tmp_path_factory):
    """A W sample generated without pileup, and on the same hard events (same seed) at mu 0 and 40."""
    from jetimage import config
    from jetimage.stages.generate import generate

    from .conftest import tiny_raw_config

    raw = tiny_raw_config(n_events=120)
    raw["jets"]["eta_max"] = 1.5
    w = next(s for s in raw["samples"] if s["name"] == "wjets")
    w.update(n_shards=1, seed=11)
    raw["samples"] += [{**w, "name": f"wjets_mu{mu}", "pileup": {"mu": mu, "pool_size": 200}}
                       for mu in (0, 40)]
    raw["evaluate"]["bootstrap"] = 20
    cfg = config.validate(raw)
    out = tmp_path_factory.mktemp("pileup")
    for name in ("wjets", "wjets_mu0", "wjets_mu40"):
        generate(cfg, name, 0, out / f"{name}.root")
    return {"config": cfg, **{name: out / f"{name}.root" for name in ("wjets", "wjets_mu0", "wjets_mu40")}}


def _same(a, b) -> bool:
    x, y = (ak.to_numpy(ak.flatten(v, axis=None)) for v in (a, b))
    counts = [ak.to_list(ak.num(v, axis=1)) if v.ndim > 1 else [] for v in (a, b)]
    return counts[0] == counts[1] and np.array_equal(x, y, equal_nan=True)


def test_mu_zero_gives_the_pileup_free_jets_bit_for_bit(piled_samples):
    import uproot

    clean = uproot.open(piled_samples["wjets"])["jets"].arrays()
    zero = uproot.open(piled_samples["wjets_mu0"])["jets"].arrays()
    assert len(clean) > 10
    for f in clean.fields:
        assert _same(clean[f], zero[f]), f
    assert np.all(zero.n_pileup == 0) and ak.all(zero.constituent_origin == 0)
    for k in ("pt", "eta", "phi", "m"):
        assert np.array_equal(zero[f"truth_{k}"], clean[f"jet_{k}"])
    # and so the images, with every preprocessing step
    from jetimage.formats.root import read_jets
    from jetimage.images.preprocess import make_images

    cfg = piled_samples["config"]
    opts = {**cfg["images"], "rotate": "subjet", "flip": "parity", "normalize": "l1",
            "channels": ["total", "charged", "neutral"]}
    images = [make_images(read_jets([piled_samples[k]]), opts)[0] for k in ("wjets", "wjets_mu0")]
    assert images[0].shape[0] == len(clean) and np.array_equal(images[0], images[1])


def test_pileup_jets_keep_the_truth_jets_and_record_the_overlay(piled_samples):
    import uproot

    clean = uproot.open(piled_samples["wjets"])["jets"].arrays()
    with uproot.open(piled_samples["wjets_mu40"]) as f:
        piled, run = f["jets"].arrays(), f["run"].arrays(library="np")
    # the same jets: selected on the truth jet, which is the pileup-free jet (those whose jet
    # moved beyond R/2 with pileup, if any, are dropped)
    order = np.argsort(ak.to_numpy(clean.jet_pt))
    row = order[np.searchsorted(ak.to_numpy(clean.jet_pt), ak.to_numpy(piled.truth_pt), sorter=order)]
    assert len(piled) >= 0.9 * len(clean) and np.all(np.diff(row) > 0)
    for k in ("pt", "eta", "phi", "m"):
        assert np.array_equal(piled[f"truth_{k}"], clean[f"jet_{k}"][row])
    assert np.array_equal(piled.label, clean.label[row]) and np.array_equal(piled.event, clean.event[row])
    assert 30 < np.mean(ak.to_numpy(piled.n_pileup)) < 50
    assert np.median(piled.jet_pt - piled.truth_pt) > 5  # pileup adds pT
    assert ak.mean(ak.mean(piled.constituent_origin, axis=1)) > 0.1
    assert run["pileup_mu"][0] == 40 and run["pileup_pool"][0] == 200
    assert run["pileup_vertices"][0] > 0


def test_a_pileup_sample_needs_jets_inside_the_tracker():
    from jetimage import config

    from .conftest import tiny_raw_config

    raw = tiny_raw_config()
    raw["samples"][0]["pileup"] = {"mu": 60}
    with pytest.raises(config.ConfigError, match=r"jets.eta_max: 2 \+ jets.R 1 .* keep jets.eta_max <= 1.5"):
        config.validate(raw)


@pytest.mark.parametrize("mode", ["lorentz", "image"])
def test_the_leading_vertex_channels_at_mu_40_are_the_pileup_free_images(piled_samples, mode):
    """Every pixel's leading-vertex content is the pileup-free jet's: images of both on the same
    centre (the jet with pileup's leading subjet), charged_lv/neutral_lv against charged/neutral."""
    from jetimage.formats.root import read_jets
    from jetimage.images.preprocess import make_images

    clean, piled = read_jets([piled_samples["wjets"]]), read_jets([piled_samples["wjets_mu40"]])
    order = np.argsort(ak.to_numpy(clean.jet_pt))
    row = order[np.searchsorted(ak.to_numpy(clean.jet_pt), ak.to_numpy(piled.truth_pt), sorter=order)]
    clean = clean[row]
    for k in ("subjet1_eta", "subjet1_phi", "subjet2_eta", "subjet2_phi"):
        clean = ak.with_field(clean, piled[k], k)
    opts = {"n_eta": 25, "n_phi": 25, "pixel_eta": 0.1, "pixel_phi": 0.1, "intensity": "pt",
            "centre": "leading_subjet", "rotate": "none", "flip": "none", "normalize": "none",
            "mode": mode, "chunk_size": 1000}
    lv, _ = make_images(piled, {**opts, "channels": ["charged_lv", "neutral_lv", "charged_pu", "neutral"]})
    ref, _ = make_images(clean, {**opts, "channels": ["charged", "neutral"]})
    np.testing.assert_array_equal(lv[..., :2], ref)
    assert lv[..., 2].sum() > 0 and (lv[..., 3] - lv[..., 1]).sum() > 0  # and the pileup is there


def _pseudojets(px, py, pz, e):
    import fastjet

    v = fastjet.vectorPJ()
    for a, b, c, d in zip(px.tolist(), py.tolist(), pz.tolist(), e.tolist(), strict=True):
        v.push_back(fastjet.PseudoJet(a, b, c, d))
    return v


@pytest.mark.parametrize("spacing", [0.55, 0.6])  # 99 and 80 tiles: an odd and an even median
def test_grid_rho_is_fastjets_grid_median_estimator(spacing):
    import fastjet

    ev = events(6, 4, mean=800.0)
    ev = ak.with_field(ev, np.sqrt(ev.E**2 + 0.14**2), "E")  # massive: rapidity is not eta
    rho, rho_m = grid_rho(ev.px, ev.py, ev.pz, ev.E, 2.5, spacing)
    for k in range(len(ev)):
        est = fastjet.GridMedianBackgroundEstimator(2.5, spacing)
        est.set_compute_rho_m(True)
        est.set_particles(_pseudojets(*(ak.to_numpy(ev[f][k]) for f in ("px", "py", "pz", "E"))))
        assert rho[k] == pytest.approx(est.rho(), rel=1e-12, abs=1e-12)
        assert rho_m[k] == pytest.approx(est.rho_m(), rel=1e-9, abs=1e-12)
    assert rho.min() > 0 and rho_m.min() > 0


def test_area_subtraction_matches_fastjets_active_area_of_an_isolated_jet():
    """A hard jet in uniform soft noise: FastJet's active area (explicit ghosts) and Subtractor
    against the rigid-cone four-vector area; both remove the noise pT within a few percent."""
    import fastjet

    rng = np.random.default_rng(3)
    n = 6000
    pt, y, phi = rng.exponential(0.5, n), rng.uniform(-4, 4, n), rng.uniform(-np.pi, np.pi, n)
    pt, y, phi = np.r_[pt, 300.0, 150.0], np.r_[y, 0.3, 0.5], np.r_[phi, 1.0, 1.2]
    mt = np.hypot(pt, np.r_[np.full(n, 0.14), 0.0, 0.0])  # massive noise (pions): rho_m > 0
    px, py, pz, e = pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)
    particles = _pseudojets(px, py, pz, e)
    area_def = fastjet.AreaDefinition(fastjet.active_area_explicit_ghosts,
                                      fastjet.GhostedAreaSpec(4.5, 1, 0.01))
    cs = fastjet.ClusterSequenceArea(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, 1.0),
                                     area_def)
    jet = fastjet.sorted_by_pt(cs.inclusive_jets(100.0))[0]
    est = fastjet.GridMedianBackgroundEstimator(2.5, 0.55)
    est.set_compute_rho_m(True)
    est.set_particles(particles)
    subtractor = fastjet.Subtractor(est)
    subtractor.set_use_rho_m(True)
    fj = subtractor(jet)
    rho, rho_m = grid_rho(*(ak.Array([x]) for x in (px, py, pz, e)))
    p4 = {k: np.array([v]) for k, v in (("px", jet.px()), ("py", jet.py()), ("pz", jet.pz()), ("E", jet.E()))}
    ours = subtract_area(p4, rho, 1.0, rho_m)
    assert jet.area() == pytest.approx(np.pi, rel=0.03)
    assert np.hypot(ours["px"][0], ours["py"][0]) == pytest.approx(fj.pt(), rel=0.01)
    mass = np.sqrt(max(ours["E"][0] ** 2 - ours["px"][0] ** 2 - ours["py"][0] ** 2 - ours["pz"][0] ** 2, 0))
    # the mass is more sensitive to the area's shape (a rigid disc here, the ghosts' boundary there)
    assert mass == pytest.approx(fj.m(), rel=0.1)
    # the hard 450 GeV, up to the noise's fluctuation within the jet (sigma sqrt(A), ~10 GeV here)
    assert np.hypot(ours["px"][0], ours["py"][0]) == pytest.approx(450.0, rel=0.04)
    assert subtract_area({"px": np.array([5.0]), "py": np.array([0.0]), "pz": np.array([0.0]),
                          "E": np.array([5.0])}, np.array([10.0]), 1.0)["E"][0] == 0.0  # over-subtracted


def test_the_study_ranks_the_mitigations_against_the_truth(piled_samples, tmp_path):
    """jetimage pileup: the truth method is exact, CHS and the subtractions beat no mitigation at
    mu 40, and at mu 0 every method that removes nothing of the leading vertex is exact too."""
    import json

    from jetimage.cli import main

    cfg_path = tmp_path / "config.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(dict(piled_samples["config"])))
    out, md = tmp_path / "pileup.json", tmp_path / "pileup.md"
    rc = main(["pileup", "--config", str(cfg_path), "--inputs", f"wjets_mu0={piled_samples['wjets_mu0']}",
               f"wjets_mu40={piled_samples['wjets_mu40']}", "--output", str(out), "--table", str(md)])
    assert rc == 0
    result = json.loads(out.read_text())
    mu40, mu0 = (result["samples"][k]["methods"] for k in ("wjets_mu40", "wjets_mu0"))
    assert mu40["truth"]["mass_resolution"] < 1e-9 and mu40["truth"]["mass_correlation"] > 1 - 1e-12
    for m in ("none", "chs"):  # (the area subtraction removes the hard event's own soft density too)
        assert mu0[m]["mass_resolution"] < 1e-9 and abs(mu0[m]["mass_bias"]) < 1e-9
    assert mu40["none"]["mass_bias"] > mu40["chs"]["mass_bias"] > 0
    assert abs(mu40["chs_area"]["mass_bias"]) < mu40["chs"]["mass_bias"]
    assert mu40["chs"]["mass_resolution"] < mu40["none"]["mass_resolution"]
    assert all(mu40[m]["mass_resolution_err"] > 0 for m in ("none", "chs", "chs_area", "chs_softkiller"))
    assert "| wjets_mu40 | 40 |" in md.read_text()


@pytest.mark.slow
def test_the_workflow_runs_a_small_pileup_study(tmp_path):
    """The pileup rule of a study with pileup samples (no training needed for it): its table and
    JSON per sample; the pileup-free samples are not in it."""
    _pileup_workflow(tmp_path, unet=False)


@pytest.mark.slow
def test_the_workflow_trains_the_unet_and_scores_it_beside_the_particle_methods(tmp_path):
    """train.task images: the study's target is the pileup table; the U-Net trains on the mu 30
    samples only, and is scored on their test split and on every jet of the mu 10 sample."""
    result = _pileup_workflow(tmp_path, unet=True)
    import h5py

    from jetimage.stages.pileup import PIXEL_METHODS

    assert result["unet"]["trained_on"] == ["wjets_mu30", "qcd_mu30"]
    for name, r in result["samples"].items():
        assert set(PIXEL_METHODS) <= set(r["methods"]), name
        assert r["methods"]["unet"]["mass_resolution"] > 0
        # pixelization alone: the pileup-free pixels are closer to the truth than all pixels
        res = {m: r["methods"][m]["mass_resolution"] for m in PIXEL_METHODS}
        assert res["pixels_truth"] < res["pixels_none"]
        with h5py.File(tmp_path / "results" / "pile" / "images" / f"{name}.h5", "r") as f:
            rows = len(f["images"])
        assert (r["n_scored_pixels"] == rows) == (name == "wjets_mu10"), name
    assert not (tmp_path / "results" / "pile" / "metrics.json").exists()  # no tagger to evaluate
    figure = tmp_path / "results" / "pile" / "plots" / "unet_jet.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.with_suffix(".pdf").exists()


def _pileup_workflow(tmp_path, unet: bool) -> dict:
    import json
    import subprocess
    import sys

    import yaml

    from .conftest import REPO, tiny_raw_config

    raw = tiny_raw_config(n_events=80, study="pile")
    raw["jets"]["eta_max"] = 1.5
    raw["evaluate"]["bootstrap"] = 5
    for s in list(raw["samples"]):
        s.update(n_shards=1, seed=7 if s["class"] == "signal" else 8)
        raw["samples"].append({**s, "name": f"{s['name']}_mu30", "pileup": {"mu": 30, "pool_size": 100}})
    if unet:  # the pileup-free samples go; a W sample at mu 10 that the U-Net does not train on
        w = raw["samples"][2]
        mu10 = {**w, "name": "wjets_mu10", "pileup": {"mu": 10, "pool_size": 100}}
        raw["samples"] = [*raw["samples"][2:], mu10]
        raw["images"].update(channels=["charged_lv", "charged_pu", "neutral", "neutral_lv"], normalize="none")
        raw["train"] = {**raw["train"], "task": "images", "model": "unet", "augment": "none", "variants": [],
                        "samples": ["wjets_mu30", "qcd_mu30"], "batch_size": 32}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    target = [] if unet else ["results/pile/pileup.md"]  # a U-Net study's own targets: table and figure
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", str(tmp_path / "config.yaml"), "--cores", "2",
                           *target], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "pile" / "pileup.json").read_text())
    assert sorted(result["samples"]) == sorted(["qcd_mu30", "wjets_mu30", *(["wjets_mu10"] if unet else [])])
    assert result["mass"] == "trimmed" and result["samples"]["qcd_mu30"]["mu"] == 30
    assert "| wjets_mu30 | 30 |" in (tmp_path / "results" / "pile" / "pileup.md").read_text()
    png = tmp_path / "results" / "pile" / "plots" / "pileup_resolution.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    dry = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                          "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--dry-run",
                          *target], capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0 and "rule pileup" not in dry.stdout + dry.stderr  # up to date
    return result
