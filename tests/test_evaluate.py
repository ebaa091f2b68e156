"""ROC curves, rejections and likelihood-ratio baselines on distributions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jetimage.evaluate import auc, likelihood_ratio, rejection_at, roc_curve, tagger_metrics
from jetimage.train import balanced_weights, split_indices


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
