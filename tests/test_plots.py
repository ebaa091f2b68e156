"""The jet-study figures: every file written as a real PDF and PNG, and the cut arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from jetimage import plots
from jetimage.config import validate

from .conftest import tiny_raw_config


def _scores(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    mass = np.r_[rng.normal(80, 8, n), rng.exponential(50, n)]
    cnn = 1 / (1 + np.exp(-(np.r_[rng.normal(1.5, 1, n), rng.normal(-1, 1, n)])))
    out = {
        "labels": y, "weights": np.ones(2 * n), "in_window": (mass > 65) & (mass < 95),
        "mass": mass, "tau21": rng.uniform(0, 1, 2 * n), "delta_r": rng.uniform(0.2, 1.0, 2 * n),
        "jet_pt": rng.uniform(250, 300, 2 * n),
        "mean_image_signal": rng.exponential(1, (25, 25)),
        "mean_image_background": rng.exponential(1, (25, 25)),
        "corr_cnn_pixel": rng.uniform(-0.3, 0.3, (25, 25)),
    }
    for name in ("cnn", "cnn_mass", "fisher", "mass_tau21", "tau21", "delta_r", "mass"):
        out[f"score_{name}"] = cnn if name == "cnn" else cnn + rng.normal(0, 0.3, 2 * n)
    return out


def test_cut_thresholds_keep_the_requested_signal_efficiency():
    s = _scores()
    y, w, cnn = s["labels"], s["weights"], s["score_cnn"]
    for eff, cut in zip((0.8, 0.5, 0.3), plots.cut_thresholds(cnn, y, w, (0.8, 0.5, 0.3)), strict=True):
        assert (cnn[y == 1] >= cut).mean() == pytest.approx(eff, abs=0.01)


def test_jet_plots_writes_every_figure_as_pdf_and_png(tmp_path):
    raw = tiny_raw_config()
    raw["evaluate"]["mass_window"] = [65, 95]
    cfg = validate(raw)
    history = {"loss": [0.6, 0.4], "val_loss": [0.5, 0.45], "auc": [0.8, 0.9], "val_auc": [0.85, 0.88]}
    written = plots.jet_plots(cfg, _scores(), history, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{ext}" for name in plots.JET_PLOTS for ext in ("pdf", "png"))
    for name in plots.JET_PLOTS:
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (tmp_path / f"{name}.png").stat().st_size > 20_000
    assert not list(tmp_path.glob(".*tmp*"))


def test_selection_text_names_the_windows():
    text = plots.selection_text(250, 300, 2.0, [65, 95])
    assert "250 < $p_T$ < 300 GeV" in text and "65 < $m$ < 95 GeV" in text
    assert "$m$" not in plots.selection_text(250, 300)
