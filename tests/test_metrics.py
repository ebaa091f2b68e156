"""Null, never a fake number: a figure that cannot be computed (one class, too few
examples for the bootstrap, a working point that does not exist) stops the stage with an error
naming what is missing, or is written as ``null`` with a warning in the log."""

from __future__ import annotations

import json
import logging

import awkward as ak
import numpy as np
import pytest
import yaml

from jetimage.evaluation.baselines import cut_based
from jetimage.evaluation.metrics import json_safe, null_keys, tagger_metrics
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter
from jetimage.formats.root import JetTreeWriter, read_jets
from jetimage.stages.image_mass import run_study

from .conftest import start_jetimage, tiny_raw_config, train_args


def test_bootstrap_replicas_without_a_class_are_left_out_of_the_errors(caplog):
    # one signal example above 30 background ones: the AUC is 1 whenever the signal is drawn;
    # a replica that draws it 0 times (37 %) has no ROC curve and must not count as AUC 0
    scores = np.r_[1.0, np.linspace(0.0, 0.5, 30)]
    labels = np.r_[1, np.zeros(30, int)]
    with caplog.at_level(logging.WARNING, "jetimage"):
        m = tagger_metrics(scores, labels, np.ones(31), [0.5], n_bootstrap=200, seed=3)
    assert m["auc"] == 1.0 and m["auc_err"] < 1e-12  # before: 0.48, from replicas counted as AUC 0
    assert "bootstrap replicas hold no signal or no background" in caplog.text


def test_too_few_bootstrap_replicas_give_null_and_every_null_is_named():
    m = {"cnn": tagger_metrics(np.r_[0.9, 0.1], np.r_[1, 0], np.ones(2), [0.5], n_bootstrap=1)}
    assert np.isnan(m["cnn"]["auc_err"])
    assert "cnn.auc_err" in null_keys(m)
    assert json.loads(json.dumps(json_safe(m)))["cnn"]["auc_err"] is None


def _event_files(tmp_path) -> list:
    paths = []
    for cls, name in ((1, "signal"), (0, "background")):
        path = tmp_path / f"{name}.h5"
        with ImageWriter(path, (4, 4, 1), {"sample": name, "class": name, "sigma_pb": 10.0}) as w:
            w.append(np.ones((20, 4, 4, 1), np.float32), {"labels": np.full(20, cls, np.int8),
                                                         "weights": np.full(20, 0.5)})
        paths.append(path)
    return paths


def test_no_background_passing_the_cuts_gives_a_null_factor(tmp_path, event_config, caplog):
    paths = _event_files(tmp_path)
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    score = np.r_[np.linspace(0.5, 1, 20), np.linspace(0, 0.6, 20)]
    cut = y == 1  # every signal event passes the cuts, no background event does
    w = np.full(40, 0.5)
    with caplog.at_level(logging.WARNING, "jetimage"):
        out = cut_based(event_config, paths, score, y, w, cut, (y, w))
    assert out["cut_sig_eff_presel"] == 1.0 and out["cut_bkg_eff_presel"] == 0.0
    assert np.isnan(out["factor"]) and np.isnan(out["cnn_sig_eff_at_cut_bkg_eff"])
    assert "no background test event passes the cut-based selection" in caplog.text
    assert json_safe(out)["factor"] is None


@pytest.mark.slow
def test_a_validation_split_of_one_class_stops_training_naming_the_files(tmp_path):
    images = tmp_path / "few.h5"
    with ImageWriter(images, (25, 25, 1), {"sample": "few"}) as w:  # 5 signal, 1 background
        w.append(np.ones((6, 25, 25, 1), np.float32), {"labels": np.r_[1, 1, 1, 1, 1, 0].astype(np.int8),
                                                       "weights": np.ones(6)})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw_config()))
    proc = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "log")
    assert proc.wait(timeout=300) == 2
    last = (tmp_path / "log").read_text().strip().splitlines()[-1]
    assert last.startswith(f"jetimage train: error: {images}: the ") and "split holds no" in last
    assert "its AUC cannot be computed" in last
    assert not (tmp_path / "run" / "model.keras").exists()


def test_an_image_mass_study_without_signal_in_a_half_is_an_error(tiny_config, generated, tmp_path):
    jets = read_jets([generated["wjets"]])
    one = tmp_path / "one_w.root"
    with JetTreeWriter(one) as w:  # a single truth-matched W jet: the odd half has no signal
        first = jets[ak.to_numpy(jets.label) == 1][:1]
        w.extend({name: ak.to_numpy(first[name]) for name in first.fields if name != "constituents"}
                 | {"constituents": first.constituents})
    with pytest.raises(InputError, match="odd-numbered jets of the preprocessing study hold no signal"):
        run_study(tiny_config, {"wjets": [str(one)], "qcd": [str(generated["qcd"])]},
                  tmp_path / "p.json", tmp_path / "p")
    assert not (tmp_path / "p.json").exists()


def test_an_infinite_rejection_of_the_image_mass_study_is_null_with_a_warning(tmp_path, caplog):
    from jetimage.stages.image_mass import summary_json

    summary = {"lorentz": {"pixelization": float("inf"), "flip": 2.5}, "jet_mass": float("nan")}
    with caplog.at_level(logging.WARNING, "jetimage.diagnostics"):
        text = summary_json(summary, tmp_path / "p.json")
    assert json.loads(text) == {"lorentz": {"pixelization": None, "flip": 2.5}, "jet_mass": None}
    assert "lorentz.pixelization, jet_mass" in caplog.text and str(tmp_path / "p.json") in caplog.text


def test_an_unknown_cross_section_gives_null_absolute_efficiencies(tmp_path, event_config, caplog):
    paths = _event_files(tmp_path)
    import h5py

    with h5py.File(paths[1], "r+") as f:  # a background file without a cross section
        f.attrs["sigma_pb"] = json.dumps(float("nan"))
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    score = np.r_[np.linspace(0.5, 1, 20), np.linspace(0, 0.6, 20)]
    cut, w = score > 0.55, np.full(40, 0.5)
    with caplog.at_level(logging.WARNING, "jetimage"):
        out = cut_based(event_config, paths, score, y, w, cut, (y, w))
    assert out["presel_eff"]["signal"] == 1.0 and np.isnan(out["presel_eff"]["background"])
    assert np.isnan(out["cut_bkg_eff"]) and out["cut_bkg_eff_presel"] > 0
    assert "no cross section of the background class" in caplog.text and str(paths[1]) in caplog.text


def test_negative_weights_outside_the_range_give_null_never_a_number(caplog):
    """Background weights +2 above the signal and -1 below it: the weighted pair sum is -1, no
    probability; a background total <= 0 gave AUC -2.8e303 (its total was floored at 1e-300)."""
    scores, labels = np.r_[0.5, 0.9, 0.1], np.r_[1, 0, 0]
    with caplog.at_level(logging.WARNING, "jetimage"):
        m = tagger_metrics(scores, labels, np.r_[1.0, 2.0, -1.0], [0.5])
    assert np.isnan(m["auc"]) and np.isnan(m["rejection"]["0.5"])
    assert "outside [0, 1]" in caplog.text and "null for auc, rejection.0.5" in caplog.text
    assert json_safe(m) == {"auc": None, "rejection": {"0.5": None}}
    m = tagger_metrics(scores, labels, np.r_[1.0, -2.0, 1.0], [0.5])  # background total -1
    assert np.isnan(m["auc"]) and np.isnan(m["rejection"]["0.5"])


def test_mild_negative_weights_keep_the_weighted_auc_and_efficiencies_in_range():
    rng = np.random.default_rng(2)
    n = 400
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    scores = np.r_[rng.normal(1, 1, n), rng.normal(0, 1, n)]
    w = np.where(rng.random(2 * n) < 0.15, -1.0, 1.0)  # an NLO sample: 15 % negative weights
    m = tagger_metrics(scores, labels, w, [0.3, 0.5], n_bootstrap=30, seed=1)
    s, b = labels == 1, labels == 0
    pairs = w[s][:, None] * w[b][None, :] * (scores[s][:, None] > scores[b][None, :])
    assert m["auc"] == pytest.approx(pairs.sum() / (w[s].sum() * w[b].sum()), abs=1e-12)
    assert 0.5 < m["auc"] < 1.0 and all(r >= 1.0 for r in m["rejection"].values())
    assert 0 < m["auc_err"] < 0.1


@pytest.mark.slow
def test_a_label_other_than_0_or_1_stops_training_naming_the_file_and_row(tmp_path):
    """A label of 7 trained silently (as signal: binary cross-entropy took it as a target of 7)."""
    images = tmp_path / "seven.h5"
    with ImageWriter(images, (25, 25, 1), {"sample": "seven"}) as w:
        w.append(np.ones((40, 25, 25, 1), np.float32),
                 {"labels": np.r_[np.zeros(20), np.ones(20)].astype(np.int8), "weights": np.ones(40)})
    import h5py

    with h5py.File(images, "r+") as f:
        f["labels"][25] = 7
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw_config()))
    proc = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "log")
    assert proc.wait(timeout=300) == 2
    text = (tmp_path / "log").read_text()
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"jetimage train: error: {images}: dataset 'labels' row 25 holds 7"), last
    assert "Traceback" not in text and not (tmp_path / "run" / "model.keras").exists()
