"""The pileup study: each particle-level mitigation on the same jets at every mu, against the truth.

For every sample with pileup, every method of :data:`jetimage.physics.pileup.MITIGATIONS` corrects
the jets' mass and pT from their particles, and :func:`jetimage.evaluation.pileup.correction_figures`
compares them with the pileup-free truth jets. The result is one JSON file, and a Markdown table.
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
from jetimage.formats.root import iterate_jets
from jetimage.physics.pileup import MITIGATIONS, corrected_jets

__all__ = ["pileup_study", "plot_resolution", "table"]

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


def table(result: Mapping[str, Any]) -> str:
    """A Markdown table of the mass resolution and bias (GeV) per sample and method."""
    head = "| sample | mu | " + " | ".join(MITIGATIONS) + " |\n|---|---|" + "---|" * len(MITIGATIONS) + "\n"
    rows = []
    for name, r in result["samples"].items():
        cells = []
        for m in MITIGATIONS:
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
        for m in MITIGATIONS:
            if m == "truth":
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
                 markdown: str | Path, plot: str | Path | None = None) -> dict[str, Any]:
    """Run the study on ``inputs`` (sample -> ROOT files of its jets with pileup) and write
    ``output`` (JSON: per sample its mu, class and, per method, :func:`correction_figures`),
    ``markdown`` (:func:`table`: mass resolution ± error (bias), GeV) and with ``plot`` the figure
    of :func:`plot_resolution` (``<plot>.pdf``, ``.png``), each atomically."""
    samples = {}
    for k, (name, paths) in enumerate(inputs.items()):
        samples[name] = _sample_figures(cfg, name, list(paths), cfg["seed"] + k)
    result = {"methods": list(MITIGATIONS), "jets_R": cfg["jets"]["R"],
              "mass": "ungroomed" if cfg["jets"]["trim_fcut"] == 0 else "trimmed", "samples": samples}
    with atomic_paths(output, markdown) as (tmp_json, tmp_md):
        tmp_json.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
        tmp_md.write_text(table(result))
    if plot is not None:
        plot_resolution(result, plot, cfg["generation"]["sqrt_s"] / 1000.0)
    return result
