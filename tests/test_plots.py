"""The figures of both kinds of study: every file written as a real PDF and PNG, the workflow's
list of figures, and the cut arithmetic."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from jetimage.config import validate
from jetimage.stages import plots

from .conftest import REPO, tiny_event_config, tiny_raw_config

HISTORY = {"loss": [0.6, 0.4], "val_loss": [0.5, 0.45], "auc": [0.8, 0.9], "val_auc": [0.85, 0.88]}


def _scores(n=3000, seed=0):
    """A fake scores file of a jet study (jetimage.evaluate.evaluate)."""
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


def _event_scores(n=2000, seed=1, pixels=16):
    """A fake scores file of an event study: the event variables and the cut-based decision."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    n_fatjets = np.r_[rng.poisson(4.5, n), rng.poisson(3.2, n)]
    mj = np.r_[rng.normal(900, 150, n), rng.exponential(400, n)]
    cnn = 1 / (1 + np.exp(-(np.r_[rng.normal(1.5, 1, n), rng.normal(-1, 1, n)])))
    return {
        "labels": y, "weights": np.r_[np.full(n, 0.002), np.full(n, 5.0)], "in_window": np.ones(2 * n, bool),
        "n_fatjets": n_fatjets, "mj": mj, "lead_pt": rng.uniform(440, 900, 2 * n),
        "deta12": rng.uniform(0, 1.4, 2 * n), "cut_pass": ((n_fatjets >= 4) & (mj > 800)).astype(np.int8),
        "event": np.arange(2 * n),
        "score_cnn": cnn, "score_n_fatjets": n_fatjets.astype(np.float64), "score_mj": mj,
        "mean_image_signal": rng.exponential(1, (pixels, pixels)),
        "mean_image_background": rng.exponential(1, (pixels, pixels)),
        "corr_cnn_pixel": rng.uniform(-0.3, 0.3, (pixels, pixels)),
    }


def test_cut_thresholds_keep_the_requested_signal_efficiency():
    s = _scores()
    y, w, cnn = s["labels"], s["weights"], s["score_cnn"]
    for eff, cut in zip((0.8, 0.5, 0.3), plots.cut_thresholds(cnn, y, w, (0.8, 0.5, 0.3)), strict=True):
        assert (cnn[y == 1] >= cut).mean() == pytest.approx(eff, abs=0.01)


def _study(kind: str):
    if kind == "jets":
        raw = tiny_raw_config()
        raw["evaluate"]["mass_window"] = [65, 95]
        return validate(raw), _scores()
    return validate(tiny_event_config()), _event_scores()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["jets", "events"])
def test_draw_writes_every_figure_of_the_kind_as_pdf_and_png(tmp_path, kind):
    cfg, scores = _study(kind)
    assert cfg.kind == kind
    written = plots.draw(cfg, scores, HISTORY, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{ext}" for name in plots.FIGURES[kind] for ext in ("pdf", "png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    for name in plots.FIGURES[kind]:
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (tmp_path / f"{name}.png").stat().st_size > 20_000
    assert not list(tmp_path.glob(".*tmp*"))


def test_the_kinds_have_their_own_figures():
    assert {"cnn_vs_mass", "cnn_vs_tau21", "cnn_vs_delta_r"} <= set(plots.FIGURES["jets"])
    assert {"cnn_vs_n_fatjets", "cnn_vs_mj"} <= set(plots.FIGURES["events"])
    assert "cnn_vs_n_fatjets" not in plots.FIGURES["jets"] and "cnn_vs_mass" not in plots.FIGURES["events"]
    common = {"roc", "mean_images", "pixel_correlation", "training", "cnn_output"}
    for kind in ("jets", "events"):
        assert common <= set(plots.FIGURES[kind])


@pytest.mark.slow
def test_draw_one_figure_and_refuse_an_unknown_one(tmp_path):
    cfg, scores = _study("events")
    written = plots.draw(cfg, scores, None, tmp_path, ["cnn_vs_mj"])
    assert sorted(p.name for p in written) == ["cnn_vs_mj.pdf", "cnn_vs_mj.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn_vs_mj.pdf", "cnn_vs_mj.png"]
    with pytest.raises(ValueError, match="cnn_vs_mass"):
        plots.draw(cfg, scores, HISTORY, tmp_path, ["cnn_vs_mass"])  # a jet figure
    with pytest.raises(ValueError, match="training history"):
        plots.draw(cfg, scores, None, tmp_path, ["training"])
    # without a history every figure but the training curves is drawn
    written = plots.draw(cfg, scores, None, tmp_path / "all")
    assert {p.stem for p in written} == set(plots.FIGURES["events"]) - {"training"}


def test_the_workflow_lists_the_figures_of_the_package():
    """workflow/rules/common.smk lists the figures itself (no matplotlib import at parse time)."""
    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    match = re.search(r"^FIGURES = (\{.*?^\})", text, re.MULTILINE | re.DOTALL)
    assert match, "no FIGURES dict in common.smk"
    listed = ast.literal_eval(match.group(1))
    assert listed == {kind: list(table) for kind, table in plots.FIGURES.items()}


def test_every_figure_has_its_report_caption():
    """The plotting rules caption each figure's PNG in the report with its own file."""
    captions = REPO / "workflow" / "report" / "figures"
    names = {name for table in plots.FIGURES.values() for name in table}
    assert {p.stem for p in captions.glob("*.rst")} == names
    for name in names:
        assert (captions / f"{name}.rst").read_text().strip(), name


def test_selection_text_names_the_windows():
    text = plots.selection_text(250, 300, 2.0, [65, 95])
    assert "250 < $p_T$ < 300 GeV" in text and "65 < $m$ < 95 GeV" in text
    assert "$m$" not in plots.selection_text(250, 300)


def test_sculpting_figure_leaves_out_a_tagger_whose_figure_is_undefined(tmp_path, caplog):
    import logging

    cfg, scores = _study("jets")
    # a decorrelated tagger blind to the mass, and one whose cut passes every QCD jet
    # (no failing background: the JSD is undefined)
    rng = np.random.default_rng(5)
    scores = {**scores, "score_blind": rng.uniform(0, 1, len(scores["labels"])),
              "score_constant": np.ones(len(scores["labels"]))}
    with caplog.at_level(logging.WARNING):
        written = plots.draw(cfg, scores, None, tmp_path, ["sculpting"])
    assert sorted(p.name for p in written) == ["sculpting.pdf", "sculpting.png"]
    assert "constant has 1/eps_B, 1/JSD" in caplog.text and "blind" not in caplog.text
    assert (tmp_path / "sculpting.png").stat().st_size > 20_000
