"""A model's scores streamed over rows of image files, and summaries of the scored images (per-class
mean images, the correlation of the score with each pixel) accumulated on the way."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.training.data import iterate_rows, model_inputs

__all__ = ["ImageSummary", "predict"]


class ImageSummary:
    """Per-class weighted mean images and the per-pixel correlation of a score with the pixel
    intensity, accumulated block by block (float64 sums), so the images need not fit in memory.

    The pixel intensity is the sum over the energy channels (every channel but ``charged_count``).
    """

    def __init__(self, channels: Sequence[str]) -> None:
        self.use = [c != "charged_count" for c in channels] if len(channels) > 1 else [True]
        self.sums: dict[str, Any] = {}

    def add(self, images: np.ndarray, score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> None:
        """Accumulate ``(n, n_eta, n_phi, n_channels)`` images with their ``(n,)`` score, labels, weights."""
        pix = images[..., np.asarray(self.use)].sum(axis=-1, dtype=np.float64)
        flat = pix.reshape(len(pix), -1)
        w = np.asarray(weights, np.float64)
        terms = {"w": w.sum(), "ws": w @ score, "wss": w @ (score * score), "wp": w @ flat,
                 "wpp": w @ (flat * flat), "wsp": (w * score) @ flat,
                 "sig": (w * (labels == 1)) @ flat, "w_sig": w[labels == 1].sum(),
                 "bkg": (w * (labels == 0)) @ flat, "w_bkg": w[labels == 0].sum()}
        self.shape = pix.shape[1:]
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def result(self) -> dict[str, np.ndarray]:
        """``mean_image_signal``, ``mean_image_background`` and ``corr_cnn_pixel``, ``(n_eta, n_phi)``;
        pixels without spread get correlation 0."""
        t = self.sums
        mean_s, mean_p = t["ws"] / t["w"], t["wp"] / t["w"]
        cov = t["wsp"] / t["w"] - mean_s * mean_p
        var = (t["wpp"] / t["w"] - mean_p**2) * (t["wss"] / t["w"] - mean_s**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.nan_to_num(cov / np.sqrt(np.maximum(var, 0.0)), nan=0.0, posinf=0.0, neginf=0.0)
        mean = {c: t[c] / t[f"w_{c}"] if t[f"w_{c}"] > 0 else np.zeros_like(t["wp"]) for c in ("sig", "bkg")}
        return {"mean_image_signal": mean["sig"].reshape(self.shape),
                "mean_image_background": mean["bkg"].reshape(self.shape),
                "corr_cnn_pixel": corr.reshape(self.shape)}


def predict(model: Any, paths: Sequence[str | Path], rows: np.ndarray,
            summary: tuple[ImageSummary, np.ndarray, np.ndarray] | None = None,
            batch_size: int = 256, variables: np.ndarray | None = None) -> np.ndarray:
    """Model scores ``(len(rows),)`` of the sorted ``rows``, streamed from the image files.

    ``variables``: ``(n_total, n_variables)`` the physics variables of every global row, for a model
    that takes them beside the image (:func:`jetimage.training.data.example_variables`).

    With ``summary = (ImageSummary, labels, weights)`` (per global row) the images are also
    accumulated into the summary, in the same pass. Memory: a block of 4096 images plus the
    activations of ``batch_size`` images.
    """
    out = []
    for r, images in iterate_rows(paths, rows):
        x = model_inputs(images, variables, r)
        score = model.predict(x, batch_size=batch_size, verbose=0).ravel().astype(np.float64)
        if summary is not None:
            summary[0].add(images, score, summary[1][r], summary[2][r])
        out.append(score)
    return np.concatenate(out) if out else np.zeros(0)
