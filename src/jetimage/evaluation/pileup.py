"""Figures of merit of pileup removal: how close each method brings a jet's mass and pT to those of
its pileup-free truth jet (the figures of PUMML, arXiv:1707.08600), with bootstrap errors."""

from __future__ import annotations

import numpy as np

from jetimage.stats import finite_std

__all__ = ["correction_figures"]


def _figures(corrected: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    dm = corrected["m"] - truth["m"]
    dpt = corrected["pt"] - truth["pt"]
    q16, q50, q84 = np.percentile(dm, [16, 50, 84])
    p16, p84 = np.percentile(dpt, [16, 84])
    corr = (float(np.corrcoef(corrected["m"], truth["m"])[0, 1])
            if np.std(corrected["m"]) > 0 and np.std(truth["m"]) > 0 else float("nan"))
    return {"mass_resolution": 0.5 * float(q84 - q16), "mass_bias": float(q50), "mass_correlation": corr,
            "pt_resolution": 0.5 * float(p84 - p16), "pt_bias": float(np.median(dpt))}


def correction_figures(corrected: dict[str, np.ndarray], truth: dict[str, np.ndarray], bootstrap: int,
                       seed: int) -> dict[str, float | None]:
    """Resolution, bias and correlation of corrected jets against their truth jets.

    Parameters
    ----------
    corrected, truth
        ``m`` and ``pt``: ``(n_jets,)`` arrays (GeV) of the same jets.
    bootstrap
        Replicas (resampled jets) of the errors; 0: none.

    Returns
    -------
    dict
        ``mass_resolution`` (half the 16-84% width of m - m_truth, GeV), ``mass_bias`` (its median,
        GeV), ``mass_correlation`` (Pearson's, m against m_truth), ``pt_resolution`` and ``pt_bias``
        (GeV), each with ``<name>_err`` (the bootstrap standard deviation; None without replicas),
        and ``n_jets``. With fewer than 2 jets every figure is None.
    """
    n = len(truth["m"])
    names = ("mass_resolution", "mass_bias", "mass_correlation", "pt_resolution", "pt_bias")
    if n < 2:
        return {"n_jets": n, **{k: None for k in names}, **{f"{k}_err": None for k in names}}
    out: dict[str, float | None] = {"n_jets": n, **_figures(corrected, truth)}
    rng = np.random.default_rng(seed)
    replicas = []
    for _ in range(bootstrap):
        i = rng.integers(0, n, n)
        replicas.append(_figures({k: v[i] for k, v in corrected.items()},
                                 {k: v[i] for k, v in truth.items()}))
    for k in names:
        err = finite_std([r[k] for r in replicas]) if bootstrap >= 2 else float("nan")
        out[f"{k}_err"] = err if np.isfinite(err) else None
        value = out[k]
        if value is not None and not np.isfinite(value):
            out[k] = None
    return out
