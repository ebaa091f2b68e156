"""The image-mass study on real Pythia + FastJet jets: lorentz mode keeps m_I, image mode not."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jetimage import config
from jetimage.images.pixelize import Grid, pixelize_flat
from jetimage.stages import generate, image_mass

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Config, sample files and the jets of a small real generation (once per module)."""
    cfg = config.load(CONFIG, "jets")
    out = tmp_path_factory.mktemp("study")
    inputs = {}
    for sample, n in (("wjets", 700), ("qcd", 300)):
        cfg.sample(sample).update(n_events=n, n_shards=1)
        path = out / f"{sample}.root"
        generate.generate(cfg, sample, 0, path)
        inputs[sample] = [str(path)]
    jets, labels, weights = image_mass.read_study_jets(cfg, inputs)
    assert (labels == 1).sum() > 60 and (labels == 0).sum() > 60
    return cfg, inputs, out, jets, labels, weights


def test_image_mass_of_a_two_particle_image():
    grid = Grid(25, 25, 0.1, 0.1)
    eta, phi, pt = np.array([-0.3, 0.3]), np.array([0.0, 0.0]), np.array([100.0, 100.0])
    img = pixelize_flat(eta + 0.05, phi + 0.05, pt, np.array([2]), grid, "ngp")
    # m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi)) for massless particles at the pixel centres
    expected = np.sqrt(2 * 100.0 * 100.0 * (np.cosh(0.6) - 1.0))
    assert image_mass.image_mass(img, grid)[0] == pytest.approx(expected, rel=1e-5)
    # shifting the grid origin in eta does not change a pT image's mass, it does an E image's
    shifted = image_mass.image_mass(img, grid, "pt", np.array([1.5]), np.array([2.0]))
    assert shifted[0] == pytest.approx(expected, rel=1e-5)
    as_e = image_mass.image_mass(img, grid, "e", np.array([1.5]), np.array([0.0]))
    assert abs(as_e[0] / expected - 1) > 0.1


def test_lorentz_mode_keeps_the_image_mass(study):
    cfg, _, _, jets, _, _ = study
    # the default configuration: massless constituents (calorimeter deposits)
    assert cfg["images"]["massless"] is True
    opts = {**cfg["images"], "intensity": "pt"}
    m = image_mass.step_masses(jets, opts, "lorentz")
    rel = np.abs(m["flip"] / m["pixelization"] - 1.0)
    assert np.mean(rel < 0.01) >= 0.95
    # real (massive) hadrons: a boost shifts their rapidity, not their pseudorapidity, so the
    # massless-pixel mass moves a little; lorentz mode still beats the published way
    opts = {**opts, "massless": False}
    real = image_mass.step_masses(jets, opts, "lorentz")
    image = image_mass.step_masses(jets, opts, "image")
    assert np.mean(np.abs(real["flip"] / real["pixelization"] - 1.0) < 0.01) < np.mean(rel < 0.01)
    frac_real = np.mean(np.abs(real["flip"] / real["pixelization"] - 1.0) < 0.01)
    frac_image = np.mean(np.abs(image["flip"] / image["pixelization"] - 1.0) < 0.01)
    assert frac_real >= 0.75
    assert frac_real > frac_image + 0.1


def test_image_mode_shows_the_published_distortion(study):
    cfg, _, _, jets, _, _ = study
    # spline rotation of pT images; translation of E images (detector energies kept)
    for intensity, step, factor in (("pt", "rotation", 1.3), ("e", "translation", 3.0)):
        opts = {**cfg["images"], "intensity": intensity}
        lor = image_mass.step_masses(jets, opts, "lorentz")
        img = image_mass.step_masses(jets, opts, "image")
        spread = {name: np.nanstd(np.log(m[step] / m["pixelization"]))
                  for name, m in (("lorentz", lor), ("image", img))}
        assert spread["image"] > factor * spread["lorentz"], (intensity, spread)


def test_run_study_writes_json_and_figure(study):
    cfg, inputs, out, _, _, _ = study
    summary = image_mass.run_study(cfg, inputs, out / "image_mass.json", out / "image_mass")
    written = json.loads((out / "image_mass.json").read_text())
    assert written == json.loads(json.dumps(summary))
    for mode in ("lorentz", "image", "lorentz_e", "image_e"):
        assert set(written[mode]) == set(image_mass.steps_of(mode))
        assert all(v >= 1.0 for v in written[mode].values())  # inf if no background passes
    # pT images are translation invariant in both modes (whole-pixel shift / exact boost)
    assert written["image"]["translation"] == written["image"]["pixelization"]
    assert written["mass_within_1pct"]["lorentz"] > written["mass_within_1pct"]["image"]
    # the boost normalization keeps the mass-only rejection of the pixelized jet, L2 not (a few
    # hundred jets here: the rejections scatter by ~30%)
    for mode in ("lorentz", "lorentz_e"):
        r = written[mode]
        assert r["boost"] > 0.7 * r["pixelization"], r
        assert r["normalization"] < 0.7 * r["boost"], r
    for suffix in (".pdf", ".png"):
        assert (out / f"image_mass{suffix}").stat().st_size > 1000


def test_the_study_reads_at_most_max_jets_per_sample(study):
    cfg, inputs, _, jets, labels, _ = study
    n_sig, n_bkg = int((labels == 1).sum()), int((labels == 0).sum())
    cap = min(n_sig, n_bkg) - 10
    few, few_labels, few_weights = image_mass.read_study_jets(cfg, inputs, max_jets=cap)
    assert (few_labels == 1).sum() == cap and (few_labels == 0).sum() == cap
    assert len(few) == len(few_weights) == 2 * cap
    # the first jets of each sample, truth-matched signal only
    for cls in (1, 0):
        np.testing.assert_array_equal(ak.to_numpy(few.jet_pt[few_labels == cls]),
                                      ak.to_numpy(jets.jet_pt[labels == cls][:cap]))
