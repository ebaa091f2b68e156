"""The jet mass and the taggers: the sculpting metric, DDT, DisCo and planing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from jetimage.decorrelation import Sculpting, jensen_shannon, mass_edges, sculpting_metrics


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
    from jetimage.decorrelation import rho_prime

    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    pt = rng.uniform(250, 300, n)
    mass = np.where(y == 1, rng.normal(80, 8, n), 10 + rng.exponential(45, n))
    rho = rho_prime(mass, pt)
    tau = np.where(y == 1, rng.normal(0.4, 0.1, n), 0.25 + 0.08 * rho + rng.normal(0, 0.1, n))
    return y, mass, pt, rho, tau, np.ones(n)


def test_ddt_fit_recovers_the_qcd_slope_and_decorrelates():
    from jetimage.decorrelation import ddt_score, fit_ddt

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
    from jetimage.decorrelation import ddt_score, fit_ddt, rho_prime

    with pytest.raises(ValueError, match="evaluate.ddt"):
        fit_ddt(np.array([0.5, 0.6]), np.array([2.0, 2.01]), np.ones(2), (1.5, 4.5), 15)
    rho = rho_prime(np.array([0.0, 50.0, 80.0]), np.array([275.0, 275.0, 275.0]))
    assert np.isnan(rho[0]) and rho[1] == pytest.approx(np.log(2500 / 275))
    s = ddt_score(np.array([0.3, 0.5, np.nan]), rho, 0.1)
    assert np.isfinite(s).all() and s[0] < s[1] and s[2] < s[1]
