"""Training: split the images by seed, fit the CNN with early stopping, save model and history."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import Config, derive_seed
from .io import atomic_path, read_images

log = logging.getLogger(__name__)

#: Seed streams derived from the master seed.
SPLIT_STREAM, TRAIN_STREAM = 1, 2


def split_indices(n: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Random train/validation/test row indices (sorted), reproducible from ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions["train"] * n))
    n_val = int(round(fractions["validation"] * n))
    return {
        "train": np.sort(order[:n_train]),
        "validation": np.sort(order[n_train:n_train + n_val]),
        "test": np.sort(order[n_train + n_val:]),
    }


def dataset_split(cfg: Config, n: int) -> dict[str, np.ndarray]:
    """The split used by every stage of a study (training and evaluation agree by construction)."""
    return split_indices(n, cfg["train"]["split"], derive_seed(cfg["seed"], SPLIT_STREAM))


def balanced_weights(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Event weights rescaled so that each class has the same total weight (mean 1)."""
    out = np.asarray(weights, dtype=np.float64).copy()
    for cls in np.unique(labels):
        mask = labels == cls
        out[mask] *= 0.5 * len(labels) / out[mask].sum()
    return out


class _ProgressLog:
    """A Keras callback logging one line per epoch (progress bars do not suit log files)."""

    def __new__(cls, total_epochs: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                metrics = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
                log.info("epoch %d/%d (%.1f s): %s", epoch + 1, total_epochs,
                         time.perf_counter() - self.t0, metrics)

        return Callback()


def train(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
          history_path: str | Path) -> dict[str, list[float]]:
    """Train the configured model on the image files ``inputs``.

    The images of all files are concatenated in the given order and split with
    :func:`dataset_split`. Sample weights are the event weights, balanced per class. The best
    model on the validation loss is saved to ``model_path`` (``.keras``), the per-epoch
    history to ``history_path`` (JSON); both atomically.

    Returns
    -------
    dict
        The training history (loss, accuracy, AUC per epoch, for train and validation).
    """
    import keras

    from . import models

    tcfg = cfg["train"]
    keras.utils.set_random_seed(derive_seed(cfg["seed"], TRAIN_STREAM))
    data = read_images(inputs)
    images, labels = data["images"], data["labels"].astype(np.float32)
    weights = balanced_weights(labels, data["weights"])
    split = dataset_split(cfg, len(labels))
    tr, va = split["train"], split["validation"]
    log.info("training on %d images (%d signal), validating on %d, backend %s, devices %s",
             len(tr), int(labels[tr].sum()), len(va), keras.backend.backend(), _devices())
    norm = models.standardizer(images[tr]) if tcfg["standardize"] else None
    model = models.build(tcfg["model"], images.shape[1:], normalization=norm)
    model.compile(
        optimizer=keras.optimizers.Adam(tcfg["learning_rate"]),
        loss="binary_crossentropy",
        weighted_metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    # A backup after every epoch beside the model: a killed run resumes from the last one
    # (weights, optimizer state and epoch; the early-stopping counters restart).
    backup = Path(model_path).with_name(Path(model_path).stem + ".backup")
    # per-epoch metrics, appended across resumed runs (BackupAndRestore deletes its own folder)
    epochs_csv = Path(model_path).with_name(Path(model_path).stem + ".epochs.csv")
    if backup.exists():
        log.info("resuming from the backup in %s", backup)
    elif epochs_csv.exists():
        epochs_csv.unlink()  # left by an earlier, completed run
    Path(model_path).parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.CSVLogger(str(epochs_csv), append=True),
        keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg["patience"],
                                      restore_best_weights=True),
        _ProgressLog(tcfg["epochs"]),
    ]
    fit = model.fit(
        images[tr], labels[tr], sample_weight=weights[tr],
        validation_data=(images[va], labels[va], weights[va]),
        epochs=tcfg["epochs"], batch_size=tcfg["batch_size"], callbacks=callbacks,
        verbose=0, shuffle=True,
    )
    history = _read_history(epochs_csv) if epochs_csv.exists() else {}
    history = history or {k: [float(x) for x in v] for k, v in fit.history.items()}
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    with atomic_path(history_path) as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    shutil.rmtree(backup, ignore_errors=True)
    epochs_csv.unlink(missing_ok=True)
    log.info("saved %s after %d epochs", model_path, len(history["loss"]))
    return history


def _read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch metrics logged by CSVLogger, across resumed runs (last entry per epoch wins)."""
    rows: dict[int, dict[str, str]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    keys = [k for k in next(iter(rows.values()), {}) if k != "epoch"]
    return {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}


def _devices() -> str:
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    except ImportError:
        return "unknown"
