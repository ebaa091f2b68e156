"""Evaluation on the test split: CNN scores, physics baselines, ROC curves and metrics.

Conventions (HEP): signal efficiency eps_S and background efficiency eps_B of a cut
``score > c``; the background rejection is 1/eps_B. All efficiencies use the event weights.
Single-variable baselines (jet mass, tau21) are likelihood ratios p_S(x)/p_B(x) estimated with
histograms of the training split, which is the optimal use of one variable (arXiv:1511.05190).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .io import atomic_path, read_images
from .train import dataset_split

log = logging.getLogger(__name__)

#: Baseline variables: metrics name -> HDF5 column, with the physical range of the histogram.
BASELINES: dict[str, tuple[str, tuple[float, float]]] = {
    "mass": ("jet_m", (0.0, 300.0)),
    "tau21": ("tau21", (0.0, 1.0)),
}


def roc_curve(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Signal and background efficiencies of cuts ``score >= c`` for every distinct c.

    Returns
    -------
    eps_s, eps_b : np.ndarray
        Increasing arrays from (0, 0) to (1, 1).
    """
    from sklearn.metrics import roc_curve as sk_roc

    fpr, tpr, _ = sk_roc(labels, scores, sample_weight=weights, drop_intermediate=False)
    return tpr, fpr


def auc(eps_s: np.ndarray, eps_b: np.ndarray) -> float:
    """Area under eps_S(eps_B): probability that a signal jet scores above a background jet."""
    return float(np.trapezoid(eps_s, eps_b))


def rejection_at(eps_s: np.ndarray, eps_b: np.ndarray, target: float) -> float:
    """1/eps_B at signal efficiency ``target``.

    Interpolates linearly between the last ROC point below ``target`` and the first point at
    or above it, so that on a plateau of eps_S (ties) the lowest eps_B is taken.
    """
    i = int(np.searchsorted(eps_s, target, side="left"))
    if i >= len(eps_s):
        return 1.0
    if i == 0 or eps_s[i] == target:
        eps_b_at = float(eps_b[i])
    else:
        f = (target - eps_s[i - 1]) / (eps_s[i] - eps_s[i - 1])
        eps_b_at = float(eps_b[i - 1] + f * (eps_b[i] - eps_b[i - 1]))
    return 1.0 / eps_b_at if eps_b_at > 0 else float("inf")


def likelihood_ratio(
    train_x: np.ndarray, train_y: np.ndarray, train_w: np.ndarray, x: np.ndarray,
    bins: int, value_range: tuple[float, float],
) -> np.ndarray:
    """Binned likelihood ratio p_S(x)/p_B(x) from the training split, evaluated at ``x``.

    Values outside the range fall into the first or last bin; NaNs get the lowest score.
    Empty background bins get a ratio as if they held half an entry, so they rank highest
    but stay finite.
    """
    edges = np.linspace(*value_range, bins + 1)
    ok = np.isfinite(train_x)
    hs, _ = np.histogram(np.clip(train_x[ok & (train_y == 1)], *value_range), edges,
                         weights=train_w[ok & (train_y == 1)])
    hb, _ = np.histogram(np.clip(train_x[ok & (train_y == 0)], *value_range), edges,
                         weights=train_w[ok & (train_y == 0)])
    ps = hs / max(hs.sum(), 1e-300)
    floor = 0.5 * train_w[train_y == 0].mean() if (train_y == 0).any() else 1.0
    pb = np.maximum(hb, floor) / max(hb.sum(), 1e-300)
    ratio = ps / pb
    idx = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
    return np.where(np.isfinite(x), ratio[idx], -1.0)


def tagger_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   efficiencies: Sequence[float]) -> dict[str, Any]:
    """``{"auc": ..., "rejection": {"0.3": ..., "0.5": ...}}`` for one tagger."""
    eps_s, eps_b = roc_curve(scores, labels, weights)
    return {
        "auc": auc(eps_s, eps_b),
        "rejection": {f"{e:g}": rejection_at(eps_s, eps_b, e) for e in efficiencies},
    }


def evaluate(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
             metrics_path: str | Path, scores_path: str | Path | None = None,
             preprocessing_path: str | Path | None = None) -> dict[str, Any]:
    """Score the test split with the CNN and the baselines; write ``metrics.json``.

    Returns
    -------
    dict
        ``{tagger: {"auc": x, "rejection": {"0.3": r, "0.5": r}}}`` for ``cnn``, ``mass`` and
        ``tau21``, plus ``n_test`` (jets per class in the test split) and, when
        ``preprocessing_path`` is given, ``preprocessing``: the image-mass study of
        :func:`jetimage.diagnostics.run_study`.
    """
    import keras

    ecfg = cfg["evaluate"]
    data = read_images(inputs, columns=[c for c, _ in BASELINES.values()])
    labels, weights = data["labels"].astype(int), data["weights"].astype(np.float64)
    split = dataset_split(cfg, len(labels))
    tr, te = split["train"], split["test"]
    model = keras.saving.load_model(model_path, safe_mode=True)
    scores = {"cnn": model.predict(data["images"][te], batch_size=1024, verbose=0).ravel()}
    for name, (column, value_range) in BASELINES.items():
        x = data[column].astype(np.float64)
        scores[name] = likelihood_ratio(x[tr], labels[tr], weights[tr], x[te],
                                         ecfg["likelihood_bins"], value_range)
    metrics: dict[str, Any] = {
        name: tagger_metrics(s, labels[te], weights[te], ecfg["efficiencies"])
        for name, s in scores.items()
    }
    metrics["n_test"] = {"signal": int((labels[te] == 1).sum()),
                         "background": int((labels[te] == 0).sum())}
    if preprocessing_path is not None:
        metrics["preprocessing"] = json.loads(Path(preprocessing_path).read_text())
    for name in scores:
        log.info("%-6s AUC %.4f  1/eps_B %s", name, metrics[name]["auc"], metrics[name]["rejection"])
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    if scores_path is not None:
        with atomic_path(scores_path) as tmp:
            np.savez(tmp, labels=labels[te], weights=weights[te],
                     **{f"score_{k}": v for k, v in scores.items()},
                     **{k: data[c][te] for k, (c, _) in BASELINES.items()})
    return metrics
