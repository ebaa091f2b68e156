"""ROC curves, rejections and likelihood-ratio baselines on distributions with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jetimage.config import validate
from jetimage.evaluation.baselines import TAGGERS
from jetimage.evaluation.likelihood import likelihood_ratio, likelihood_ratio_2d, pt_weights, quantile_edges
from jetimage.evaluation.metrics import FastROC, auc, json_safe, rejection_at, roc_curve, tagger_metrics
from jetimage.evaluation.two_stage import load_two_stage
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter, read_images
from jetimage.stages.evaluate import evaluate
from jetimage.training.data import balanced_weights, split_indices

from .conftest import tiny_event_config, tiny_raw_config


def _gaussians(n=200_000, shift=1.0, seed=1):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    scores = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
    return scores, labels


def test_auc_and_rejection_match_the_analytic_values():
    scores, labels = _gaussians(shift=1.0)
    eps_s, eps_b = roc_curve(scores, labels)
    # AUC of two unit Gaussians a distance d apart: Phi(d / sqrt(2))
    expected_auc = 0.5 * (1 + math.erf(1.0 / 2))
    assert auc(eps_s, eps_b) == pytest.approx(expected_auc, abs=3e-3)
    # at eps_S = 0.5 the cut sits at x = 1, so eps_B = 1 - Phi(1)
    eps_b_expected = 0.5 * (1 - math.erf(1 / math.sqrt(2)))
    assert rejection_at(eps_s, eps_b, 0.5) == pytest.approx(1 / eps_b_expected, rel=0.02)
    m = tagger_metrics(scores, labels, np.ones_like(scores), [0.3, 0.5])
    assert set(m["rejection"]) == {"0.3", "0.5"}
    assert m["rejection"]["0.3"] > m["rejection"]["0.5"] > 1


def test_weights_enter_the_efficiencies():
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    labels = np.array([1, 1, 0, 0])
    eps_s, eps_b = roc_curve(scores, labels, np.array([3.0, 1.0, 1.0, 1.0]))
    # cutting at 0.85 keeps the weight-3 signal jet: eps_S = 0.75, eps_B = 0
    assert rejection_at(eps_s, eps_b, 0.75) == float("inf")
    # eps_S = 0.8 needs the cut below 0.1, which keeps all the background
    assert rejection_at(eps_s, eps_b, 0.8) == pytest.approx(1.0)
    # without the weights eps_S = 0.75 needs the cut below 0.1 too
    assert rejection_at(*roc_curve(scores, labels), 0.75) == pytest.approx(1.0)


def test_likelihood_ratio_of_a_peak_beats_a_one_sided_cut():
    rng = np.random.default_rng(3)
    n = 50_000
    x = np.r_[rng.normal(80, 8, n), rng.exponential(60, n)]
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    w = np.ones(2 * n)
    lr = likelihood_ratio(x, y, w, x, bins=60, value_range=(0, 300))
    auc_lr = auc(*roc_curve(lr, y))
    auc_cut = auc(*roc_curve(x, y))
    assert auc_lr > auc_cut + 0.05
    assert np.all(likelihood_ratio(x, y, w, np.array([np.nan]), 60, (0, 300)) < 0)


def test_split_is_a_reproducible_partition():
    s = split_indices(1000, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=7)
    allidx = np.concatenate(list(s.values()))
    assert sorted(allidx.tolist()) == list(range(1000))
    assert [len(v) for v in s.values()] == [600, 200, 200]
    again = split_indices(1000, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=7)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    other = split_indices(1000, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=8)
    assert not np.array_equal(s["test"], other["test"])


def test_balanced_weights_equalize_classes():
    labels = np.array([1, 1, 1, 0])
    w = balanced_weights(labels, np.array([1.0, 2.0, 1.0, 5.0]))
    assert w[labels == 1].sum() == pytest.approx(w[labels == 0].sum())
    assert w.mean() == pytest.approx(1.0)


# --- baselines, bootstrap, selection options and the metrics file ----------------------------

def test_2d_likelihood_ratio_beats_either_variable_on_correlated_classes():
    rng = np.random.default_rng(4)
    n = 40_000
    # the classes differ only in the correlation of x1 and x2, invisible in each marginal
    s = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], n)
    b = rng.multivariate_normal([0, 0], [[1, -0.8], [-0.8, 1]], n)
    x, y, w = np.r_[s, b], np.r_[np.ones(n, int), np.zeros(n, int)], np.ones(2 * n)
    edges = (quantile_edges(x[:, 0], 20), quantile_edges(x[:, 1], 20))
    lr = likelihood_ratio_2d(x, y, w, x, edges)
    assert auc(*roc_curve(lr, y)) > 0.8
    for k in (0, 1):
        one = likelihood_ratio(x[:, k], y, w, x[:, k], 40, (-4, 4))
        assert auc(*roc_curve(one, y)) < 0.56
    assert likelihood_ratio_2d(x, y, w, np.array([[np.nan, 0.0]]), edges)[0] == -1.0


def test_pt_reweighting_removes_the_pt_discrimination():
    rng = np.random.default_rng(5)
    n = 30_000
    pt = np.r_[rng.uniform(250, 300, n), 250 + 50 * rng.beta(1, 3, n)]
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    w = np.ones(2 * n)
    assert auc(*roc_curve(pt, y, w)) > 0.65
    w2 = pt_weights(pt, y, w, 10, (250, 300))
    assert auc(*roc_curve(pt, y, w2)) == pytest.approx(0.5, abs=0.02)
    assert w2[y == 1].sum() == pytest.approx(n) and np.array_equal(w2[y == 0], w[y == 0])


def test_fast_roc_matches_sklearn_and_bootstrap_gives_a_sensible_spread():
    scores, labels = _gaussians(n=5000, seed=2)
    scores = np.round(scores, 1)  # ties
    w = np.random.default_rng(0).uniform(0.5, 2, len(scores))
    es, eb = FastROC(scores, labels).curve(w)
    es2, eb2 = roc_curve(scores, labels, w)
    assert auc(es, eb) == pytest.approx(auc(es2, eb2), abs=1e-12)
    assert rejection_at(es, eb, 0.5) == pytest.approx(rejection_at(es2, eb2, 0.5), rel=1e-9)
    m = tagger_metrics(scores, labels, w, [0.3, 0.5], n_bootstrap=60, seed=1)
    # AUC of 2 x 5000 jets: binomial-like spread of a few 0.001
    assert 0.001 < m["auc_err"] < 0.02
    assert 0 < m["rejection_err"]["0.5"] < 0.3 * m["rejection"]["0.5"]
    again = tagger_metrics(scores, labels, w, [0.3, 0.5], n_bootstrap=60, seed=1)
    assert again["auc_err"] == m["auc_err"]


def test_json_safe_writes_infinite_rejections_as_null():
    obj = {"a": float("inf"), "b": [np.float32(1.5), float("nan")], "c": {"d": np.int64(3)}}
    text = json.dumps(json_safe(obj), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": {"d": 3}}


def _toy_study(tmp_path, n=1600, seed=11):
    """Two HDF5 files with learnable toy images and physical-looking jet variables."""
    rng = np.random.default_rng(seed)
    paths = []
    for cls in (1, 0):
        img = rng.exponential(1.0, (n, 9, 9, 1)).astype(np.float32) * (rng.random((n, 9, 9, 1)) < 0.2)
        img[:, 4, 4, 0] += 100.0
        if cls == 1:
            img[:, 4, 7, 0] += rng.uniform(20, 40, n)  # a second prong
        cols = {
            "labels": np.full(n, cls, np.int8),
            "weights": np.ones(n),
            "jet_m": rng.normal(80, 8, n) if cls else rng.exponential(50, n),
            "tau21": np.clip(rng.normal(0.35 if cls else 0.6, 0.12, n), 0, 1),
            "delta_r": np.where(rng.random(n) < (0.02 if cls else 0.3), np.nan,
                                rng.normal(0.6 if cls else 0.35, 0.15, n)),
            "jet_pt": rng.uniform(250, 300, n) if cls else 250 + 50 * rng.beta(1, 3, n),
        }
        path = tmp_path / f"{'w' if cls else 'qcd'}.h5"
        with ImageWriter(path, (9, 9, 1), {"sample": "toy"}) as wtr:
            wtr.append(img, cols)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A small MaxOut network of the zoo, trained for three epochs on the toy images."""
    import keras

    from jetimage.models import zoo as models

    tmp = tmp_path_factory.mktemp("toy")
    paths = _toy_study(tmp)
    data = read_images(paths)
    keras.utils.set_random_seed(1)  # the same model whatever ran before in this process
    model = models.maxout((9, 9, 1), units=(16, 8), dense=(8, 4),
                          normalization=models.standardizer(data["images"]))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(data["images"], data["labels"].astype(np.float32), epochs=3, batch_size=64, verbose=0)
    model.save(tmp / "model.keras")
    return tmp, paths


def _toy_config(**evaluate):
    raw = tiny_raw_config()
    raw["evaluate"].update(bootstrap=20, **evaluate)
    return validate(raw)


def test_evaluate_writes_every_tagger_with_uncertainties_as_valid_json(toy_model):
    tmp, paths = toy_model
    (tmp / "pre.json").write_text('{"lorentz": {"flip": 2.0}}')
    metrics = evaluate(_toy_config(), paths, tmp / "model.keras", tmp / "metrics.json",
                       tmp / "scores.npz", tmp / "pre.json", two_stage_path=tmp / "cnn_bdt.pkl")
    text = (tmp / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    on_disk = json.loads(text)
    assert set(TAGGERS) <= set(on_disk)
    for name in TAGGERS:
        m = on_disk[name]
        assert 0.0 <= m["auc"] <= 1.0
        assert set(m["rejection"]) == set(m["rejection_err"]) == {"0.3", "0.5"}
        assert m["auc_err"] is not None and 0 <= m["auc_err"] < 0.1
        assert set(m["inv_jsd"]) == set(m["inv_jsd_err"]) == {"0.5"}
    # the mass sculpts the toy QCD mass most; tau21 (independent of it here) less; a null where
    # no QCD test jet passes a cut
    inv = {k: on_disk[k]["inv_jsd"]["0.5"] for k in TAGGERS}
    assert on_disk["ddt"]["fit_range"] == [1.5, 4.5] and abs(on_disk["ddt"]["slope"]) < 0.1  # toy: flat
    assert inv["mass"] < 1.5 < 2.0 < inv["tau21"], inv  # 320 QCD test jets: tau21 ~2 from noise alone
    assert on_disk["preprocessing"] == {"lorentz": {"flip": 2.0}}
    assert on_disk["n_test"]["signal"] + on_disk["n_test"]["background"] == 640
    # the toy classes differ in mass, tau21, Delta R and a second prong in the image
    for name in ("mass", "tau21", "delta_r", "mass_tau21", "fisher", "cnn", "cnn_mass"):
        assert metrics[name]["auc"] > 0.75, name
    assert metrics["mass_tau21"]["auc"] > max(metrics["mass"]["auc"], metrics["tau21"]["auc"]) - 0.005
    # the two-stage tagger (CNN score, mass, tau21 in a BDT) is saved and scores as in the metrics
    tagger = load_two_stage(tmp / "cnn_bdt.pkl")
    assert tagger.features == ["cnn", "jet_m", "tau21"]
    assert metrics["cnn_bdt"]["auc"] > metrics["cnn"]["auc"] - 0.02
    scores = np.load(tmp / "scores.npz")
    assert scores["mean_image_signal"].shape == (9, 9)
    assert scores["mean_image_signal"][4, 7] > scores["mean_image_background"][4, 7] + 10
    assert scores["corr_cnn_pixel"][4, 7] > 0.3


def test_mass_window_and_pt_reweighting_change_the_selection(toy_model):
    tmp, paths = toy_model
    m = evaluate(_toy_config(mass_window=[65, 95], reweight_pt=True), paths, tmp / "model.keras",
                 tmp / "m_window.json", tmp / "s_window.npz")
    s = np.load(tmp / "s_window.npz")
    win = s["in_window"]
    assert np.all((s["mass"][win] > 65) & (s["mass"][win] < 95))
    assert m["n_test"]["background"] == int((s["labels"][win] == 0).sum()) < 320
    assert m["selection"] == {"mass_window": [65, 95], "reweight_pt": True}
    # inside the window the mass hardly separates the classes any more
    assert m["mass"]["auc"] < 0.7
    y, w, pt = s["labels"][win], s["weights"][win], s["jet_pt"][win]
    assert auc(*roc_curve(pt, y, w)) < 0.6 < auc(*roc_curve(pt, y))


def test_a_selection_without_one_class_is_an_error_naming_the_files(toy_model, tmp_path):
    """The test split inside the mass window must hold both classes."""
    tmp, paths = toy_model
    # the toy W jets peak at 80 GeV: a window far above keeps only QCD jets
    with pytest.raises(InputError, match="no signal example") as err:
        evaluate(_toy_config(mass_window=[200, 300]), paths, tmp / "model.keras", tmp_path / "m.json")
    assert all(str(p) in str(err.value) for p in paths)
    assert not (tmp_path / "m.json").exists()


def _toy_events(tmp_path, n=1000, seed=12):
    """Event-image files (9x9, one channel) with the event variables, in pb, half preselected."""
    rng = np.random.default_rng(seed)
    paths = []
    for cls, name, w in ((1, "gluino", 0.002), (0, "qcd", 5.0)):
        img = rng.exponential(1.0, (n, 9, 9, 1)).astype(np.float32) * (rng.random((n, 9, 9, 1)) < 0.2)
        img[:, 4, 4, 0] += 100.0
        if cls == 1:
            img[:, 4, 7, 0] += rng.uniform(20, 40, n)
        nfj = rng.poisson(4.5 if cls else 3.2, n)
        mj = rng.normal(900 if cls else 600, 150, n)
        cut = (nfj >= 4) & (mj > 800)
        cols = {"labels": np.full(n, cls, np.int8), "weights": np.full(n, w), "n_fatjets": nfj,
                "mj": mj, "lead_pt": rng.uniform(440, 900, n), "deta12": rng.uniform(0, 1, n),
                "cut_pass": cut.astype(np.int8), "event": np.arange(n)}
        path = tmp_path / f"{name}.h5"
        # the stored events are half of all generated ones: sigma = 2 x stored weight
        with ImageWriter(path, (9, 9, 1), {"sample": name, "class": "signal" if cls else "background",
                                           "kind": "events", "sigma_pb": 2 * n * w}) as wtr:
            wtr.append(img, cols)
        paths.append(path)
    return paths


def test_event_study_is_scored_against_the_cut_based_selection(toy_model, tmp_path):
    tmp, _ = toy_model
    paths = _toy_events(tmp_path)
    raw = tiny_event_config()
    raw["images"]["channels"] = ["em"]  # the toy model scores one-channel 9x9 images
    cfg = validate(raw)
    m = evaluate(cfg, paths, tmp / "model.keras", tmp_path / "metrics.json", tmp_path / "scores.npz",
                 two_stage_path=tmp_path / "cnn_bdt.pkl")
    assert json.loads((tmp_path / "metrics.json").read_text())["factor"] == pytest.approx(m["factor"])
    # every CNN-based tagger has its factor; the BDT adds the event variables to the CNN score
    assert set(m["factors"]) == {"cnn", "cnn_bdt"}
    assert m["factors"]["cnn"]["factor"] == pytest.approx(m["factor"])
    assert load_two_stage(tmp_path / "cnn_bdt.pkl").variables == ["n_fatjets", "mj", "lead_pt", "deta12"]
    assert m["cnn_bdt"]["auc"] > 0.95 and np.isfinite(m["factors"]["cnn_bdt"]["factor"])
    assert {"cnn", "n_fatjets", "mj", "factor", "factor_err", "cut_sig_eff", "n_test"} <= set(m)
    assert not set(TAGGERS) - {"cnn", "cnn_bdt"} & set(m), "no jet baseline in an event study"
    for name in ("cnn", "n_fatjets", "mj"):
        assert m[name]["auc"] > 0.6, name
        assert set(m[name]["rejection"]) == {"0.3", "0.5"} and m[name]["auc_err"] > 0
    s = np.load(tmp_path / "scores.npz")
    y, w, cut = s["labels"], s["weights"], s["cut_pass"].astype(bool)
    assert {"score_cnn", "score_n_fatjets", "score_mj", "mj", "n_fatjets"} <= set(s.files)
    assert m["n_test"] == {"signal": int((y == 1).sum()), "background": int((y == 0).sum())}
    # efficiencies of the cut-based selection among the stored test events, then absolute
    sig, bkg = y == 1, y == 0
    assert m["cut_sig_eff_presel"] == pytest.approx(w[sig & cut].sum() / w[sig].sum())
    assert m["cut_bkg_eff_presel"] == pytest.approx(w[bkg & cut].sum() / w[bkg].sum())
    assert m["presel_eff"] == {"signal": pytest.approx(0.5), "background": pytest.approx(0.5)}
    assert m["cut_sig_eff"] == pytest.approx(0.5 * m["cut_sig_eff_presel"])
    assert m["factor"] == pytest.approx(m["cnn_sig_eff_at_cut_bkg_eff_presel"] / m["cut_sig_eff_presel"])
    # the CNN sees the second prong, which the cuts do not: more signal at the same background
    assert m["factor"] > 1.0


def _edited_copies(toy_model, tmp_path, edit) -> list:
    """Copies of the toy image files, ``edit(name, h5py.File)`` applied to each."""
    import shutil

    import h5py

    _, paths = toy_model
    out = []
    for p in paths:
        shutil.copy(p, tmp_path / p.name)
        with h5py.File(tmp_path / p.name, "r+") as f:
            edit(p.stem, f)
        out.append(tmp_path / p.name)
    return out


def test_a_model_scoring_nan_is_refused_naming_the_model_and_how_many(toy_model, tmp_path):
    """A NaN-trained model gave AUC 1.0 +- 4e-17 (NaN scores sort as ties): now one line."""
    import keras

    tmp, paths = toy_model
    model = keras.saving.load_model(tmp / "model.keras")
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(tmp_path / "nan.keras")
    with pytest.raises(InputError, match=r"nan\.keras: 640 of 640 test-split scores are not finite"):
        evaluate(_toy_config(), paths, tmp_path / "nan.keras", tmp_path / "m.json")
    # a variant that scores NaN beside a good model: named too
    with pytest.raises(InputError, match=r"nan\.keras: 640 of 640 test-split scores are not finite"):
        evaluate(_toy_config(), paths, tmp / "model.keras", tmp_path / "m.json",
                 variants={"disco": tmp_path / "nan.keras"})
    assert not (tmp_path / "m.json").exists()


def test_a_non_finite_weight_is_refused_naming_the_file_and_row(toy_model, tmp_path):
    def edit(name, f):
        if name == "qcd":
            f["weights"][7] = np.inf

    paths = _edited_copies(toy_model, tmp_path, edit)
    with pytest.raises(InputError, match=rf"{paths[1]}: dataset 'weights' row 7 holds inf \(1 bad rows"):
        evaluate(_toy_config(), paths, toy_model[0] / "model.keras", tmp_path / "m.json")


def test_a_label_other_than_0_or_1_is_refused_naming_the_file_and_row(toy_model, tmp_path):
    def edit(name, f):
        if name == "w":
            f["labels"][3] = 7

    paths = _edited_copies(toy_model, tmp_path, edit)
    with pytest.raises(InputError, match=rf"{paths[0]}: dataset 'labels' row 3 holds 7 .*must be 0 "):
        evaluate(_toy_config(), paths, toy_model[0] / "model.keras", tmp_path / "m.json")


@pytest.mark.parametrize(("name", "weight", "cls"), [("w", 0.0, "signal"), ("qcd", -1.0, "background")])
def test_a_class_without_positive_total_weight_is_refused_naming_the_files(toy_model, tmp_path, name,
                                                                           weight, cls):
    """Signal weights all 0 gave AUC 0.0 and negative background weights AUC -2.8e303, exit 0."""
    def edit(stem, f):
        if stem == name:
            f["weights"][...] = weight

    paths = _edited_copies(toy_model, tmp_path, edit)
    with pytest.raises(InputError, match=f"the {cls} examples of the test split have total weight") as err:
        evaluate(_toy_config(), paths, toy_model[0] / "model.keras", tmp_path / "m.json")
    assert all(str(p) in str(err.value) for p in paths)
    assert not (tmp_path / "m.json").exists()


def test_negative_weights_are_kept_and_every_figure_stays_in_range(toy_model, tmp_path):
    """NLO-like samples: a fifth of the events weigh -0.5; each class's total stays positive."""
    rng = np.random.default_rng(5)

    def edit(stem, f):
        w = f["weights"][...]
        f["weights"][...] = np.where(rng.random(len(w)) < 0.2, -0.5, w)

    paths = _edited_copies(toy_model, tmp_path, edit)
    m = evaluate(_toy_config(), paths, toy_model[0] / "model.keras", tmp_path / "m.json", tmp_path / "s.npz",
                 two_stage_path=tmp_path / "b.pkl")
    on_disk = json.loads((tmp_path / "m.json").read_text())
    for name in TAGGERS:
        assert on_disk[name]["auc"] is None or 0.0 <= on_disk[name]["auc"] <= 1.0, name
        assert all(r is None or r >= 1.0 for r in on_disk[name]["rejection"].values()), name
    s = np.load(tmp_path / "s.npz")
    assert (s["weights"] < 0).any()
    # the AUC is the weighted sum over (signal, background) pairs, negative weights included
    win, y, w, x = s["in_window"], s["labels"], s["weights"], s["score_cnn"]
    ws, wb, xs, xb = w[win & (y == 1)], w[win & (y == 0)], x[win & (y == 1)], x[win & (y == 0)]
    pairs = ws[:, None] * wb[None, :] * ((xs[:, None] > xb[None, :]) + 0.5 * (xs[:, None] == xb[None, :]))
    assert m["cnn"]["auc"] == pytest.approx(pairs.sum() / (ws.sum() * wb.sum()), abs=1e-9)
