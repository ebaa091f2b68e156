"""The taggers each kind is compared with, scored on the same test examples as the CNN.

Jets (arXiv:1511.05190, arXiv:1407.5675):

- ``mass``, ``tau21``, ``delta_r``: one jet variable each (trimmed mass, tau21 with
  winner-take-all axes, Delta R of the two leading subjets), used through its binned likelihood
  ratio p_S(x)/p_B(x) from the training split, the optimal use of one variable;
- ``mass_tau21``: the 2D binned likelihood ratio of mass and tau21 (training split);
- ``fisher``: Fisher's linear discriminant on the pixels (training split);
- ``cnn_mass``: the 2D binned likelihood ratio of the CNN output and the mass, fit on the
  validation split (the CNN was trained on the training split, so its scores there are biased);
- ``cnn_bdt``: the CNN output and the ``evaluate.two_stage`` variables in a boosted decision tree
  fit on the validation split (:mod:`jetimage.evaluation.two_stage`; both kinds);
- ``tau21_ddt``: the designed decorrelated tau21' = tau21 - M rho' (arXiv:1603.00027), with
  rho' = log(m^2 / (pT * 1 GeV)) and the slope M fit to the QCD profile of the training split.

Events (arXiv:1711.03573): ``n_fatjets`` and ``mj`` (the sum of the fat-jet masses), and the
cut-based selection whose background efficiency sets the CNN's working point.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.config import Config, ConfigError, derive_seed
from jetimage.decorrelation.ddt import ddt_score, fit_ddt, rho_prime
from jetimage.evaluation.fisher import fit_fisher, image_pixels, use_fisher
from jetimage.evaluation.likelihood import (
    bins_2d,
    likelihood_ratio,
    likelihood_ratio_2d,
    pt_weights,
    quantile_edges,
)
from jetimage.evaluation.metrics import BOOTSTRAP_STREAM, FastROC, bootstrap_factor, factor_at_cut
from jetimage.formats.hdf5 import image_attrs, read_columns
from jetimage.physics.events import EVENT_VARIABLES
from jetimage.training.data import dataset_split, iterate_rows

log = logging.getLogger(__name__)

__all__ = ["BASELINES", "Examples", "KINDS", "TAGGERS", "TAGGERS_OF", "cut_based"]


#: Single-variable baselines: metrics name -> HDF5 column, with the range of the histogram.
BASELINES: dict[str, tuple[str, tuple[float, float]]] = {
    "mass": ("jet_m", (0.0, 300.0)),
    "tau21": ("tau21", (0.0, 1.0)),
    "delta_r": ("delta_r", (0.0, 1.5)),
}


#: Every tagger of ``metrics.json``, in the order of the plots' legends.
TAGGERS = ("cnn", "cnn_mass", "cnn_bdt", "fisher", "mass_tau21", "tau21", "delta_r", "mass", "tau21_ddt")


def _class_sigma(paths: Sequence[str | Path]) -> dict[int, float]:
    """Cross section (pb) of all generated examples per class (1 signal), from the file attributes."""
    out = {0: 0.0, 1: 0.0}
    for path in paths:
        attrs = image_attrs(path)
        out[1 if attrs["class"] == "signal" else 0] += float(attrs.get("sigma_pb", float("nan")))
    return out


@dataclass
class Examples:
    """What evaluation reads of the test examples: labels, weights, per-example columns, split."""

    labels: np.ndarray
    weights: np.ndarray
    columns: dict[str, np.ndarray]
    split: dict[str, np.ndarray]
    selected: np.ndarray  # (n,) bool: inside the selection (the jets' mass window; else all)


def _jet_examples(cfg: Config, paths: Sequence[str | Path]) -> Examples:
    ecfg = cfg["evaluate"]
    data = read_columns(paths, ["labels", "weights", "jet_m", "tau21", "delta_r", "jet_pt"])
    labels, weights = data.pop("labels").astype(int), data.pop("weights").astype(np.float64)
    window = ecfg["mass_window"]
    if window is not None and not window[0] < window[1]:
        raise ConfigError(f"evaluate.mass_window: {window} must be [lo, hi] with lo < hi (GeV)")
    mass = data["jet_m"].astype(np.float64)
    inside = (mass > window[0]) & (mass < window[1]) if window is not None else np.ones(len(mass), bool)
    if ecfg["reweight_pt"]:
        j = cfg["jets"]
        weights[inside] = pt_weights(data["jet_pt"][inside].astype(np.float64), labels[inside],
                                     weights[inside], ecfg["pt_bins"], (j["pt_min"], j["pt_max"]))
    return Examples(labels, weights, data, dataset_split(cfg, len(labels)), inside)


def _event_examples(cfg: Config, paths: Sequence[str | Path]) -> Examples:
    data = read_columns(paths, ["labels", "weights", *EVENT_VARIABLES])
    labels, weights = data.pop("labels").astype(int), data.pop("weights").astype(np.float64)
    return Examples(labels, weights, data, dataset_split(cfg, len(labels)), np.ones(len(labels), bool))


def _jet_baselines(cfg: Config, paths: Sequence[str | Path], ex: Examples, cnn: dict[str, np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Jet taggers on every test jet: likelihood ratios of the jet variables, Fisher, CNN + mass."""
    ecfg, y, w, c = cfg["evaluate"], ex.labels, ex.weights, ex.columns
    tr, va = (ex.split[k][ex.selected[ex.split[k]]] for k in ("train", "validation"))
    te = ex.split["test"]
    scores = {}
    for name, (column, value_range) in BASELINES.items():
        x = c[column].astype(np.float64)
        scores[name] = likelihood_ratio(x[tr], y[tr], w[tr], x[te], ecfg["likelihood_bins"], value_range)
    b2 = bins_2d(ecfg["likelihood_bins_2d"], len(tr))
    mt = np.c_[c["jet_m"], c["tau21"]].astype(np.float64)
    scores["mass_tau21"] = likelihood_ratio_2d(mt[tr], y[tr], w[tr], mt[te],
                                               (quantile_edges(mt[tr, 0], b2), quantile_edges(mt[tr, 1], b2)))
    n_pixels = image_pixels(paths[0])
    if use_fisher(ecfg, n_pixels):
        fisher = fit_fisher(paths, tr, y[tr], n_pixels)
        scores["fisher"] = np.concatenate([fisher.decision_function(im.reshape(len(im), -1))
                                           for _, im in iterate_rows(paths, te)])
    b2, mass = bins_2d(ecfg["likelihood_bins_2d"], len(va)), c["jet_m"].astype(np.float64)
    cm_val = np.c_[cnn["validation"], mass[va]]
    scores["cnn_mass"] = likelihood_ratio_2d(cm_val, y[va], w[va], np.c_[cnn["test"], mass[te]],
                                             (quantile_edges(cm_val[:, 0], b2), quantile_edges(mass[va], b2)))
    scores["tau21_ddt"], ddt = _ddt(ecfg["ddt"], c, y, w, tr, te)
    extra = {"selection": {"mass_window": ecfg["mass_window"], "reweight_pt": ecfg["reweight_pt"]},
             "ddt": ddt}
    return scores, extra


def _ddt(dcfg: dict[str, Any], c: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray,
         tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """DDT tau21 scores of the test jets, the slope fit to the QCD profile of the training split."""
    rho = rho_prime(c["jet_m"], c["jet_pt"])
    tau = c["tau21"].astype(np.float64)
    bkg = tr[y[tr] == 0]
    slope, intercept = fit_ddt(tau[bkg], rho[bkg], w[bkg], dcfg["fit_range"], dcfg["bins"])
    log.info("DDT: <tau21>(rho') = %.4f + %.4f rho' on %d QCD training jets", intercept, slope, len(bkg))
    return ddt_score(tau[te], rho[te], slope), {"slope": slope, "intercept": intercept,
                                                "fit_range": list(dcfg["fit_range"])}


def _event_baselines(cfg: Config, paths: Sequence[str | Path], ex: Examples, cnn: dict[str, np.ndarray]
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Event taggers: the number of fat jets, M_J; and the cut-based working point with the factor."""
    te = ex.split["test"]
    scores = {k: ex.columns[k][te].astype(np.float64) for k in ("n_fatjets", "mj")}
    return scores, cut_based(cfg, paths, cnn["test"], ex.labels[te], ex.weights[te],
                             ex.columns["cut_pass"][te].astype(bool), (ex.labels, ex.weights))


def cut_based(cfg: Config, paths: Sequence[str | Path], score: np.ndarray, y: np.ndarray,
              w: np.ndarray, cut: np.ndarray, stored: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """The CNN against the cut-based selection of arXiv:1711.03573 on the test events.

    Efficiencies are weighted. ``*_presel`` efficiencies are relative to the stored
    (preselected) events; the others are absolute: times the preselection efficiency (stored
    weight / cross section of the class). The CNN selection is "preselection and score > c", so
    its working point at the cut-based background efficiency compares like with like.
    ``factor`` = CNN signal efficiency / cut-based signal efficiency at that working point.
    ``stored`` holds the labels and weights of every stored event (all splits).
    """
    sigma = _class_sigma(paths)
    labels, weights = stored
    presel = {c: float(weights[labels == c].sum() / sigma[c])
              if np.isfinite(sigma[c]) and sigma[c] > 0 else float("nan") for c in (0, 1)}
    unknown = [n for c, n in ((1, "signal"), (0, "background")) if not np.isfinite(presel[c])]
    if unknown:  # was taken as 1, which made the absolute efficiencies the preselected ones
        log.warning("%s: no cross section of the %s class (an input without the run summary): the "
                    "absolute efficiencies are null", ", ".join(map(str, paths)), " and ".join(unknown))
    cs, cb, cnn_s = factor_at_cut(FastROC(score, y), y, w, cut)
    bkg_pass = (y == 0) & cut
    out: dict[str, Any] = {
        "cut_sig_eff": cs * presel[1], "cut_bkg_eff": cb * presel[0],
        "cnn_sig_eff_at_cut_bkg_eff": cnn_s * presel[1],
        "factor": cnn_s / cs if cs > 0 else float("nan"),
        "cut_sig_eff_presel": cs, "cut_bkg_eff_presel": cb, "cnn_sig_eff_at_cut_bkg_eff_presel": cnn_s,
        "presel_eff": {"signal": presel[1], "background": presel[0]},
        "n_passing_cuts": {"signal": int(((y == 1) & cut).sum()), "background": int(bkg_pass.sum())},
        "background_effective_entries_passing_cuts": float(
            w[bkg_pass].sum() ** 2 / max((w[bkg_pass] ** 2).sum(), 1e-300)),
        "sigma_pb": {"signal": sigma[1], "background": sigma[0]},
    }
    if not (np.isfinite(cs) and np.isfinite(cb)):
        log.warning("the cut-based efficiencies of the test events fall outside [0, 1] (negative weights): "
                    "they, the CNN working point and the factor are null")
        out.update(factor=float("nan"), cnn_sig_eff_at_cut_bkg_eff=float("nan"),
                   cnn_sig_eff_at_cut_bkg_eff_presel=float("nan"))
        return out
    if cs <= 0:
        log.warning("no signal test event passes the cut-based selection: the factor is null")
        return out
    if cb <= 0:  # the CNN's working point at eps_B = 0 does not exist
        log.warning("no background test event passes the cut-based selection: the CNN working point "
                    "and the factor are null")
        out.update(factor=float("nan"), cnn_sig_eff_at_cut_bkg_eff=float("nan"),
                   cnn_sig_eff_at_cut_bkg_eff_presel=float("nan"))
        return out
    out["bootstrap"] = bootstrap_factor(score, y, w, cut, cfg["evaluate"]["bootstrap"],
                                        derive_seed(cfg["seed"], BOOTSTRAP_STREAM))
    out["factor_err"] = out["bootstrap"].get("factor_std", float("nan"))
    log.info("cut-based eps_S %.4g eps_B %.3g; CNN eps_S at that eps_B %.4g: factor %.2f +- %.2f; "
             "%d background test events pass the cuts", out["cut_sig_eff"], out["cut_bkg_eff"],
             out["cnn_sig_eff_at_cut_bkg_eff"], out["factor"], out["factor_err"], bkg_pass.sum())
    return out


#: Per study kind: how the test examples are read, and the physics baselines beside the CNN.
KINDS = {"jets": (_jet_examples, _jet_baselines), "events": (_event_examples, _event_baselines)}


#: Every tagger of ``metrics.json`` per kind, in the order of the plots' legends.
TAGGERS_OF = {"jets": TAGGERS, "events": ("cnn", "cnn_bdt", "n_fatjets", "mj")}
