"""The evaluate stage: score the test split with the CNN and the baselines of the study's kind, and
write ``metrics.json`` and ``scores.npz``.

Options (``evaluate`` config section): ``mass_window`` restricts the fits and the metrics to jets
with ``lo < m < hi`` GeV; ``reweight_pt`` multiplies the signal weights by the ratio of the
background and signal pT spectra, so that pT cannot discriminate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jetimage.config import Config, derive_seed
from jetimage.decorrelation.sculpting import mass_edges, sculpting_metrics
from jetimage.evaluation.baselines import BASELINES, KINDS, TAGGERS_OF, Examples
from jetimage.evaluation.metrics import BOOTSTRAP_STREAM, json_safe, null_keys, tagger_metrics
from jetimage.evaluation.scoring import ImageSummary, predict
from jetimage.formats.atomic import atomic_paths
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import check_class_weights, image_attrs
from jetimage.training.definition import check_definition, stored_definition
from jetimage.training.loading import load_model

__all__ = ["check_inputs", "evaluate", "example_index", "finite_scores", "sculpting_edges"]


log = logging.getLogger(__name__)


def check_inputs(model_path: str | Path, attrs: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse image files made differently from the model's training images: ``attrs`` (image file
    -> its :func:`~jetimage.io.image_attrs`) against the model's input definition; one line naming
    the file and the first setting. A model or file that does not say how its images were made (a
    model not trained by jetimage, a file not written by the images stage) is used with a warning."""
    definition = stored_definition(model_path)
    if definition is None:
        log.warning("%s: the model holds no input definition: the images are not checked against it",
                    model_path)
        return
    for path, a in attrs.items():
        if "kind" not in a or "images" not in a:
            log.warning("%s: no image settings in its attributes (not made by the images stage): not "
                        "checked against the model %s", path, model_path)
            continue
        check_definition(definition, a["kind"], a["images"], a.get("jets"), model_path, path)


def _check_classes(ex: Examples, paths: Sequence[str | Path]) -> None:
    te = ex.split["test"][ex.selected[ex.split["test"]]]
    for cls, name in ((1, "signal"), (0, "background")):
        if not (ex.labels[te] == cls).any():
            raise InputError(f"{', '.join(map(str, paths))}: the test split holds no {name} example "
                             f"(of {len(te)}): no efficiency can be computed; generate more examples "
                             "or enlarge train.split.test")
    # negative weights (NLO) are kept; a class total <= 0 made the AUC 0.0 or -2.8e303
    check_class_weights(ex.labels, ex.weights, te, "test", paths)


def finite_scores(scores: np.ndarray, model_path: str | Path, part: str = "test") -> np.ndarray:
    """``scores`` unchanged, after checking that every one is finite.

    Raises
    ------
    InputError
        Naming the model and how many scores are NaN or infinite: a model trained on NaN (or
        diverged) scores NaN, and NaN scores sort as ties, which gave AUC 1.0 +- 4e-17.
    """
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise InputError(f"{model_path}: {bad} of {len(scores)} {part}-split scores are not finite (NaN or "
                         "inf): the model is unusable (trained on NaN inputs or diverged); retrain it")
    return scores


def evaluate(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
             metrics_path: str | Path, scores_path: str | Path | None = None,
             image_mass_path: str | Path | None = None,
             variants: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Score the test split with the CNN and the baselines of the study's kind; write ``metrics.json``.

    Returns
    -------
    dict
        ``{tagger: {"auc": x, "auc_err": dx, "rejection": {"0.3": r, ...},
        "rejection_err": {"0.3": dr, ...}, "n_bootstrap": b}}`` (jets also ``"inv_jsd":
        {"0.5": x}, "inv_jsd_err"``: :func:`jetimage.decorrelation.sculpting_metrics`) for every
        tagger of the kind
        (:data:`TAGGERS_OF`); ``n_test`` (test examples per class, inside the jets' mass window if
        any); the kind's own keys: jets ``selection`` (mass window, pT reweighting) and, with
        ``image_mass_path``, ``preprocessing`` (:func:`jetimage.stages.image_mass.run_study`);
        events the cut-based working point and ``factor`` (:func:`cut_based`). Non-finite numbers
        are written as ``null`` (:func:`json_safe`).

    The scores file (``.npz``) holds every test example, also those outside the mass window
    (``in_window`` flags them): ``labels``, ``weights``, ``score_<tagger>``, the kind's variables,
    and from the selected test examples ``mean_image_signal``, ``mean_image_background`` and
    ``corr_cnn_pixel`` (:class:`ImageSummary`), and the index of each test example
    (:func:`example_index`: ``index_sample``, ``index_file``, ``index_entry``) to match the scores
    back to the ROOT trees (and to the friend trees of ``jetimage apply``).

    ``variants`` maps ``train.variants`` names to their models: each is scored as the tagger
    ``cnn_<name>`` beside the others.
    """
    read_examples, baselines = KINDS[cfg.kind]
    ex = read_examples(cfg, inputs)
    _check_classes(ex, inputs)
    model = load_model(model_path)
    attrs = {str(p): image_attrs(p) for p in inputs}  # read once, checked against every model
    check_inputs(model_path, attrs)
    te = ex.split["test"]
    sel = ex.selected[te]
    summary = ImageSummary(cfg["images"]["channels"])
    w_summary = np.where(ex.selected, ex.weights, 0.0)
    cnn = {"test": finite_scores(predict(model, inputs, te, (summary, ex.labels, w_summary)), model_path)}
    if cfg.kind == "jets":
        va = ex.split["validation"]
        cnn["validation"] = finite_scores(predict(model, inputs, va[ex.selected[va]]), model_path,
                                          "validation")
    scores, extra = baselines(cfg, inputs, ex, cnn)
    scores = {"cnn": cnn["test"], **scores}
    for name, path in (variants or {}).items():  # the mass-decorrelated CNNs (train.variants)
        variant = load_model(path)
        check_inputs(path, attrs)
        scores[f"cnn_{name}"] = finite_scores(predict(variant, inputs, te), path)
    mass = ex.columns["jet_m"][te][sel].astype(np.float64) if cfg.kind == "jets" else None
    metrics = _metrics(cfg, scores, ex.labels[te][sel], ex.weights[te][sel], sel, mass)
    metrics.update(extra)
    if image_mass_path is not None:
        metrics["preprocessing"] = json.loads(Path(image_mass_path).read_text())
    if nulls := null_keys(metrics):
        log.warning("%s: null (not computable from the test split) for %s", metrics_path, ", ".join(nulls))
    outputs = [metrics_path] if scores_path is None else [metrics_path, scores_path]
    with atomic_paths(*outputs) as tmps:  # both files or neither
        tmps[0].write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
        if scores_path is not None:
            columns = {k: v[te] for k, v in ex.columns.items()}
            if cfg.kind == "jets":
                columns = {"mass": columns.pop("jet_m"), **columns}
            # numpy's stubs match a ** of arrays against savez's allow_pickle: bool
            np.savez(tmps[1], labels=ex.labels[te], weights=ex.weights[te], in_window=sel,
                     **{f"score_{k}": v for k, v in scores.items()}, **columns,  # type: ignore[arg-type]
                     **summary.result(), **example_index(inputs, te))  # type: ignore[arg-type]
    return metrics


def example_index(paths: Sequence[str | Path], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Where the examples ``rows`` (global, sorted) come from: ``index_sample``, ``index_file`` (the
    ROOT file) and ``index_entry`` (its tree's entry), ``(len(rows),)`` each; empty for image files
    written before the image stage recorded ``file`` and ``entry``."""

    samples, files, entries = [], [], []
    for path in paths:
        attrs = image_attrs(path)
        with h5py.File(path, "r") as f:
            if "entry" not in f or "inputs" not in attrs:
                return {}
            n = len(f["entry"])
            samples.append(np.full(n, attrs["sample"]))
            files.append(np.asarray(attrs["inputs"])[f["file"][...]])
            entries.append(f["entry"][...].astype(np.int64))
    return {f"index_{k}": np.concatenate(v)[rows] for k, v in
            (("sample", samples), ("file", files), ("entry", entries))}


def sculpting_edges(cfg: Mapping[str, Any]) -> np.ndarray:
    """Mass bins of the sculpting metric: ``evaluate.sculpting.bin_width`` GeV over the study's
    mass range (the mass window if any, else the range of the mass baseline)."""
    window = cfg["evaluate"]["mass_window"] or BASELINES["mass"][1]
    return mass_edges(window, cfg["evaluate"]["sculpting"]["bin_width"])


def _metrics(cfg: Config, scores: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray,
             sel: np.ndarray, mass: np.ndarray | None = None) -> dict[str, Any]:
    ecfg = cfg["evaluate"]
    seed = derive_seed(cfg["seed"], BOOTSTRAP_STREAM)
    taggers = [*TAGGERS_OF[cfg.kind], *(k for k in scores if k not in TAGGERS_OF[cfg.kind])]
    metrics: dict[str, Any] = {
        name: tagger_metrics(scores[name][sel], y, w, ecfg["efficiencies"], ecfg["bootstrap"], seed)
        if name in scores else None
        for name in taggers
    }
    for name in [t for t in taggers if metrics[t] is None]:
        log.warning("%-10s not computed: null in metrics.json", name)
    if mass is not None:  # jets: how much each tagger's cut sculpts the QCD mass
        edges = sculpting_edges(cfg)
        for name in [t for t in taggers if metrics[t] is not None]:
            metrics[name].update(sculpting_metrics(
                scores[name][sel], y, w, mass, edges, ecfg["sculpting"]["efficiencies"],
                ecfg["bootstrap"], seed, name))
    for name in [t for t in taggers if metrics[t] is not None]:
        log.info("%-10s AUC %.4f  1/eps_B %s  1/JSD %s", name, metrics[name]["auc"],
                 metrics[name]["rejection"], metrics[name].get("inv_jsd"))
    metrics["n_test"] = {"signal": int((y == 1).sum()), "background": int((y == 0).sum())}
    return metrics
