"""Figures in HEP style (mplhep), each written as PDF and PNG.

One function per figure; each takes arrays (not files) and an output stem ``path/name``
to which ``.pdf`` and ``.png`` are added. Files are written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path  # noqa: E402

#: Display names of the taggers.
LABELS = {"cnn": "CNN (jet image)", "mass": "Trimmed jet mass", "tau21": r"$\tau_{21}$"}


def _save(fig, stem: str | Path, suffixes: Sequence[str] = (".pdf", ".png")) -> list[Path]:
    out = []
    for suffix in suffixes:
        path = Path(f"{stem}{suffix}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, format=suffix[1:])
        out.append(path)
    plt.close(fig)
    return out


def _label(ax, text: str, sqrt_s_tev: float = 13.0) -> None:
    hep.label.exp_label(exp="jetimage", llabel="Simulation", rlabel=rf"$\sqrt{{s}}$ = {sqrt_s_tev:g} TeV",
                        ax=ax)
    ax.text(0.04, 0.04, text, transform=ax.transAxes, fontsize=13, va="bottom")


def roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], stem: str | Path,
        text: str = "", sqrt_s_tev: float = 13.0) -> list[Path]:
    """Background rejection 1/eps_B against signal efficiency eps_S, log scale.

    Parameters
    ----------
    curves
        Tagger name -> (eps_s, eps_b) arrays, increasing.
    stem
        Output path without suffix.
    text
        Selection text printed in the corner (pT window, mass window).
    """
    hep.style.use("ATLAS")
    fig, ax = plt.subplots(figsize=(8, 7))
    for name, (eps_s, eps_b) in curves.items():
        ok = (eps_b > 0) & (eps_s > 0.05)
        ax.plot(eps_s[ok], 1.0 / eps_b[ok], label=LABELS.get(name, name), lw=2)
    ax.set_yscale("log")
    ax.set_xlim(0.05, 1.0)
    ax.set_ylim(bottom=1.0)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
    ax.legend(loc="upper right")
    _label(ax, text, sqrt_s_tev)
    return _save(fig, stem)
