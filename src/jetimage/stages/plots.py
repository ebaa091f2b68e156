"""Figures in HEP style (mplhep), each written as PDF and PNG.

One function per figure; each takes arrays (not files) and an output stem ``path/name``
to which ``.pdf`` and ``.png`` are added. Files are written atomically. :func:`draw` draws the
figures of a study's kind (:data:`FIGURES`) from the scores file of
:func:`jetimage.evaluate.evaluate` and the training history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
# mplhep's sqrt(s) label makes mathtext warn about a glyph (the PDF is fine) 50 times per job, which
# the end-of-run warning summary then repeats: keep the job logs to our own warnings
logging.getLogger("matplotlib.mathtext").setLevel(logging.ERROR)
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from jetimage.decorrelation.sculpting import Sculpting  # noqa: E402
from jetimage.evaluation.baselines import TAGGERS_OF  # noqa: E402
from jetimage.evaluation.metrics import FastROC, rejection_at, roc_curve  # noqa: E402
from jetimage.formats.atomic import atomic_paths  # noqa: E402
from jetimage.stages.evaluate import sculpting_edges  # noqa: E402

#: Display names of the taggers.
LABELS = {
    "cnn": "CNN (jet image)",
    "cnn_mass": "CNN + mass",
    "cnn_vars": "CNN + variables (one network)",
    "cnn_bdt": "CNN + variables (BDT)",
    "fisher": "Fisher discriminant (image)",
    "mass_tau21": r"Mass + $\tau_{21}$",
    "tau21": r"$\tau_{21}$",
    "delta_r": r"$\Delta R$(subjets)",
    "mass": "Trimmed jet mass",
    "tau21_ddt": r"DDT $\tau_{21}'$",
    "n_fatjets": r"$N_{\mathrm{fat\ jet}}$",
    "mj": r"$M_J$",
}


def save_figure(fig, stem: str | Path, suffixes: Sequence[str] = (".pdf", ".png")) -> list[Path]:
    out = [Path(f"{stem}{suffix}") for suffix in suffixes]
    try:
        with atomic_paths(*out) as tmps:  # every format or none
            for tmp, suffix in zip(tmps, suffixes, strict=True):
                fig.savefig(tmp, dpi=150, format=suffix[1:])
    finally:
        plt.close(fig)
    return out


def _label(ax, text: str, sqrt_s_tev: float = 13.0, loc: str = "lower left") -> None:
    hep.label.exp_label(exp="jetimage", llabel="Simulation", rlabel=rf"$\sqrt{{s}}$ = {sqrt_s_tev:g} TeV",
                        ax=ax)
    x, ha = (0.04, "left") if "left" in loc else (0.96, "right")
    y, va = (0.04, "bottom") if "lower" in loc else (0.96, "top")
    ax.text(x, y, text, transform=ax.transAxes, fontsize=12, va=va, ha=ha)


def selection_text(pt_min: float, pt_max: float, eta_max: float | None = None,
                   mass_window: Sequence[float] | None = None) -> str:
    """The selection printed on the figures: pT window (GeV), |eta| and the mass window."""
    text = rf"{pt_min:g} < $p_T$ < {pt_max:g} GeV"
    if eta_max is not None:
        text += rf", $|\eta|$ < {eta_max:g}"
    if mass_window is not None:
        text += "\n" + rf"{mass_window[0]:g} < $m$ < {mass_window[1]:g} GeV"
    return text


def roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], stem: str | Path,
        text: str = "", sqrt_s_tev: float = 13.0, reference: str | None = "mass_tau21",
        points: Mapping[str, tuple[float, float]] | None = None,
        labels: Mapping[str, str] | None = None) -> list[Path]:
    """Background rejection 1/eps_B against signal efficiency eps_S, log scale.

    Parameters
    ----------
    curves
        Tagger name -> (eps_s, eps_b) arrays, increasing.
    stem
        Output path without suffix.
    text
        Selection text printed in the corner (pT window, mass window).
    reference
        Tagger to which a lower panel gives the ratio of rejections (skipped when absent).
    points
        Name -> (eps_s, eps_b) of single working points drawn as stars (a cut-based selection).
    labels
        Legend names that replace those of :data:`LABELS`.
    """
    names = {**LABELS, **(labels or {})}
    hep.style.use("ATLAS")
    ratio = reference is not None and reference in curves
    if ratio:
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(8, 9), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    else:
        fig, ax = plt.subplots(figsize=(8, 7))
    grid = np.linspace(0.05, 1.0, 400)

    def rejection(eps_s: np.ndarray, eps_b: np.ndarray) -> np.ndarray:
        # 1/eps_B on a common eps_S grid, interpolated as in evaluate.rejection_at
        i = np.clip(np.searchsorted(eps_s, grid, side="left"), 1, len(eps_s) - 1)
        lo, hi = eps_s[i - 1], eps_s[i]
        f = np.where(hi > lo, (grid - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
        eb = eps_b[i - 1] + f * (eps_b[i] - eps_b[i - 1])
        return np.where(eb > 0, 1.0 / np.maximum(eb, 1e-300), np.nan)

    ref = rejection(*curves[reference]) if ratio and reference is not None else None
    eps_s: np.ndarray | float  # arrays of the curves, then numbers of the points
    eps_b: np.ndarray | float
    for name, (eps_s, eps_b) in curves.items():
        r = rejection(eps_s, eps_b)
        (line,) = ax.plot(grid, r, label=names.get(name, name), lw=2)
        if ratio:
            rax.plot(grid, r / ref, lw=2, color=line.get_color())
    for name, (eps_s, eps_b) in (points or {}).items():
        if eps_b > 0:
            ax.plot([eps_s], [1.0 / eps_b], "k*", ms=16, label=name)
    ax.set_yscale("log")
    ax.set_xlim(0.05, 1.0)
    ax.set_ylim(bottom=1.0)
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
    ax.legend(loc="upper right", fontsize=12)
    _label(ax, text, sqrt_s_tev)
    if ratio:
        assert reference is not None  # ratio implies a reference
        rax.axhline(1.0, color="grey", lw=1, ls="--")
        rax.set_ylabel(f"Ratio to\n{names.get(reference, reference)}", fontsize=12)
        rax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        rax.set_ylim(0.0, 3.0)
    else:
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
    return save_figure(fig, stem)


def cut_thresholds(score: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   efficiencies: Sequence[float]) -> list[float]:
    """Cuts ``score > c`` keeping the given signal efficiencies (weighted quantiles)."""
    s, w = score[labels == 1], weights[labels == 1]
    order = np.argsort(s)
    cum = np.cumsum(w[order]) / max(w.sum(), 1e-300)
    return [float(np.interp(1.0 - e, cum, s[order])) for e in efficiencies]


def cnn_vs_variable(score: np.ndarray, x: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    stem: str | Path, xlabel: str, edges: np.ndarray, text: str = "",
                    sqrt_s_tev: float = 13.0,
                    efficiencies: Sequence[float] = (1.0, 0.8, 0.5, 0.3),
                    classes: tuple[str, str] = ("W jets", "QCD jets")) -> list[Path]:
    """Does the CNN sculpt the distribution of ``x``? (arXiv:1511.05190, figures 9-11.)

    Left: the 2D distribution of CNN output and ``x`` for QCD jets, normalized to unity in each
    CNN-output bin (a column shows the ``x`` distribution of the QCD jets with that output).
    Middle and right: the ``x`` distributions of QCD and W jets after successive cuts on the
    CNN output, which keep the signal efficiencies ``efficiencies``, each normalized to unity.

    Parameters
    ----------
    score, x, labels, weights
        ``(n,)`` CNN output, variable (NaN allowed: left out), labels and weights.
    edges
        Bin edges of ``x``.
    """
    hep.style.use("ATLAS")
    fig, axes = plt.subplots(1, 3, figsize=(22, 7))
    ok = np.isfinite(x)
    s_edges = np.linspace(0.0, 1.0, 21)
    qcd = ok & (labels == 0)
    h, _, _ = np.histogram2d(np.clip(score[qcd], 0, 1), np.clip(x[qcd], edges[0], edges[-1]),
                             bins=(s_edges, edges), weights=weights[qcd])
    h = h / np.where(h.sum(axis=1, keepdims=True) > 0, h.sum(axis=1, keepdims=True), 1.0)
    mesh = axes[0].pcolormesh(s_edges, edges, h.T, cmap="viridis")
    fig.colorbar(mesh, ax=axes[0], label=f"Fraction of {classes[1]} in the CNN-output bin")
    axes[0].set_xlabel("CNN output")
    axes[0].set_ylabel(xlabel)
    _label(axes[0], classes[1], sqrt_s_tev, loc="upper right")
    cuts = cut_thresholds(score, labels, weights, efficiencies)
    for ax, cls, name in ((axes[1], 0, classes[1]), (axes[2], 1, classes[0])):
        for eff, cut in zip(efficiencies, cuts, strict=True):
            sel = ok & (labels == cls) & (score >= cut if eff < 1 else np.ones_like(ok))
            if sel.sum() == 0:
                continue
            counts, _ = np.histogram(np.clip(x[sel], edges[0], edges[-1]), edges, weights=weights[sel])
            hep.histplot(counts, edges, density=True, ax=ax, lw=2,
                         label=("no cut" if eff >= 1 else rf"CNN cut: $\varepsilon_S$ = {eff:g}"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Normalized to unity")
        ax.set_xlim(edges[0], edges[-1])
        ax.legend(loc="upper right", fontsize=12, title=name)
        _label(ax, text, sqrt_s_tev, loc="upper left" if cls == 0 else "upper left")
    fig.tight_layout()
    return save_figure(fig, stem)


def mean_images(signal: np.ndarray, background: np.ndarray, stem: str | Path,
                extent: tuple[float, float, float, float] | None = None,
                sqrt_s_tev: float = 13.0, text: str = "", classes: tuple[str, str] = ("W jets", "QCD jets"),
                axes_names: tuple[str, str] = (r"Translated pseudorapidity $\eta$",
                                               r"Translated azimuth $\phi$")) -> list[Path]:
    """Mean signal image, mean background image (log colour scale) and their difference.

    Parameters
    ----------
    signal, background
        ``(n_eta, n_phi)`` weighted mean pixel intensities (GeV).
    extent
        ``(eta_lo, eta_hi, phi_lo, phi_hi)`` of the image edges relative to the centre.
    """
    hep.style.use("ATLAS")
    fig, axes = plt.subplots(1, 3, figsize=(22, 6.5))
    pos = np.concatenate([signal[signal > 0], background[background > 0]])
    vmin = float(pos.min()) if len(pos) else 1e-3
    vmax = float(pos.max()) if len(pos) else 1.0
    for ax, img, title in ((axes[0], signal, classes[0]), (axes[1], background, classes[1])):
        im = ax.imshow(np.where(img > 0, img, np.nan).T, origin="lower", extent=extent,
                       norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10)),
                       cmap="viridis")
        fig.colorbar(im, ax=ax, label="Mean pixel intensity [GeV]")
        ax.set_title(title, fontsize=15)
    diff = signal - background
    lim = float(np.abs(diff).max()) or 1.0
    im = axes[2].imshow(diff.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=axes[2], label="Signal - background [GeV]")
    axes[2].set_title("Difference", fontsize=15)
    for ax in axes:
        ax.set_xlabel(axes_names[0] if extent else r"$\eta$ pixel")
        ax.set_ylabel(axes_names[1] if extent else r"$\phi$ pixel")
    fig.suptitle(rf"jetimage Simulation, $\sqrt{{s}}$ = {sqrt_s_tev:g} TeV, "
                 + text.replace("\n", ", "), fontsize=14)
    fig.tight_layout()
    return save_figure(fig, stem)


def pixel_correlation(corr: np.ndarray, stem: str | Path,
                      extent: tuple[float, float, float, float] | None = None,
                      sqrt_s_tev: float = 13.0, text: str = "",
                      axes_names: tuple[str, str] = (r"Translated pseudorapidity $\eta$",
                                                     r"Translated azimuth $\phi$")) -> list[Path]:
    """Per-pixel Pearson correlation of the CNN output with the pixel intensity
    (``(n_eta, n_phi)``, between -1 and 1; arXiv:1511.05190, figure 8)."""
    hep.style.use("ATLAS")
    fig, ax = plt.subplots(figsize=(9, 7.5))
    lim = max(float(np.abs(corr).max()), 1e-3)
    im = ax.imshow(corr.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, label="Correlation of CNN output with pixel intensity")
    ax.set_xlabel(axes_names[0] if extent else r"$\eta$ pixel")
    ax.set_ylabel(axes_names[1] if extent else r"$\phi$ pixel")
    ax.set_title(rf"$\sqrt{{s}}$ = {sqrt_s_tev:g} TeV, " + text.replace("\n", ", "), fontsize=12)
    return save_figure(fig, stem)


def training_curves(history: Mapping[str, Sequence[float]], stem: str | Path,
                    sqrt_s_tev: float = 13.0) -> list[Path]:
    """Loss and AUC per epoch for the training and validation splits (from ``history.json``)."""
    hep.style.use("ATLAS")
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    for ax, key, ylabel in ((axes[0], "loss", "Weighted binary cross-entropy"),
                            (axes[1], "auc", "AUC")):
        for prefix, name in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + key)
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, "o-", lw=2, label=name)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
        hep.label.exp_label(exp="jetimage", llabel="Simulation",
                            rlabel=rf"$\sqrt{{s}}$ = {sqrt_s_tev:g} TeV", ax=ax)
    fig.tight_layout()
    return save_figure(fig, stem)


def cnn_output(score: np.ndarray, labels: np.ndarray, weights: np.ndarray, stem: str | Path,
               text: str = "", sqrt_s_tev: float = 13.0,
               classes: tuple[str, str] = ("W jets", "QCD jets")) -> list[Path]:
    """CNN output distributions of signal and background test examples, each normalized to unity."""
    hep.style.use("ATLAS")
    fig, ax = plt.subplots(figsize=(8, 7))
    edges = np.linspace(0.0, 1.0, 41)
    for cls, name in ((1, classes[0]), (0, classes[1])):
        sel = labels == cls
        if sel.any():
            counts, _ = np.histogram(np.clip(score[sel], 0, 1), edges, weights=weights[sel])
            hep.histplot(counts, edges, density=True, ax=ax, lw=2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("CNN output")
    ax.set_ylabel("Normalized to unity")
    ax.legend(loc="upper center")
    _label(ax, text, sqrt_s_tev, loc="upper left")
    return save_figure(fig, stem)


@dataclass
class _Context:
    """What every figure of one study reads: its config, scores, history and texts."""

    cfg: Mapping[str, Any]
    scores: Mapping[str, np.ndarray]
    history: Mapping[str, Sequence[float]] | None
    outdir: Path

    def __post_init__(self) -> None:
        s = self.scores
        self.y, self.w = s["labels"].astype(int), s["weights"].astype(np.float64)
        self.win = s["in_window"].astype(bool) if "in_window" in s else np.ones(len(self.y), bool)
        self.cnn = s["score_cnn"].astype(np.float64)
        self.sqrt_s = self.cfg["generation"]["sqrt_s"] / 1000
        kind = self.cfg["kind"]
        self.classes = ("W jets", "QCD jets") if kind == "jets" else ("Signal events", "Background events")
        if kind == "jets":
            j = self.cfg["jets"]
            window = self.cfg["evaluate"]["mass_window"]
            self.text = selection_text(j["pt_min"], j["pt_max"], j["eta_max"], window)
            self.text_all = selection_text(j["pt_min"], j["pt_max"], j["eta_max"])
        else:
            self.text = self.text_all = "After the preselection"

    def stem(self, name: str) -> Path:
        return self.outdir / name

    def extent(self) -> tuple[float, float, float, float]:
        im = self.cfg["images"]
        if self.cfg["kind"] == "events":
            return (-im["eta_max"], im["eta_max"], -np.pi, np.pi)
        return (-im["n_eta"] * im["pixel_eta"] / 2, im["n_eta"] * im["pixel_eta"] / 2,
                -im["n_phi"] * im["pixel_phi"] / 2, im["n_phi"] * im["pixel_phi"] / 2)

    def axes_names(self) -> tuple[str, str]:
        if self.cfg["kind"] == "events":
            return (r"Pseudorapidity $\eta$", r"Azimuth $\phi$")
        return (r"Translated pseudorapidity $\eta$", r"Translated azimuth $\phi$")


def _roc(c: _Context) -> list[Path]:
    names = [k.removeprefix("score_") for k in c.scores if k.startswith("score_")]
    order = [n for n in LABELS if n in names] + [n for n in names if n not in LABELS]
    curves = {n: roc_curve(c.scores[f"score_{n}"][c.win], c.y[c.win], c.w[c.win]) for n in order}
    points = None
    if "cut_pass" in c.scores:
        cut, sig = c.scores["cut_pass"].astype(bool), c.y == 1
        eps = [c.w[m & cut].sum() / max(c.w[m].sum(), 1e-300) for m in (sig, ~sig)]
        points = {"Cut-based selection": (float(eps[0]), float(eps[1]))}
    labels = {"cnn": "CNN (event image)"} if c.cfg["kind"] == "events" else None
    return roc(curves, c.stem("roc"), text=c.text, sqrt_s_tev=c.sqrt_s, points=points, labels=labels)


def _cnn_vs(var: str, label: str, edges: np.ndarray) -> Any:
    def draw(c: _Context) -> list[Path]:
        return cnn_vs_variable(c.cnn, c.scores[var].astype(np.float64), c.y, c.w, c.stem(f"cnn_vs_{var}"),
                               label, edges, c.text_all, c.sqrt_s, classes=c.classes)
    return draw


def _mean_images(c: _Context) -> list[Path]:
    return mean_images(c.scores["mean_image_signal"], c.scores["mean_image_background"],
                       c.stem("mean_images"), c.extent(), c.sqrt_s, c.text, classes=c.classes,
                       axes_names=c.axes_names())


def _pixel_correlation(c: _Context) -> list[Path]:
    return pixel_correlation(c.scores["corr_cnn_pixel"], c.stem("pixel_correlation"), c.extent(),
                             c.sqrt_s, c.text, axes_names=c.axes_names())


def _training(c: _Context) -> list[Path]:
    if c.history is None:
        raise ValueError("the training figure needs the training history (history.json)")
    return training_curves(c.history, c.stem("training"), c.sqrt_s)


def _cnn_output(c: _Context) -> list[Path]:
    return cnn_output(c.cnn[c.win], c.y[c.win], c.w[c.win], c.stem("cnn_output"), c.text, c.sqrt_s,
                      classes=c.classes)


def sculpting_plane(points: Mapping[str, tuple[float, float, float, float]],
                    masses: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
                    edges: np.ndarray, stem: str | Path, efficiency: float = 0.5, text: str = "",
                    sqrt_s_tev: float = 13.0) -> list[Path]:
    """Background rejection against mass decorrelation, and the QCD mass after the cut.

    Left: every tagger in the (1/eps_B, 1/JSD) plane at the cut keeping the signal efficiency
    ``efficiency`` (arXiv:2001.05310; up and right is better), with bootstrap error bars. Right:
    the QCD jet-mass distribution before any cut and after the cut of the nominal CNN and of each
    decorrelated tagger, each normalized to unity.

    Parameters
    ----------
    points
        Tagger -> ``(1/eps_B, its error, 1/JSD, its error)``; only finite values are given.
    masses, weights
        Label (``"no cut"`` or a tagger) -> ``(n,)`` masses (GeV) and weights of the QCD jets.
    edges
        Mass bin edges (GeV).
    """
    hep.style.use("ATLAS")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(17, 7.5))
    colours = plt.cm.tab20(np.linspace(0.0, 1.0, 20))
    for k, (name, (r, dr, j, dj)) in enumerate(points.items()):
        ax.errorbar([r], [j], xerr=[dr], yerr=[dj], fmt="osD^vPX*"[k % 8], ms=8,
                    color=colours[(2 * k) % 20 + (k // 10) % 2], label=LABELS.get(name, name))
        ax.annotate(LABELS.get(name, name), (r, j), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(rf"Background rejection $1/\varepsilon_B$ at $\varepsilon_S$ = {efficiency:g}")
    ax.set_ylabel(r"Mass decorrelation $1/\mathrm{JSD}$ (QCD, pass vs fail)")
    ax.legend(loc="lower left", fontsize=10, ncol=2)
    _label(ax, text, sqrt_s_tev, loc="upper right")
    for name, m in masses.items():
        counts, _ = np.histogram(m, edges, weights=weights[name])
        if counts.sum() > 0:
            hep.histplot(counts, edges, density=True, ax=bx, lw=2, label=LABELS.get(name, name))
    bx.set_xlabel("Trimmed jet mass [GeV]")
    bx.set_ylabel("QCD jets, normalized to unity")
    bx.set_xlim(edges[0], edges[-1])
    bx.legend(loc="upper right", fontsize=11, title=rf"after the cut at $\varepsilon_S$ = {efficiency:g}")
    _label(bx, text, sqrt_s_tev, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, stem)


def _sculpting(c: _Context) -> list[Path]:
    """The (1/eps_B, 1/JSD) plane of every tagger of the scores file and the QCD mass after the
    cuts (first sculpting efficiency); taggers with an infinite or undefined figure are left out
    with a warning."""
    ecfg = c.cfg["evaluate"]
    eff, edges = ecfg["sculpting"]["efficiencies"][0], sculpting_edges(c.cfg)
    y, w, mass = c.y[c.win], c.w[c.win], c.scores["mass"][c.win].astype(np.float64)
    rng = np.random.default_rng(c.cfg["seed"])
    reps = [w * rng.poisson(1.0, len(w)) for _ in range(max(ecfg["bootstrap"], 2))]
    names = [k.removeprefix("score_") for k in c.scores if k.startswith("score_")]
    points, qcd = {}, y == 0
    masses, weights = {"no cut": mass[qcd]}, {"no cut": w[qcd]}
    for name in names:
        score = c.scores[f"score_{name}"][c.win].astype(np.float64)
        roc, sc = FastROC(score, y), Sculpting(score, y, mass, edges)
        values = np.array([[rejection_at(*roc.curve(v), eff), sc.inv_jsd(v, eff)] for v in [w, *reps]])
        if not np.isfinite(values[0]).all():
            logging.getLogger(__name__).warning("sculpting figure: %s has 1/eps_B, 1/JSD = %s: "
                                                "left out", name, values[0].tolist())
            continue
        err = [float(np.std(col[np.isfinite(col)], ddof=1)) for col in values[1:].T]
        points[name] = (values[0, 0], err[0], values[0, 1], err[1])
        if name in ("cnn", "tau21_ddt") or name not in TAGGERS_OF["jets"]:  # nominal CNN, decorrelated
            cut = sc.passing(w, eff)
            masses[name], weights[name] = mass[qcd & cut], w[qcd & cut]
    return sculpting_plane(points, masses, weights, edges, c.stem("sculpting"), eff, c.text_all,
                           c.sqrt_s)


def _figures(sculpting: dict[str, Any]) -> dict[str, Any]:
    """The figures of a kind in the order of the report: the ROC, the kind's sculpting figures, then
    the figures every kind has."""
    return {"roc": _roc, **sculpting, "mean_images": _mean_images, "pixel_correlation": _pixel_correlation,
            "training": _training, "cnn_output": _cnn_output}


#: The figures of each kind of study: file stem under ``plots/`` -> drawing function.
FIGURES: dict[str, dict[str, Any]] = {
    "jets": _figures({
        "cnn_vs_mass": _cnn_vs("mass", "Trimmed jet mass [GeV]", np.linspace(0.0, 200.0, 41)),
        "cnn_vs_tau21": _cnn_vs("tau21", r"$\tau_{21}$", np.linspace(0.0, 1.0, 26)),
        "cnn_vs_delta_r": _cnn_vs("delta_r", r"$\Delta R$ between the two leading subjets",
                                  np.linspace(0.0, 1.2, 25)),
        "sculpting": _sculpting}),
    "events": _figures({
        "cnn_vs_n_fatjets": _cnn_vs("n_fatjets", r"$N_{\mathrm{fat\ jet}}$", np.arange(-0.5, 10.5)),
        "cnn_vs_mj": _cnn_vs("mj", r"$M_J$ [GeV]", np.linspace(0.0, 2000.0, 41))}),
}
#: Figures of the jet study, in the order of the report.
JET_PLOTS = tuple(FIGURES["jets"])


def draw(cfg: Mapping[str, Any], scores: Mapping[str, np.ndarray],
         history: Mapping[str, Sequence[float]] | None, outdir: str | Path,
         figures: Sequence[str] | None = None) -> list[Path]:
    """Figures of the study's kind (:data:`FIGURES`; default all) in ``outdir``, PDF and PNG.

    Parameters
    ----------
    cfg
        The validated configuration of the study.
    scores
        The arrays of the scores file written by :func:`jetimage.evaluate.evaluate`.
    history
        The training history (``history.json``); needed by the ``training`` figure only, which
        is left out of the default figures without it.
    figures
        Names of the figures to draw (keys of ``FIGURES[kind]``); default all.
    """
    table = FIGURES[cfg["kind"]]
    unknown = [f for f in figures or () if f not in table]
    if unknown:
        raise ValueError(f"no figure {unknown} for a study of kind {cfg['kind']}; have {sorted(table)}")
    c = _Context(cfg, scores, history, Path(outdir))
    # by default the training curves are drawn when there is a history; asked for, they need one
    names = list(figures) if figures else [n for n in table if history is not None or n != "training"]
    return [p for name in names for p in table[name](c)]
