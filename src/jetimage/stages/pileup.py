"""The pileup study: each particle-level mitigation on the same jets at every mu, against the truth.

For every sample with pileup, every method of :data:`jetimage.physics.pileup.MITIGATIONS` corrects
the jets' mass and pT from their particles, and :func:`jetimage.evaluation.pileup.correction_figures`
compares them with the pileup-free truth jets. With a trained U-Net (``train.task: images``) and the
samples' images, the pixel-level methods of :data:`PIXEL_METHODS` are compared too: the jet of all
pixels, of CHS pixels, of the U-Net's corrected image, and of the pileup-free pixels (the floor that
pixelization leaves). The result is one JSON file, and a Markdown table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jetimage.config import Config
from jetimage.evaluation.metrics import json_safe
from jetimage.evaluation.pileup import correction_figures
from jetimage.formats.atomic import atomic_paths
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import read_columns
from jetimage.formats.root import iterate_jets
from jetimage.images.pixelize import Grid
from jetimage.physics.pileup import MITIGATIONS, corrected_jets
from jetimage.stages.correct import corrected_images, file_inputs, pixel_model
from jetimage.stages.image_mass import image_kinematics
from jetimage.training.data import dataset_split, file_rows, iterate_rows

__all__ = ["PIXEL_METHODS", "pileup_study", "pixel_figures", "plot_resolution", "table", "unet_jet_figure"]


#: Pixel-level methods (jets from images): every channel (``pixels_none``), the tracks of the
#: leading vertex and every neutral pixel (``pixels_chs``), the U-Net's corrected image (``unet``),
#: and the pileup-free pixels (``pixels_truth``: what pixelization alone costs).
PIXEL_METHODS = ("pixels_none", "pixels_chs", "unet", "pixels_truth")

log = logging.getLogger(__name__)


def _sample_figures(cfg: Config, name: str, paths: Sequence[str], seed: int) -> dict[str, Any]:
    s = cfg.sample(name)
    corrected: dict[str, list[dict[str, np.ndarray]]] = {m: [] for m in MITIGATIONS}
    truth: list[dict[str, np.ndarray]] = []
    keep_signal = s["class"] == "signal" and s.get("truth") == "W"
    opts = cfg["images"]
    for chunk in iterate_jets(paths, step_size=opts["chunk_size"], max_items=opts["chunk_constituents"]):
        if "truth_m" not in chunk.fields or "origin" not in chunk.constituents.fields:
            raise InputError(f"{paths[0]}: sample {name!r} has no pileup branches (truth_m, "
                             "constituent_origin): generate it with samples[].pileup")
        if keep_signal:  # W jets: those matched to a W, as the images keep them
            chunk = chunk[chunk.label == 1]
        truth.append({"m": ak.to_numpy(chunk.truth_m), "pt": ak.to_numpy(chunk.truth_pt)})
        for m in MITIGATIONS:
            corrected[m].append(corrected_jets(chunk, m, cfg["jets"]["R"], cfg["jets"]))
    t = {k: np.concatenate([x[k] for x in truth]) for k in ("m", "pt")}
    out: dict[str, Any] = {"mu": s["pileup"]["mu"], "class": s["class"], "methods": {}}
    for m in MITIGATIONS:
        c = {k: np.concatenate([x[k] for x in corrected[m]]) for k in ("m", "pt")}
        out["methods"][m] = correction_figures(c, t, cfg["evaluate"]["bootstrap"], seed)
    shown = ", ".join(f"{m} {out['methods'][m]['mass_resolution'] or float('nan'):.1f}" for m in MITIGATIONS)
    log.info("%s (mu %g): %d jets; mass resolution %s GeV", name, out["mu"], len(t["m"]), shown)
    return out


def _scored_rows(cfg: Config, images: Mapping[str, str | Path]) -> dict[str, np.ndarray]:
    """Per sample, the rows of its image file the U-Net is scored on: the test split of the samples
    it trained on (``train.samples``: the trainer's split of their files in config order), every row
    of the others."""
    own = cfg["train"]["samples"] or cfg.sample_names
    trained = [s for s in cfg.sample_names if s in own]
    missing = [s for s in trained if s not in images]
    if missing:
        raise InputError(f"{cfg.source}: train.samples {missing} have no images here (--images): the pileup "
                         "study scores the U-Net on the samples with pileup; train it on those")
    sizes = file_rows([images[s] for s in trained])
    offsets = dict(zip(trained, np.r_[0, np.cumsum(sizes)][:-1], strict=True))
    test = dataset_split(cfg, int(sum(sizes)))["test"]
    out = {}
    for name, path in images.items():
        if name in offsets:
            lo = int(offsets[name])
            n = sizes[trained.index(name)]
            out[name] = test[(test >= lo) & (test < lo + n)] - lo
        else:
            out[name] = np.arange(file_rows([path])[0])
    return out


def pixel_figures(cfg: Config, unet: str | Path, images: Mapping[str, str | Path], seed: int
                  ) -> dict[str, dict[str, Any]]:
    """Per sample (``images``: sample -> its HDF5 image file), :func:`correction_figures` of each
    of :data:`PIXEL_METHODS` on the jets the U-Net did not train on (:func:`_scored_rows`), against
    the truth jets (columns ``truth_m``, ``truth_pt``), and ``n_scored``."""
    grid = Grid.from_config(dict(cfg["images"]))
    if cfg["images"]["intensity"] != "pt" or cfg["images"]["normalize"] != "none":
        raise InputError(f"{cfg.source}: images.intensity pt and images.normalize none are needed to read "
                         "jet masses from the pixels of the pileup study")
    rows = _scored_rows(cfg, images)
    model, definition = pixel_model(unet)  # loaded once; each file read once
    out = {}
    for k, (name, path) in enumerate(images.items()):
        channels = file_inputs(unet, definition, [path])[0]
        idx = {c: channels.index(c) for c in ("charged_lv", "charged_pu", "neutral", "neutral_lv")}
        r = rows[name]
        parts: dict[str, list[dict[str, np.ndarray]]] = {m: [] for m in PIXEL_METHODS}
        for _, x in iterate_rows([path], r):
            c = {n: x[..., i] for n, i in idx.items()}
            jets = {"unet": corrected_images(model, definition, x, channels)[1],
                    "pixels_none": c["charged_lv"] + c["charged_pu"] + c["neutral"],
                    "pixels_chs": c["charged_lv"] + c["neutral"],
                    "pixels_truth": c["charged_lv"] + c["neutral_lv"]}
            for m, pixels in jets.items():
                parts[m].append(image_kinematics(pixels, grid))
        cols = read_columns([path], ["truth_m", "truth_pt"])
        truth = {"m": cols["truth_m"][r].astype(np.float64), "pt": cols["truth_pt"][r].astype(np.float64)}
        methods = {}
        for m in PIXEL_METHODS:
            got = {q: np.concatenate([p[q] for p in parts[m]] or [np.zeros(0)]) for q in ("m", "pt")}
            methods[m] = correction_figures(got, truth, cfg["evaluate"]["bootstrap"], seed + k)
        out[name] = {"n_scored": len(r), "methods": methods}
        log.info("%s: U-Net mass resolution %s GeV on %d jets (pixels: none %s, CHS %s, pileup-free %s)",
                 name, *(methods[m]["mass_resolution"] for m in ("unet",)), len(r),
                 *(methods[m]["mass_resolution"] for m in ("pixels_none", "pixels_chs", "pixels_truth")))
    return out


def table(result: Mapping[str, Any]) -> str:
    """A Markdown table of the mass resolution and bias (GeV) per sample and method."""
    methods = result["methods"]
    head = "| sample | mu | " + " | ".join(methods) + " |\n|---|---|" + "---|" * len(methods) + "\n"
    rows = []
    for name, r in result["samples"].items():
        cells = []
        for m in methods:
            f = r["methods"][m]
            res, err, bias = f["mass_resolution"], f["mass_resolution_err"], f["mass_bias"]
            cells.append("n/a" if res is None else
                         f"{res:.1f}" + (f" ± {err:.1f}" if err is not None else "") + f" ({bias:+.1f})")
        rows.append(f"| {name} | {r['mu']:g} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def plot_resolution(result: Mapping[str, Any], stem: str | Path, sqrt_s_tev: float = 13.0) -> list[Path]:
    """The jet-mass resolution against mu per method, one panel per class (W: signal, QCD:
    background), with bootstrap error bars: ``<stem>.pdf`` and ``.png``."""
    import matplotlib.pyplot as plt  # loads on first use only (the plots module selects Agg)

    from jetimage.stages.plots import save_figure

    present = {r["class"] for r in result["samples"].values()}
    classes = [c for c in ("signal", "background") if c in present]
    fig, axes = plt.subplots(1, len(classes), figsize=(7 * len(classes), 6), squeeze=False)
    for ax, cls in zip(axes[0], classes, strict=True):
        rows = sorted((r for r in result["samples"].values() if r["class"] == cls), key=lambda r: r["mu"])
        mu = [r["mu"] for r in rows]
        for m in result["methods"]:
            if m in ("truth", "pixels_truth"):
                continue
            y = [r["methods"][m]["mass_resolution"] for r in rows]
            err = [r["methods"][m]["mass_resolution_err"] or 0.0 for r in rows]
            ax.errorbar(mu, [np.nan if v is None else v for v in y], yerr=err, marker="o", capsize=3, label=m)
        ax.set_xlabel(r"$\mu$ (pileup vertices)")
        ax.set_ylabel(r"jet-mass resolution [GeV]")
        name = "W" if cls == "signal" else "QCD"
        ax.set_title(f"{name} jets, {result['mass']} mass, R = {result['jets_R']:g}")
        ax.set_ylim(bottom=0)
        ax.legend()
    return save_figure(fig, stem)


def pileup_study(cfg: Config, inputs: Mapping[str, Sequence[str]], output: str | Path,
                 markdown: str | Path, plot: str | Path | None = None, unet: str | Path | None = None,
                 images: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Run the study on ``inputs`` (sample -> ROOT files of its jets with pileup) and write
    ``output`` (JSON: per sample its mu, class and, per method, :func:`correction_figures`),
    ``markdown`` (:func:`table`: mass resolution ± error (bias), GeV) and with ``plot`` the figure
    of :func:`plot_resolution` (``<plot>.pdf``, ``.png``), each atomically. With a trained ``unet``
    and ``images`` (sample -> HDF5 image file), the pixel-level methods (:func:`pixel_figures`) join
    the particle-level ones in every sample."""
    samples = {}
    for k, (name, paths) in enumerate(inputs.items()):
        samples[name] = _sample_figures(cfg, name, list(paths), cfg["seed"] + k)
    methods: list[str] = list(MITIGATIONS)
    if unet is not None and images:
        for name, pixels in pixel_figures(cfg, unet, images, cfg["seed"] + len(inputs)).items():
            samples[name]["methods"].update(pixels["methods"])
            samples[name]["n_scored_pixels"] = pixels["n_scored"]
        methods += list(PIXEL_METHODS)
    result = {"methods": methods, "jets_R": cfg["jets"]["R"],
              "mass": "ungroomed" if cfg["jets"]["trim_fcut"] == 0 else "trimmed", "samples": samples,
              "unet": None if unet is None else {"model": str(unet), "trained_on": cfg["train"]["samples"]
                                                 or cfg.sample_names}}
    with atomic_paths(output, markdown) as (tmp_json, tmp_md):
        tmp_json.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
        tmp_md.write_text(table(result))
    if plot is not None:
        plot_resolution(result, plot, cfg["generation"]["sqrt_s"] / 1000.0)
    return result


def unet_jet_figure(cfg: Config, unet: str | Path, files: Mapping[str, str | Path], sample: str,
                    stem: str | Path, row: int | None = None) -> list[Path]:
    """One jet of ``sample`` through the U-Net: its input channels (tracks of the leading vertex and
    of pileup, neutral energy of every vertex), the true and the predicted leading-vertex neutral
    image and their difference (``<stem>.pdf``, ``.png``). ``files``: sample -> HDF5 image file,
    ``sample`` and the samples the U-Net trained on among them; ``row``: the jet's row in the
    sample's file (default the first the pileup study scores the U-Net on, :func:`_scored_rows`)."""
    import matplotlib.colors
    import matplotlib.pyplot as plt

    from jetimage.stages.plots import save_figure

    if sample not in files:
        raise InputError(f"{cfg.source}: no image file of sample {sample!r} given (have {sorted(files)})")
    images, name = files[sample], sample
    if row is None:
        rows = _scored_rows(cfg, files)[name]
        row = int(rows[0]) if len(rows) else 0
    model, definition = pixel_model(unet)
    channels = file_inputs(unet, definition, [images])[0]
    _, x = next(iterate_rows([images], np.array([row])))  # read once, corrected in memory
    neutral_lv, _ = corrected_images(model, definition, x, channels)
    c = {n: x[0, ..., channels.index(n)] for n in ("charged_lv", "charged_pu", "neutral", "neutral_lv")}
    panels = [("charged_lv", "Tracks, leading vertex"), ("charged_pu", "Tracks, pileup"),
              ("neutral", "Neutral, every vertex (input)"), ("neutral_lv", "Neutral, leading vertex (truth)")]
    fig, axes = plt.subplots(2, 3, figsize=(20, 12))
    g = Grid.from_config(dict(cfg["images"]))
    he, hp = g.half_width
    extent = (-he, he, -hp, hp)
    top = max(float(x[0].max()), 1e-3)
    images_ = [*((c[k], t) for k, t in panels), (neutral_lv[0], "Neutral, leading vertex (U-Net)")]
    for ax, (img, title) in zip(axes.ravel()[:5], images_, strict=True):
        im = ax.imshow(np.where(img > 0, img, np.nan).T, origin="lower", extent=extent, cmap="viridis",
                       norm=matplotlib.colors.LogNorm(vmin=top * 1e-4, vmax=top))
        fig.colorbar(im, ax=ax, label=r"$p_T$ per pixel [GeV]")
        ax.set_title(title)
    diff = neutral_lv[0] - c["neutral_lv"]
    lim = float(np.abs(diff).max()) or 1.0
    im = axes[1, 2].imshow(diff.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=axes[1, 2], label="U-Net - truth [GeV]")
    axes[1, 2].set_title("Difference")
    for ax in axes.ravel():
        ax.set_xlabel(r"$\eta$ (jet frame)")
        ax.set_ylabel(r"$\phi$ (jet frame)")
    fig.suptitle(f"{name}, row {row}: the U-Net's share of each neutral pixel")
    return save_figure(fig, stem)
