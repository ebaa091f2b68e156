"""The jet mass and the taggers: the sculpting metric, DDT, DisCo and planing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from jetimage.decorrelation.sculpting import Sculpting, jensen_shannon, mass_edges, sculpting_metrics


def toy_jets(n: int = 20000, seed: int = 1):
    """W-like signal at 80 GeV, falling QCD mass; a sculpting score (the mass window) and a
    score blind to the mass (tau21-like, independent of it here)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    mass = np.where(y == 1, rng.normal(80, 8, n), rng.exponential(50, n))
    # a weak tagger: a quarter of the QCD jets pass, so the passing histogram is well filled
    # (with few jets the JSD of two samples of one distribution is ~ n_bins / (2 ln 2 n))
    tau = np.clip(rng.normal(np.where(y == 1, 0.45, 0.55), 0.15), 0, 1)
    return y, mass, tau, np.ones(n)


def test_jensen_shannon_matches_scipy_and_is_bounded():
    rng = np.random.default_rng(0)
    p, q = rng.random(60), rng.random(60)
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-12)
    assert jensen_shannon(p, p) == 0.0
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the maximum
    assert np.isnan(jensen_shannon([0, 0], [1, 2]))


def test_mass_edges_cover_the_range_in_steps():
    np.testing.assert_allclose(mass_edges((0, 300), 5.0), np.arange(0, 301, 5.0))
    assert mass_edges((65, 95), 5.0)[-1] == 95


def test_a_mass_cut_sculpts_and_a_mass_blind_tagger_does_not():
    y, mass, tau, w = toy_jets()
    edges = mass_edges((0, 300), 5.0)
    window = -np.abs(mass - 80.0)  # the mass itself: passing QCD sits at 80 GeV
    sculpted = Sculpting(window, y, mass, edges)
    blind = Sculpting(-tau, y, mass, edges)
    inv_s, inv_b = sculpted.inv_jsd(w, 0.5), blind.inv_jsd(w, 0.5)
    assert inv_s < 3.0 < 20.0 < inv_b
    # the cut keeps half of the signal
    order = np.argsort(tau, kind="stable")
    sig, inside = y[order] == 1, mass[order] < 300  # QCD jets above 300 GeV are left out
    passing_b, failing_b = blind.histograms(w, 0.5)
    n_pass = int(np.searchsorted(np.cumsum(sig), sig.sum() / 2)) + 1
    assert passing_b.sum() == pytest.approx((~sig & inside)[:n_pass].sum())
    assert passing_b.sum() + failing_b.sum() == pytest.approx(((y == 0) & (mass < 300)).sum())


def test_sculpting_metrics_bootstrap_and_null_when_undefined(caplog):
    y, mass, tau, w = toy_jets()
    edges = mass_edges((0, 300), 5.0)
    m = sculpting_metrics(-np.abs(mass - 80.0), y, w, mass, edges, [0.5], 50, seed=3)
    assert set(m) == {"inv_jsd", "inv_jsd_err"} and set(m["inv_jsd"]) == {"0.5"}
    assert 0 < m["inv_jsd_err"]["0.5"] < 0.3 * m["inv_jsd"]["0.5"]
    again = sculpting_metrics(-np.abs(mass - 80.0), y, w, mass, edges, [0.5], 50, seed=3)
    assert again == m  # seeded
    # every background jet in one mass bin: passing and failing identical, JSD = 0 -> inf, warned
    flat = np.where(y == 1, mass, 42.0)
    with caplog.at_level(logging.WARNING):
        m0 = sculpting_metrics(-tau, y, w, flat, edges, [0.5], 0, name="toy")
    assert m0["inv_jsd"]["0.5"] == np.inf and "JSD = 0" in caplog.text


def ddt_toy(n: int = 40000, seed: int = 2):
    """QCD whose tau21 rises with rho' (as in arXiv:1603.00027), W jets at 80 GeV with low tau21."""
    from jetimage.decorrelation.ddt import rho_prime

    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    pt = rng.uniform(250, 300, n)
    mass = np.where(y == 1, rng.normal(80, 8, n), 10 + rng.exponential(45, n))
    rho = rho_prime(mass, pt)
    tau = np.where(y == 1, rng.normal(0.4, 0.1, n), 0.25 + 0.08 * rho + rng.normal(0, 0.1, n))
    return y, mass, pt, rho, tau, np.ones(n)


def test_ddt_fit_recovers_the_qcd_slope_and_decorrelates():
    from jetimage.decorrelation.ddt import ddt_score, fit_ddt

    y, mass, pt, rho, tau, w = ddt_toy()
    bkg = y == 0
    slope, intercept = fit_ddt(tau[bkg], rho[bkg], w[bkg], (1.5, 4.5), 15)
    assert slope == pytest.approx(0.08, abs=0.005) and intercept == pytest.approx(0.25, abs=0.02)
    score = ddt_score(tau, rho, slope)
    # the QCD tau21' no longer follows rho'; tau21 did
    corr = [abs(np.corrcoef(x[bkg], rho[bkg])[0, 1]) for x in (score, tau)]
    assert corr[0] < 0.03 < 0.3 < corr[1]
    edges = mass_edges((0, 300), 5.0)
    inv_ddt = Sculpting(score, y, mass, edges).inv_jsd(w, 0.5)
    inv_tau = Sculpting(-tau, y, mass, edges).inv_jsd(w, 0.5)
    assert inv_ddt > 3 * inv_tau


def test_ddt_needs_two_filled_bins_and_ranks_undefined_jets_last():
    from jetimage.decorrelation.ddt import ddt_score, fit_ddt, rho_prime

    with pytest.raises(ValueError, match="evaluate.ddt"):
        fit_ddt(np.array([0.5, 0.6]), np.array([2.0, 2.01]), np.ones(2), (1.5, 4.5), 15)
    rho = rho_prime(np.array([0.0, 50.0, 80.0]), np.array([275.0, 275.0, 275.0]))
    assert np.isnan(rho[0]) and rho[1] == pytest.approx(np.log(2500 / 275))
    s = ddt_score(np.array([0.3, 0.5, np.nan]), rho, 0.1)
    assert np.isfinite(s).all() and s[0] < s[1] and s[2] < s[1]


# ---------------------------------------------------------------------------------------------
# DisCo
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_distance_correlation_matches_dcor_with_and_without_weights():
    import dcor

    from jetimage.decorrelation.disco import distance_correlation_sq

    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 200)
    y = x**2 + rng.normal(0, 0.3, 200)  # dependent but uncorrelated in Pearson's sense
    ours = float(distance_correlation_sq(x, y, np.ones(200)))
    assert ours == pytest.approx(dcor.distance_correlation_sqr(x, y, method="naive"), rel=1e-4)
    assert ours > 0.2
    # integer weights = repeated points; weight 0 = left out
    k = rng.integers(0, 4, 200)
    rep = np.repeat(np.arange(200), k)
    weighted = float(distance_correlation_sq(x, y, k.astype(float)))
    assert weighted == pytest.approx(dcor.distance_correlation_sqr(x[rep], y[rep], method="naive"), rel=1e-4)
    # independent variables: close to 0
    assert float(distance_correlation_sq(x, rng.normal(0, 1, 200), np.ones(200))) < 0.05


@pytest.mark.slow
def test_disco_loss_is_cross_entropy_plus_lambda_dcorr_of_the_background():
    import dcor
    import keras

    from jetimage.decorrelation.disco import DisCoLoss

    rng = np.random.default_rng(5)
    n = 64
    label = (np.arange(n) % 2).astype(np.float32)
    mass = rng.uniform(20, 200, n).astype(np.float32)
    p = np.clip(0.3 + 0.002 * mass + 0.3 * label, 0.01, 0.99).astype(np.float32)
    w = rng.uniform(0.5, 1.5, n).astype(np.float32)
    y_true = np.c_[label, mass]
    bce = -(label * np.log(p) + (1 - label) * np.log(1 - p))
    bkg = label == 0
    # unit background weights so that dcor (unweighted) applies
    for lam in (0.0, 10.0):
        got = float(DisCoLoss(lam)(y_true, p[:, None], np.where(bkg, 1.0, w)))
        dcorr = dcor.distance_correlation_sqr(p[bkg], mass[bkg], method="naive")
        want = np.mean(np.where(bkg, 1.0, w) * bce) + lam * dcorr
        assert got == pytest.approx(want, rel=1e-4)
    assert DisCoLoss.from_config(DisCoLoss(3.0).get_config()).lam == 3.0
    assert isinstance(keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        DisCoLoss(2.0))), DisCoLoss)


def _mass_images(tmp_path, n=1500, seed=6):
    """Toy jets whose image shows the mass (pixel [4, 1] = m / 2) beside a weak second prong."""
    from jetimage.formats.hdf5 import ImageWriter

    rng = np.random.default_rng(seed)
    paths = []
    for cls in (1, 0):
        mass = rng.normal(80, 10, n) if cls else 20 + rng.exponential(50, n)
        img = rng.exponential(1.0, (n, 9, 9, 1)).astype(np.float32) * (rng.random((n, 9, 9, 1)) < 0.2)
        img[:, 4, 4, 0] += 100.0
        img[:, 4, 1, 0] += mass / 2
        if cls == 1:
            img[:, 4, 7, 0] += rng.uniform(10, 30, n)
        cols = {"labels": np.full(n, cls, np.int8), "weights": np.ones(n), "jet_m": mass,
                "tau21": rng.uniform(0, 1, n), "delta_r": rng.uniform(0.2, 1, n),
                "jet_pt": rng.uniform(250, 300, n)}
        path = tmp_path / f"{'w' if cls else 'qcd'}.h5"
        with ImageWriter(path, (9, 9, 1), {"sample": "toy"}) as wtr:
            wtr.append(img, cols)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_disco_and_planing_variants_train_with_the_one_trainer_and_decorrelate(tmp_path):
    import dcor

    from jetimage.config import validate
    from jetimage.stages.evaluate import evaluate
    from jetimage.stages.train import train

    from .conftest import tiny_raw_config

    raw = tiny_raw_config()
    raw["train"].update(model="maxout", epochs=6, batch_size=128, block_rows=256, shuffle_blocks=2,
                        tensorboard=False, patience=10, variants=[
                            {"name": "disco", "method": "disco", "lambda": 5.0},
                            {"name": "planing", "method": "planing"}])
    raw["evaluate"] = {"bootstrap": 10}
    cfg = validate(raw)
    paths = _mass_images(tmp_path)
    models = {}
    for name in (None, "disco", "planing"):
        models[name] = tmp_path / f"{name or 'nominal'}.keras"
        history = train(cfg, paths, models[name], tmp_path / f"{name}.json", name)
        assert {"loss", "val_loss", "auc", "val_auc"} <= set(history)
    metrics = evaluate(cfg, paths, models[None], tmp_path / "metrics.json", tmp_path / "scores.npz",
                       variants={"disco": models["disco"], "planing": models["planing"]})
    s = np.load(tmp_path / "scores.npz")
    qcd = s["labels"] == 0
    corr = {k: dcor.distance_correlation_sqr(s[f"score_{k}"][qcd], s["mass"][qcd])
            for k in ("cnn", "cnn_disco", "cnn_planing")}
    assert corr["cnn_disco"] < 0.5 * corr["cnn"], corr
    # planing removes the mass as a discriminant only where both classes have jets (here
    # 50-110 GeV): QCD jets outside stay recognizable, so its output still follows the mass
    aucs = {k: metrics[k]["auc"] for k in ("cnn", "cnn_disco", "cnn_planing")}
    assert aucs["cnn_disco"] > 0.6 and aucs["cnn_planing"] > 0.6, (aucs, corr)
    assert "0.5" in metrics["cnn_planing"]["inv_jsd"]
    # the mass likelihood ratio sculpts the QCD mass most; the DisCo CNN much less
    assert metrics["cnn_disco"]["inv_jsd"]["0.5"] > 3 * metrics["mass"]["inv_jsd"]["0.5"]


def test_planing_weights_flatten_both_mass_spectra_and_equalize_pt():
    from jetimage.decorrelation.planing import planing_weights

    rng = np.random.default_rng(7)
    n = 20000
    y = (np.arange(n) % 2).astype(int)
    mass = np.where(y == 1, rng.normal(80, 25, n), 20 + rng.exponential(50, n))
    pt = np.where(y == 1, rng.uniform(250, 300, n), 250 + 50 * rng.beta(1, 3, n))
    m_edges, pt_edges = np.linspace(0, 300, 31), np.linspace(250, 300, 11)
    w = planing_weights(y, mass, pt, np.ones(n), m_edges, pt_edges)
    mass = np.clip(mass, 0, 299.0)  # the planing puts jets above the range in the last bin
    assert w[y == 1].sum() == pytest.approx(n / 2) and w[y == 0].sum() == pytest.approx(n / 2)
    hb = np.histogram(mass[y == 0], m_edges, weights=w[y == 0])[0]
    filled = np.histogram(mass[y == 0], m_edges)[0] > 0
    assert np.ptp(hb[filled]) < 0.05 * hb[filled].mean()  # flat where QCD has jets
    hs = np.histogram(mass[y == 1], m_edges, weights=w[y == 1])[0]
    both = (np.histogram(mass[y == 1], m_edges)[0] > 50) & filled
    assert np.std(hs[both]) < 0.3 * hs[both].mean()  # flat up to the pT reweighting
    ps = np.histogram(pt[y == 1], pt_edges, weights=w[y == 1])[0]
    pb = np.histogram(pt[y == 0], pt_edges, weights=w[y == 0])[0]
    np.testing.assert_allclose(ps / ps.sum(), pb / pb.sum(), atol=1e-9)
    raw = np.histogram(pt[y == 1], pt_edges)[0]
    assert np.abs(raw / raw.sum() - pb / pb.sum()).max() > 0.05  # they differed before


def test_variants_are_checked_by_the_configuration():
    from jetimage.config import ConfigError, validate

    from .conftest import tiny_event_config, tiny_raw_config

    raw = tiny_raw_config()
    raw["train"]["variants"] = [{"name": "d", "method": "disco"}, {"name": "d", "method": "planing"}]
    with pytest.raises(ConfigError, match="duplicate names"):
        validate(raw)
    raw["train"]["variants"] = [{"name": "d", "method": "disco"}]
    filled = validate(raw)["train"]["variants"][0]
    assert filled["lambda"] == 10.0 and filled["batch_size"] is None  # the defaults filled in
    ev = tiny_event_config()
    ev["train"]["variants"] = [{"name": "d", "method": "disco"}]
    with pytest.raises(ConfigError, match="kind jets only"):
        validate(ev)


def test_disco_variants_train_without_dropout_unless_told():
    """Dropout noise hides the output's mass dependence from the per-batch dCorr^2 (measured on the
    default run: 0.0025 in training mode against 0.094 at evaluation), so DisCo drops it."""
    from jetimage.models import zoo as models
    from jetimage.stages.train import variant_objective

    assert variant_objective(None) == (None, None)
    assert variant_objective({"method": "disco", "lambda": 3.0, "dropout": None}) == (3.0, 0.0)
    assert variant_objective({"method": "disco", "lambda": 3.0, "dropout": 0.2}) == (3.0, 0.2)
    assert variant_objective({"method": "planing", "lambda": 10.0, "dropout": None}) == (None, None)
    model = models.build("convnet", (25, 25, 1), dropout=0.0)
    rates = [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"]
    assert rates and all(r == 0.0 for r in rates)


def test_a_variant_overrides_the_training_settings_it_names_and_keeps_the_split():
    from jetimage.config import validate
    from jetimage.stages.train import variant_config, variant_of
    from jetimage.training.data import dataset_split, train_seed

    from .conftest import tiny_raw_config

    raw = tiny_raw_config()
    raw["train"].update(seed=0, epochs=7, variants=[
        {"name": "a", "method": "disco", "lambda": 5.0},
        {"name": "b", "method": "disco", "lambda": 5.0, "seed": 3, "epochs": 40,
         "learning_rate": 3e-4, "patience": 9, "batch_size": 512}])
    cfg = validate(raw)
    a = variant_config(cfg, variant_of(cfg, "a"))
    b = variant_config(cfg, variant_of(cfg, "b"))
    assert variant_config(cfg, None) is cfg
    assert a["train"] == cfg["train"]  # nothing of its own: the nominal settings
    assert {k: b["train"][k] for k in ("seed", "epochs", "learning_rate", "patience", "batch_size")} \
        == {"seed": 3, "epochs": 40, "learning_rate": 3e-4, "patience": 9, "batch_size": 512}
    assert cfg["train"]["epochs"] == 7 and cfg["train"]["seed"] == 0  # the study is left as it was
    assert train_seed(b) != train_seed(a) == train_seed(cfg)  # another initialization and order
    for part, rows in dataset_split(cfg, 1000).items():  # the same jets in every split
        np.testing.assert_array_equal(dataset_split(b, 1000)[part], rows)


def test_a_training_starts_from_a_trained_models_weights_or_names_the_file(tmp_path):
    from jetimage.formats.errors import InputError
    from jetimage.models import zoo as models
    from jetimage.stages.train import start_from

    trained = models.build("convnet", (25, 25, 1))  # dropout 0.2, random weights of one draw
    trained.save(tmp_path / "nominal.keras")
    fresh = models.build("convnet", (25, 25, 1), dropout=0.0)  # a DisCo variant's model
    pairs = list(zip(fresh.get_weights(), trained.get_weights(), strict=True))
    assert any(not np.array_equal(a, b) for a, b in pairs)
    start_from(fresh, tmp_path / "nominal.keras")
    for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = models.build("maxout", (25, 25, 1))
    with pytest.raises(InputError, match="nominal.keras: cannot start the training"):
        start_from(other, tmp_path / "nominal.keras")
    with pytest.raises(InputError, match="missing.keras"):
        start_from(fresh, tmp_path / "missing.keras")
