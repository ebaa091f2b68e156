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
from jetimage.evaluation.baselines import BASELINES, KINDS, TAGGERS_OF, Examples, cut_based
from jetimage.evaluation.metrics import BOOTSTRAP_STREAM, json_safe, null_keys, tagger_metrics
from jetimage.evaluation.scoring import ImageSummary, predict
from jetimage.evaluation.two_stage import TwoStage, fit_two_stage
from jetimage.formats.atomic import atomic_paths
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import check_class_weights, image_attrs, read_columns
from jetimage.training.data import example_variables
from jetimage.training.definition import check_definition, check_tagger, model_variables, stored_definition
from jetimage.training.loading import load_model

__all__ = ["check_inputs", "evaluate", "example_index", "finite_scores", "sculpting_edges"]


log = logging.getLogger(__name__)


def check_inputs(model_path: str | Path, attrs: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a pixel model (:func:`check_tagger`), and image files made differently from the model's
    training images: ``attrs`` (image file
    -> its :func:`~jetimage.io.image_attrs`) against the model's input definition; one line naming
    the file and the first setting. A model or file that does not say how its images were made (a
    model not trained by jetimage, a file not written by the images stage) is used with a warning."""
    definition = stored_definition(model_path)
    if definition is None:
        log.warning("%s: the model holds no input definition: the images are not checked against it",
                    model_path)
        return
    check_tagger(definition, model_path)
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
             variants: Mapping[str, str | Path] | None = None,
             two_stage_path: str | Path | None = None) -> dict[str, Any]:
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
    ``cnn_<name>`` beside the others. A model that takes physics variables beside the image (its
    input definition names them) is given them from the image files' columns.

    With ``evaluate.two_stage`` variables, the two-stage tagger ``cnn_bdt`` (the CNN's score and
    those variables in a boosted tree, :func:`fit_two_stage`, fit on the validation split) is scored
    too and saved to ``two_stage_path``. Kind events: ``factors`` holds, for every CNN-based tagger,
    its signal efficiency at the cut-based background efficiency over the cut-based one.
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
    own = _variables(model_path, inputs)
    cnn = {"test": finite_scores(predict(model, inputs, te, (summary, ex.labels, w_summary), variables=own),
                                 model_path)}
    va = ex.split["validation"]
    va = va[ex.selected[va]]
    cnn["validation"] = finite_scores(predict(model, inputs, va, variables=own), model_path, "validation")
    scores, extra = baselines(cfg, inputs, ex, cnn)
    scores = {"cnn": cnn["test"], **scores}
    two_stage = _two_stage(cfg, inputs, ex, cnn, va) if two_stage_path is not None else None
    if two_stage is not None:
        scores["cnn_bdt"] = two_stage[0]
    for name, path in (variants or {}).items():  # the other CNNs (train.variants)
        variant = load_model(path)
        check_inputs(path, attrs)
        own = _variables(path, inputs)
        scores[f"cnn_{name}"] = finite_scores(predict(variant, inputs, te, variables=own), path)
    mass = ex.columns["jet_m"][te][sel].astype(np.float64) if cfg.kind == "jets" else None
    metrics = _metrics(cfg, scores, ex.labels[te][sel], ex.weights[te][sel], sel, mass)
    metrics.update(extra)
    if cfg.kind == "events":
        metrics["factors"] = _factors(cfg, inputs, ex, scores)
    if image_mass_path is not None:
        metrics["preprocessing"] = json.loads(Path(image_mass_path).read_text())
    if nulls := null_keys(metrics):
        log.warning("%s: null (not computable from the test split) for %s", metrics_path, ", ".join(nulls))
    outputs = [p for p in (metrics_path, scores_path, two_stage_path) if p is not None]
    with atomic_paths(*outputs) as tmps:  # every file or none
        written = dict(zip(outputs, tmps, strict=True))
        written[metrics_path].write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
        if scores_path is not None:
            columns = {k: v[te] for k, v in ex.columns.items()}
            if cfg.kind == "jets":
                columns = {"mass": columns.pop("jet_m"), **columns}
            # numpy's stubs match a ** of arrays against savez's allow_pickle: bool
            np.savez(written[scores_path], labels=ex.labels[te], weights=ex.weights[te], in_window=sel,
                     **{f"score_{k}": v for k, v in scores.items()}, **columns,  # type: ignore[arg-type]
                     **summary.result(), **example_index(inputs, te))  # type: ignore[arg-type]
        if two_stage_path is not None:  # without evaluate.two_stage: a tagger of no classifier
            (two_stage[1] if two_stage else TwoStage([], None)).save(written[two_stage_path])
    return metrics


def _variables(model_path: str | Path, inputs: Sequence[str | Path]) -> np.ndarray | None:
    """The physics variables of every row that the model takes beside the image (None: none)."""
    return example_variables(inputs, model_variables(stored_definition(model_path)))


def _two_stage(cfg: Config, inputs: Sequence[str | Path], ex: Examples, cnn: dict[str, np.ndarray],
               va: np.ndarray) -> tuple[np.ndarray, TwoStage] | None:
    """The test scores of the two-stage tagger and the tagger, fit on the validation examples
    ``va`` (None without ``evaluate.two_stage``)."""
    names = cfg["evaluate"]["two_stage"]
    if not names:
        return None
    columns = read_columns(inputs, names)
    x = np.stack([columns[n].astype(np.float64) for n in names], axis=1)
    used = np.concatenate([va, ex.split["test"]])
    if not np.isfinite(x[used]).all():
        log.warning("evaluate.two_stage: some examples have non-finite %s: cnn_bdt not computed", names)
        return None
    tagger = fit_two_stage(cnn["validation"], x[va], names, ex.labels[va], ex.weights[va],
                           derive_seed(cfg["seed"], BOOTSTRAP_STREAM, 2))
    log.info("two-stage tagger cnn_bdt: CNN score and %s, %d trees fit on %d validation examples",
             ", ".join(names), tagger.classifier.n_iter_, len(va))
    return tagger.score(cnn["test"], x[ex.split["test"]]), tagger


def _factors(cfg: Config, inputs: Sequence[str | Path], ex: Examples, scores: dict[str, np.ndarray]
             ) -> dict[str, Any]:
    """Events: per CNN-based tagger, its factor over the cut-based selection with its error."""
    te = ex.split["test"]
    y, w, cut = ex.labels[te], ex.weights[te], ex.columns["cut_pass"][te].astype(bool)
    out = {}
    for name in [n for n in scores if n.startswith("cnn")]:
        r = cut_based(cfg, inputs, scores[name], y, w, cut, (ex.labels, ex.weights))
        out[name] = {"factor": r["factor"], "factor_err": r.get("factor_err", float("nan")),
                     "sig_eff_at_cut_bkg_eff": r["cnn_sig_eff_at_cut_bkg_eff"]}
    return out


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
