"""Spread of a finished study's CNN figures over training seeds.

The bootstrap errors of ``metrics.json`` cover the test sample only; this retrains the study's
model with ``train.seed`` = 1 .. n-1 on the same images and the same split (the split does not
depend on ``train.seed``), evaluates each, and prints the figures of every seed (seed 0 is the
study's own ``metrics.json``) with their mean and standard deviation: the CNN AUC and 1/eps_B,
and for an event study the factor over the cut-based selection.

Usage::

    python benchmarks/seed_spread.py results/events [--seeds 3]

Writes ``<study>/seeds/seed<k>/`` (config, model, metrics) and prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def figures(metrics: dict) -> dict[str, float | None]:
    out = {"cnn_auc": metrics["cnn"]["auc"], "cnn_rejection_0.5": metrics["cnn"]["rejection"].get("0.5")}
    if "factor" in metrics:
        out["factor"] = metrics["factor"]
    return out


def run_seed(study: Path, cfg: dict, seed: int) -> dict:
    out = study / "seeds" / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.yaml"
    config.write_text(json.dumps({**cfg, "train": {**cfg["train"], "seed": seed}}))
    images = [str(study / "images" / f"{s['name']}.h5") for s in cfg["samples"]]  # config order
    jetimage = [sys.executable, "-m", "jetimage"]
    with open(out / "log.txt", "w") as log:
        for args in (["train", "--inputs", *images, "--model", str(out / "model.keras"),
                      "--history", str(out / "history.json")],
                     ["evaluate", "--inputs", *images, "--model", str(out / "model.keras"),
                      "--metrics", str(out / "metrics.json")]):
            subprocess.run([*jetimage, args[0], "--config", str(config), *args[1:]], check=True,
                           stdout=log, stderr=subprocess.STDOUT)
    return json.loads((out / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="results/<study> of a finished run")
    parser.add_argument("--seeds", type=int, default=3,
                        help="number of training seeds, the study's own included")
    args = parser.parse_args(argv)
    cfg = json.loads((args.study / "config.yaml").read_text())
    rows = {0: figures(json.loads((args.study / "metrics.json").read_text()))}
    for seed in range(1, args.seeds):
        rows[seed] = figures(run_seed(args.study, cfg, seed))
        print(f"seed {seed}: {rows[seed]}", flush=True)
    summary = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows.values() if r[key] is not None], dtype=float)
        summary[key] = {"values": values.tolist(), "mean": float(values.mean()),
                        "std": float(values.std(ddof=1)) if len(values) > 1 else None}
        print(f"{key:>20}: " + "  ".join(f"{v:.4g}" for v in values)
              + f"   mean {values.mean():.4g} std {summary[key]['std'] or float('nan'):.2g}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
