"""The symmetry ablation: three ways to handle the rotations and reflections of a jet image, measured.

Preprocess the symmetry away (``images.rotate: subjet``, ``images.flip: parity``), learn it from
augmented data (``train.augment: p4m``), or build it into the network (``cyclic``, arXiv:1503.07077;
``gcnn``, arXiv:1602.07576): every model on the same W and QCD jets, on fully preprocessed images
and on centred-only ones, trained on 10%, 30% and 100% of the training split
(``train.train_fraction``), with ``--seeds`` training seeds each. Reported per point: AUC and
1/eps_B at eps_S = 0.5 with bootstrap errors (the test split), their mean and spread over the
seeds, the number of parameters, the epochs and the training time per epoch.

The jets are those of a finished run of the default jet study (its generated ROOT shards), imaged
here twice with the two preprocessings.

Usage::

    python benchmarks/symmetry.py results/jets/samples --out results/symmetry [--seeds 1]

Writes ``<out>/symmetry.json``, ``<out>/symmetry.md`` and ``<out>/symmetry.png`` (the learning
curves: 1/eps_B against the number of training jets).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]

#: name -> (train.model, train.augment, train.standardize): the per-pixel standardization breaks
#: the exact symmetry of gcnn (the cyclic model copies the raw pixels, before it).
MODELS = {
    "convnet": ("convnet", "none", True),
    "convnet_p4m_aug": ("convnet", "p4m", True),
    "cyclic": ("cyclic", "none", True),
    "gcnn": ("gcnn", "none", False),
}

#: name -> the images' rotation and flip.
PREPROCESSING = {"full": ("subjet", "parity"), "centred": ("none", "none")}

FRACTIONS = (0.1, 0.3, 1.0)


def study_config(preprocessing: str) -> dict:
    """The default jet study of config.yaml with the given preprocessing, no variants."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = {"seed": raw["seed"], "generation": raw["generation"], **copy.deepcopy(raw["studies"]["jets"]),
           "study": f"symmetry_{preprocessing}"}
    cfg["images"]["rotate"], cfg["images"]["flip"] = PREPROCESSING[preprocessing]
    cfg["train"]["variants"] = []
    cfg["train"]["tensorboard"] = False
    return cfg


def images_of(cfg, samples: Path, out: Path) -> list[Path]:
    """The study's image files made from the shards under ``samples/<sample>/`` (config order)."""
    from jetimage.stages.images import make_sample_images

    paths = []
    for name in cfg.sample_names:
        path = out / f"{name}.h5"
        if not path.exists():
            make_sample_images(cfg, name, sorted((samples / name).glob("shard*.root")), path)
        paths.append(path)
    return paths


def one_point(raw: dict, images: list[Path], out: Path) -> dict:
    """Train one model and score its test split."""
    from jetimage.config import validate
    from jetimage.evaluation.metrics import tagger_metrics
    from jetimage.evaluation.scoring import predict
    from jetimage.formats.hdf5 import read_columns
    from jetimage.stages.train import train
    from jetimage.training.data import dataset_split
    from jetimage.training.loading import load_model

    cfg = validate(raw)
    t0 = time.perf_counter()
    history = train(cfg, images, out / "model.keras", out / "history.json")
    seconds = time.perf_counter() - t0
    cols = read_columns(images, ["labels", "weights"])
    split = dataset_split(cfg, len(cols["labels"]))
    test = split["test"]
    model = load_model(out / "model.keras")
    score = predict(model, images, test)
    m = tagger_metrics(score, cols["labels"][test].astype(int), cols["weights"][test].astype(np.float64),
                       [0.5], cfg["evaluate"]["bootstrap"], cfg["seed"])
    n_train = round(cfg["train"]["train_fraction"] * len(split["train"]))
    epochs = len(history["loss"])
    return {"auc": m["auc"], "auc_err": m["auc_err"], "rejection": m["rejection"]["0.5"],
            "rejection_err": m["rejection_err"]["0.5"], "n_train": n_train, "epochs": epochs,
            "seconds": seconds, "seconds_per_epoch": seconds / max(epochs, 1),
            "parameters": int(model.count_params())}


def summarize(points: list[dict]) -> dict:
    """Mean and spread over seeds of one (preprocessing, model, fraction)."""
    out = {}
    for key in ("auc", "rejection"):
        v = np.array([p[key] for p in points if p[key] is not None], float)
        out[key] = float(v.mean()) if len(v) else None
        out[f"{key}_err"] = float(np.mean([p[f"{key}_err"] or 0.0 for p in points]))
        out[f"{key}_seed_std"] = float(v.std(ddof=1)) if len(v) > 1 else None
    for key in ("n_train", "parameters"):
        out[key] = points[0][key]
    out["seconds_per_epoch"] = float(np.mean([p["seconds_per_epoch"] for p in points]))
    out["epochs"] = [p["epochs"] for p in points]
    return out


def table(result: dict) -> str:
    rows = ["| images | model | parameters | training jets | AUC | 1/eps_B at eps_S = 0.5 | s per epoch |",
            "|---|---|---|---|---|---|---|"]
    for prep, models in result["points"].items():
        for model, fractions in models.items():
            for s in fractions.values():
                spread = f", seeds ± {s['rejection_seed_std']:.1f}" if s["rejection_seed_std"] else ""
                rows.append(f"| {prep} | {model} | {s['parameters']:,} | {s['n_train']:,} | "
                            f"{s['auc']:.4f} ± {s['auc_err']:.4f} | {s['rejection']:.1f} ± "
                            f"{s['rejection_err']:.1f}{spread} | {s['seconds_per_epoch']:.1f} |")
    return "\n".join(rows) + "\n"


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result["points"]), figsize=(7 * len(result["points"]), 5.5), sharey=True)
    for ax, (prep, models) in zip(np.atleast_1d(axes), result["points"].items(), strict=True):
        for model, fractions in models.items():
            s = list(fractions.values())
            ax.errorbar([p["n_train"] for p in s], [p["rejection"] for p in s],
                        yerr=[p["rejection_err"] for p in s], marker="o", capsize=3, label=model)
        ax.set_xscale("log")
        ax.set_xlabel("training jets")
        ax.set_title(f"{prep} images")
        ax.legend()
    np.atleast_1d(axes)[0].set_ylabel(r"$1/\varepsilon_B$ at $\varepsilon_S$ = 0.5")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="results/jets/samples of a finished default run")
    parser.add_argument("--out", type=Path, default=Path("results/symmetry"))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="models on centred-only images")
    parser.add_argument("--full-models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="models on fully preprocessed images (the symmetry already removed)")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    args = parser.parse_args(argv)
    from jetimage.config import validate

    result: dict = {"points": {}, "seeds": args.seeds}
    for prep in PREPROCESSING:
        raw = study_config(prep)
        (args.out / prep).mkdir(parents=True, exist_ok=True)
        images = images_of(validate(raw), args.samples, args.out / prep)
        result["points"][prep] = {}
        for name in args.full_models if prep == "full" else args.models:
            model, augment, standardize = MODELS[name]
            result["points"][prep][name] = {}
            for fraction in args.fractions:
                points = []
                for seed in range(args.seeds):
                    point_raw = copy.deepcopy(raw)
                    point_raw["train"].update(model=model, augment=augment, standardize=standardize,
                                              train_fraction=fraction, seed=seed)
                    out = args.out / prep / name / f"f{fraction:g}_s{seed}"
                    points.append(one_point(point_raw, images, out))
                    print(prep, name, fraction, seed, json.dumps(points[-1]), flush=True)
                result["points"][prep][name][f"{fraction:g}"] = summarize(points)
    (args.out / "symmetry.json").write_text(json.dumps(result, indent=1))
    (args.out / "symmetry.md").write_text(table(result))
    figure(result, args.out / "symmetry.png")
    print(table(result))
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
