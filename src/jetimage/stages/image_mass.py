"""The image-mass study: how each preprocessing step changes the jet mass the network sees.

The image mass m_I treats every pixel as a massless particle at the pixel centre with the
pixel's pT (or E) as intensity. It is computed after each step of arXiv:1511.05190:
pixelization, translation, rotation, flip and normalization, for both preprocessing modes of
:mod:`jetimage.preprocess`, together with the background rejection 1/eps_B at eps_S = 0.5 of
a likelihood-ratio tagger that uses m_I alone. The published (``image``) mode loses
discrimination at the rotation (interpolation), with E intensity at the translation, and at the
normalization; the ``lorentz`` mode keeps m_I step after step (normalization divides it by a
per-jet scale, which changes the ranking as in the published case; the ``boost``
normalization of the ``lorentz`` mode keeps it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jetimage.config import Config
from jetimage.evaluation.likelihood import likelihood_ratio
from jetimage.evaluation.metrics import json_safe, null_keys, rejection_at, roc_curve
from jetimage.formats.atomic import atomic_path
from jetimage.formats.errors import InputError
from jetimage.formats.root import iterate_jets
from jetimage.images.detector import detector_images
from jetimage.images.normalize import normalize
from jetimage.images.pixelize import Grid, resolve_deposit
from jetimage.images.preprocess import make_images

log = logging.getLogger(__name__)

#: Preprocessing steps in the order they are applied.
STEPS = ("pixelization", "translation", "rotation", "flip", "normalization")
#: Steps of the ``lorentz`` mode: ``boost`` is the mass-keeping normalization
#: (``normalize: boost``), applied instead of ``normalization`` after the flip.
LORENTZ_STEPS = (*STEPS, "boost")


def steps_of(mode: str) -> tuple[str, ...]:
    """The steps of the study in ``mode`` (``lorentz`` or ``image``, with an intensity suffix)."""
    return LORENTZ_STEPS if mode.startswith("lorentz") else STEPS


def image_mass(
    images: np.ndarray,
    grid: Grid,
    intensity: str = "pt",
    eta_c: np.ndarray | None = None,
    phi_c: np.ndarray | None = None,
) -> np.ndarray:
    """Invariant mass of each image, pixels taken as massless particles at their centres.

    Parameters
    ----------
    images
        ``(n, n_eta, n_phi)`` or ``(n, n_eta, n_phi, n_channels)`` (channel 0 is used);
        pixel values are pT or E (GeV, or GeV / scale after normalization).
    grid
        The pixel grid.
    intensity
        ``pt`` (pixel = pT) or ``e`` (pixel = E).
    eta_c, phi_c
        ``(n,)`` detector position of the grid origin (default 0: the image frame).

    Returns
    -------
    np.ndarray
        ``(n,)`` float64 (GeV, or GeV / scale); 0 where rounding gives m^2 < 0.
    """
    return image_kinematics(images, grid, intensity, eta_c, phi_c)["m"]


def image_kinematics(
    images: np.ndarray,
    grid: Grid,
    intensity: str = "pt",
    eta_c: np.ndarray | None = None,
    phi_c: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``m`` and ``pt`` of each image, ``(n,)`` float64 each: the four-vector sum of its pixels
    as massless particles at their centres (arguments as :func:`image_mass`)."""
    x = images[..., 0] if images.ndim == 4 else images
    n = len(x)
    x = x.reshape(n, -1).astype(np.float64)
    ge, gp = grid.centres()
    eta = np.repeat(ge, grid.n_phi)[None, :] + (0.0 if eta_c is None else eta_c[:, None])
    phi = np.tile(gp, grid.n_eta)[None, :] + (0.0 if phi_c is None else phi_c[:, None])
    # pT per pixel: pixel value for pT images, E / cosh(eta) for E images
    pt = x if intensity == "pt" else x / np.cosh(eta)
    px = (pt * np.cos(phi)).sum(axis=1)
    py = (pt * np.sin(phi)).sum(axis=1)
    pz = (pt * np.sinh(eta)).sum(axis=1)
    e = (pt * np.cosh(eta)).sum(axis=1)
    return {"m": np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0)), "pt": np.hypot(px, py)}


def study_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The full published sequence on top of the configured images: the configured centre,
    intensity, grid and rotation (``subjet`` if none), parity flip, normalization (the
    configured ``l1`` or ``l2``, else ``l2``; the ``lorentz`` mode's ``boost`` step is always
    added), channel ``total`` only."""
    opts = dict(options)
    opts["channels"] = ["total"]
    if opts.get("rotate", "none") == "none":
        opts["rotate"] = "subjet"
    opts["flip"] = "parity"
    if opts.get("normalize", "none") not in ("l1", "l2"):
        opts["normalize"] = "l2"
    return opts


def step_masses(jets: ak.Array, options: Mapping[str, Any], mode: str) -> dict[str, np.ndarray]:
    """m_I ``(n,)`` after each of :func:`steps_of` ``mode``, for the options of
    :func:`study_options` (cumulative: rotation includes translation, and so on; ``boost``
    follows the flip in place of ``normalization``, with ``options["boost_energy"]`` GeV)."""
    opts = dict(study_options(options), mode=mode)
    grid = Grid.from_config(opts)
    intensity = opts["intensity"]
    deposit = resolve_deposit(opts.get("deposit"), mode)
    det, eta_c, phi_c = detector_images(jets, opts, grid, deposit)
    out = {"pixelization": image_mass(det, grid, intensity, eta_c, phi_c)}
    none = {"rotate": "none", "flip": "none", "normalize": "none"}
    stages = {
        "translation": none,
        "rotation": {**none, "rotate": opts["rotate"]},
        "flip": {**none, "rotate": opts["rotate"], "flip": opts["flip"]},
    }
    flipped = None
    for name, over in stages.items():
        images, _ = make_images(jets, {**opts, **over})
        out[name] = image_mass(images, grid, intensity)
        flipped = images
    assert flipped is not None  # stages is not empty
    _, scale = normalize(flipped.copy(), opts["normalize"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["normalization"] = np.where(scale[:, 0] > 0, out["flip"] / scale[:, 0], 0.0)
    if mode == "lorentz":
        boosted, _ = make_images(jets, {**opts, **stages["flip"], "normalize": "boost"})
        out["boost"] = image_mass(boosted, grid, intensity)
    return out


def mass_rejection(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray, efficiency: float = 0.5,
    bins: int = 40,
) -> float:
    """1/eps_B at ``efficiency`` of the binned likelihood ratio of one variable.

    The histograms are filled with the even-numbered jets and the ratio is evaluated on the
    odd-numbered ones, so the figure is not tuned on the jets it is measured with. The range
    is 0 to the 99.5% quantile of x.
    """
    train = np.arange(len(x)) % 2 == 0
    hi = float(np.quantile(x[np.isfinite(x)], 0.995)) if np.isfinite(x).any() else 1.0
    score = likelihood_ratio(x[train], labels[train], weights[train], x[~train], bins,
                             (0.0, max(hi, 1e-12)))
    eps_s, eps_b = roc_curve(score, labels[~train], weights[~train])
    return rejection_at(eps_s, eps_b, efficiency)


#: At most this many jets per sample enter the image-mass study (it runs the slow ``image``
#: mode; a study of all 426,000 jets of config/reference.yaml took half an hour). 25,000 jets
#: leave the fractions and rejections with errors below 1%. The jets are streamed in chunks
#: bounded by ``images.chunk_size`` and ``images.chunk_constituents``; only their image masses
#: (a few floats per jet and step) are kept.
STUDY_MAX_JETS = 25_000


def iterate_study_jets(cfg: Config, inputs_by_sample: Mapping[str, Sequence[str | Path]],
                       max_jets: int = STUDY_MAX_JETS) -> Iterator[tuple[ak.Array, np.ndarray, np.ndarray]]:
    """The first ``max_jets`` jets of each sample, truth-matched signal only (the events are
    independent, so the first jets are a fair subset), as ``(jets, labels, weights)`` chunks of
    at most ``images.chunk_size`` jets and ``images.chunk_constituents`` constituents."""
    opts = cfg["images"]
    for sample, paths in inputs_by_sample.items():
        s = cfg.sample(sample)
        cls = 1 if s["class"] == "signal" else 0
        n = 0
        for chunk in iterate_jets(paths, step_size=opts["chunk_size"], max_items=opts["chunk_constituents"]):
            if n >= max_jets:
                break
            if s.get("truth", "none") == "W":
                chunk = chunk[chunk.label == 1]
            chunk = chunk[:max_jets - n]
            n += len(chunk)
            if len(chunk):
                yield (chunk, np.full(len(chunk), cls, dtype=np.int8),
                       ak.to_numpy(chunk.weight).astype(np.float64))


def read_study_jets(cfg: Config, inputs_by_sample: Mapping[str, Sequence[str | Path]],
                    max_jets: int = STUDY_MAX_JETS) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """:func:`iterate_study_jets` in one array: ``(jets, labels, weights)``."""
    chunks = list(iterate_study_jets(cfg, inputs_by_sample, max_jets))
    if not chunks:
        raise ValueError("preprocessing study: no input jets")
    jets, labels, weights = zip(*chunks, strict=True)
    return ak.concatenate(jets), np.concatenate(labels), np.concatenate(weights)


def study_variants(options: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Name -> (mode, intensity) of the four variants of the study: both modes, both intensities."""
    opts = study_options(options)
    other = "e" if opts["intensity"] == "pt" else "pt"
    return {"lorentz": ("lorentz", opts["intensity"]), "image": ("image", opts["intensity"]),
            f"lorentz_{other}": ("lorentz", other), f"image_{other}": ("image", other)}


def study_masses(jets: ak.Array, options: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """``{variant: {step: (n,) m_I}}`` of :func:`study_variants` for ``jets`` (any chunk of them:
    every mass is per jet)."""
    opts = study_options(options)
    return {key: step_masses(jets, {**opts, "intensity": intensity}, mode)
            for key, (mode, intensity) in study_variants(options).items()}


def check_halves(labels: np.ndarray, files: str) -> None:
    """Raise :class:`InputError` naming ``files`` unless the even- and the odd-numbered jets
    (:func:`mass_rejection` fits on one half and measures on the other) hold both classes."""
    for half, name in ((0, "even"), (1, "odd")):
        for cls, cname in ((1, "signal"), (0, "background")):
            if not (labels[half::2] == cls).any():
                raise InputError(f"{files}: the {name}-numbered jets of the preprocessing study hold no "
                                 f"{cname} jet (of {len(labels)}): no rejection can be computed")


def mass_study(
    jets: ak.Array, labels: np.ndarray, weights: np.ndarray, options: Mapping[str, Any],
    efficiency: float = 0.5, bins: int = 40,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Per-step image masses and rejections for both modes and both intensities, all jets at once
    (:func:`summarize_masses` of :func:`study_masses`)."""
    masses = study_masses(jets, options)
    summary = summarize_masses(masses, ak.to_numpy(jets.jet_m), labels, weights, options, efficiency, bins)
    return summary, masses


def summarize_masses(
    masses: Mapping[str, Mapping[str, np.ndarray]], jet_m: np.ndarray, labels: np.ndarray,
    weights: np.ndarray, options: Mapping[str, Any], efficiency: float = 0.5, bins: int = 40,
) -> dict[str, Any]:
    """The study's summary from the per-jet masses of :func:`study_masses`.

    Returns
    -------
    dict
        ``{"lorentz": {step: 1/eps_B}, "image": {...}, "lorentz_<other intensity>": {...},
        "image_<other intensity>": {...}`` (``lorentz*`` also hold ``boost``, the mass-keeping
        normalization, beside ``normalization``), ``"jet_mass": 1/eps_B of the jet mass,
        "mass_within_1pct": {mode: fraction of jets with |m_I(flip) / m_I(pixelization) - 1|
        < 0.01}, "settings": {...}}``.
    """
    opts = study_options(options)
    summary: dict[str, Any] = {
        "settings": {
            "efficiency": efficiency,
            "n_signal": int((labels == 1).sum()),
            "n_background": int((labels == 0).sum()),
            **{k: opts[k] for k in ("intensity", "centre", "rotate", "flip", "normalize",
                                    "n_eta", "n_phi", "pixel_eta", "pixel_phi")},
        },
        "jet_mass": mass_rejection(np.asarray(jet_m, np.float64), labels, weights, efficiency, bins),
        "mass_within_1pct": {},
    }
    for key, m in masses.items():
        summary[key] = {s: mass_rejection(m[s], labels, weights, efficiency, bins) for s in steps_of(key)}
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(m["flip"] / m["pixelization"] - 1.0)
        summary["mass_within_1pct"][key] = float(np.mean(rel < 0.01))
    return summary


def streamed_study(cfg: Config, inputs_by_sample: Mapping[str, Sequence[str | Path]],
                   max_jets: int = STUDY_MAX_JETS, efficiency: float = 0.5, bins: int = 40,
                   ) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]], np.ndarray]:
    """:func:`mass_study` of :func:`iterate_study_jets`, one chunk at a time: memory is one
    chunk plus a few floats per jet. Returns ``(summary, masses, labels)``."""
    parts: list[dict[str, dict[str, np.ndarray]]] = []
    jet_m, labels, weights = [], [], []
    for jets, y, w in iterate_study_jets(cfg, inputs_by_sample, max_jets):
        parts.append(study_masses(jets, cfg["images"]))
        jet_m.append(ak.to_numpy(jets.jet_m))
        labels.append(y)
        weights.append(w)
    files = ", ".join(str(f) for paths in inputs_by_sample.values() for f in paths)
    if not parts:
        raise InputError(f"{files}: no input jets for the preprocessing study")
    y = np.concatenate(labels)
    check_halves(y, files)
    masses = {k: {s: np.concatenate([p[k][s] for p in parts]) for s in steps_of(k)} for k in parts[0]}
    summary = summarize_masses(masses, np.concatenate(jet_m), y, np.concatenate(weights),
                               cfg["images"], efficiency, bins)
    return summary, masses, y


def plot_masses(
    masses: Mapping[str, Mapping[str, np.ndarray]], labels: np.ndarray,
    summary: Mapping[str, Any], stem: str | Path, sqrt_s_tev: float = 13.0,
) -> list[Path]:
    """The preprocessing figure of arXiv:1511.05190 for both modes (PDF and PNG).

    Rows: the ``lorentz`` and ``image`` modes (configured intensity); columns: QCD and W jets.
    Each panel overlays the image-mass distribution after every step (in ``lorentz`` mode also
    the ``boost`` normalization, which keeps the mass), with the mass-only
    1/eps_B at eps_S = 0.5 in the legend. The normalized image mass is multiplied by the mean
    normalization scale of all jets, a common factor that leaves the discrimination unchanged,
    so that it fits on the same axis.
    """
    # matplotlib loads on first use only (the plots module selects its Agg backend)
    import matplotlib.pyplot as plt
    import mplhep as hep

    from jetimage.stages.plots import save_figure

    hep.style.use("ATLAS")
    modes = [m for m in ("lorentz", "image") if m in masses]
    fig, axes = plt.subplots(len(modes), 2, figsize=(14, 6 * len(modes)), squeeze=False)
    edges = np.linspace(0.0, 200.0, 51)
    for r, mode in enumerate(modes):
        m = masses[mode]
        ratio = m["flip"] / np.where(m["normalization"] > 0, m["normalization"], np.nan)
        common = float(np.nanmean(ratio))
        for c, (cls, name) in enumerate(((0, "QCD jets"), (1, "W jets"))):
            ax = axes[r, c]
            sel = labels == cls
            for step in steps_of(mode):
                x = m[step][sel] * (common if step == "normalization" else 1.0)
                rej = summary[mode][step]
                hep.histplot(np.histogram(x, edges)[0], edges, density=True, ax=ax,
                             label=f"{step} (1/$\\epsilon_B$ = {rej:.2f})", lw=1.8)
            ax.set_xlabel("Image mass $m_I$ [GeV]")
            ax.set_ylabel("Normalized to unity")
            ax.set_xlim(edges[0], edges[-1])
            hep.label.exp_label(exp="jetimage", llabel="Simulation",
                                rlabel=rf"$\sqrt{{s}}$ = {sqrt_s_tev:g} TeV", ax=ax)
            ax.text(0.97, 0.97, f"{name}, mode: {mode}", transform=ax.transAxes, ha="right",
                    va="top", fontsize=13)
            ax.legend(loc="center right", fontsize=10, title=r"$\epsilon_S$ = 0.5")
    fig.tight_layout()
    return save_figure(fig, stem)


def summary_json(summary: Mapping[str, Any], path: str | Path) -> str:
    """The study as JSON text; a rejection that is infinite (no background jet passes) or NaN
    is written as ``null``, and named in a warning."""
    if nulls := null_keys(summary):
        log.warning("%s: null (not computable from these jets) for %s", path, ", ".join(nulls))
    return json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"


def run_study(cfg: Config, inputs_by_sample: dict[str, list[str]], json_out: str | Path,
              plot_stem: str | Path) -> dict[str, Any]:
    """Stage entry: image-mass study of the samples (at most :data:`STUDY_MAX_JETS` jets each);
    write ``json_out`` and the figure.

    Parameters
    ----------
    cfg
        The validated configuration (``images`` and ``evaluate.likelihood_bins`` are used).
    inputs_by_sample
        Sample name -> ROOT files with its ``jets`` tree.
    json_out
        JSON path, written atomically (see :func:`mass_study` for the content).
    plot_stem
        Output stem of the figure (``.pdf`` and ``.png`` are added).

    Returns
    -------
    dict
        The JSON content.
    """
    summary, masses, labels = streamed_study(cfg, inputs_by_sample, STUDY_MAX_JETS, 0.5,
                                             cfg["evaluate"]["likelihood_bins"])
    with atomic_path(json_out) as tmp:  # renamed after the figure: a failed figure leaves no new JSON
        tmp.write_text(summary_json(summary, json_out))
        plot_masses(masses, labels, summary, plot_stem, cfg["generation"]["sqrt_s"] / 1000.0)
    log.info("preprocessing study: %s", json.dumps({k: summary[k] for k in ("lorentz", "image")}))
    return summary
