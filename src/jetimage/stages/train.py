"""The train stage, one trainer for every study: split the images by seed, stream them from HDF5,
fit the CNN with early stopping and per-epoch backups, save model and history.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.config import Config, ConfigError, derive_seed
from jetimage.formats.atomic import atomic_path, atomic_paths, ensure_space, remove_stale_temporaries
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import check_class_weights, read_columns
from jetimage.training.data import (
    SPLIT_STREAM,
    ImageStream,
    balanced_weights,
    check_classes,
    dataset_split,
    example_variables,
    standardization_sample,
    train_seed,
)
from jetimage.training.loading import register_custom_objects
from jetimage.training.pixels import pixel_channels
from jetimage.training.resume import restore_backup, training_fingerprint, trim_epochs_csv, write_backup

__all__ = ["VARIANT_OVERRIDES", "accelerators", "exclusive", "start_from", "train", "training_targets",
           "variant_config", "variant_objective", "variant_of"]


log = logging.getLogger(__name__)


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


class _EpochCheckpoint:
    """A Keras callback keeping the model of every epoch as ``<dir>/epoch_NNN.keras``.

    Each file is written to a temp path and renamed, so a kill never leaves a half-written
    checkpoint (``keras.callbacks.ModelCheckpoint`` writes in place).
    """

    def __new__(cls, directory: Path, definition: dict[str, Any]):
        import keras

        from jetimage.training.definition import save_definition

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                with atomic_path(directory / f"epoch_{epoch + 1:03d}.keras") as tmp:
                    self.model.save(tmp)
                    save_definition(tmp, definition)

        return Callback()


class _FiniteLoss:
    """A Keras callback, first of all: stop with :class:`InputError` at the first batch whose loss
    is NaN or infinite, before the epoch's log row, backup or checkpoint take the broken weights
    (the backups of earlier epochs stay: a rerun with other settings discards them)."""

    def __new__(cls, model_path: str | Path):
        import keras

        class Callback(keras.callbacks.Callback):
            epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                loss = (logs or {}).get("loss")
                if loss is not None and not np.isfinite(float(loss)):
                    raise InputError(f"{model_path}: the training loss is not finite at epoch "
                                     f"{self.epoch + 1} (batch {batch + 1}: loss {float(loss)}): check "
                                     "train.learning_rate and the inputs' weights")

        return Callback()


class _EarlyStopping:
    """``keras.callbacks.EarlyStopping`` on the validation loss, restoring the best weights, that
    starts from the counters of a resume backup (``state``: :func:`restore_backup`) instead of
    afresh, and exposes them (:meth:`state`) for the next backup."""

    def __new__(cls, patience: int, state: dict[str, Any] | None):
        import keras

        class Callback(keras.callbacks.EarlyStopping):
            def on_train_begin(self, logs=None):
                super().on_train_begin(logs)
                if state is not None:
                    counters = state["early_stopping"]
                    self.wait, self.best = counters["wait"], counters["best"]
                    self.best_epoch, self.stopped_epoch = counters["best_epoch"], counters["stopped_epoch"]
                    self.best_weights = state["best_weights"]

            def state(self) -> dict[str, Any]:
                return {"wait": int(self.wait), "best": None if self.best is None else float(self.best),
                        "best_epoch": int(self.best_epoch), "stopped_epoch": int(self.stopped_epoch)}

        return Callback(monitor="val_loss", patience=patience, restore_best_weights=True)


class _Backup:
    """A Keras callback writing the resume backup after every epoch, after the early stopping has
    counted it (:func:`write_backup`)."""

    def __new__(cls, backup: Path, fingerprint: dict[str, Any], stopping: Any):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                write_backup(backup, self.model, epoch + 1, fingerprint, stopping)

        return Callback()


class _SpaceCheck:
    """A Keras callback, first at every epoch end: stop with :class:`OutputError` naming the
    model's folder when it lacks the space for the epoch's backup and checkpoint. Keras writes
    the checkpoint with HDF5, and HDF5 can crash (segfault) when the disk fills under it.
    """

    def __new__(cls, backup: Path):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                state = [*self.model.weights, *self.model.optimizer.variables]
                nbytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in state)
                ensure_space(backup, 3 * nbytes)  # the backup, the checkpoint, the model

        return Callback()


def accelerators() -> int:
    """Number of GPUs the Keras backend sees (0 on CPU)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return len(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return sum(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return torch.cuda.device_count()
    except (ImportError, RuntimeError):
        pass
    return 0


def _strategy_scope(n_gpus: int) -> Any:
    """A context in which to build the model: data-parallel over several GPUs, else a no-op."""
    import contextlib

    import keras

    if n_gpus > 1 and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    if n_gpus > 1 and keras.backend.backend() == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    return contextlib.nullcontext()


def _set_epoch_callback(streams: Sequence[Any]) -> Any:
    import keras

    class SetEpoch(keras.callbacks.Callback):
        """Gives the datasets the epoch number (also after a resume) for their shuffle."""

        def on_epoch_begin(self, epoch, logs=None):
            for s in streams:
                s.set_epoch(epoch)

    return SetEpoch()


def _streams(cfg: Config, inputs: Sequence[str | Path], labels: np.ndarray, weights: np.ndarray,
             variables: np.ndarray | None = None) -> tuple[Any, Any]:
    """The training stream (shuffled per epoch) and the validation stream of the split, in batches
    of ``train.batch_size`` (with the physics ``variables`` of every row beside the images, if any;
    for ``train.task: images``, the input channels with the per-pixel targets and weights)."""
    tcfg = cfg["train"]
    split = dataset_split(cfg, len(labels))
    classes = labels if labels.ndim == 1 else labels[:, 0]  # DisCo's targets carry the mass beside
    for part in ("train", "validation"):
        check_classes(classes, split[part], part, inputs)
        check_class_weights(classes, weights, split[part], part, inputs)
    pixels = pixel_channels(inputs, tcfg["inputs"], tcfg["target"]) if tcfg["task"] == "images" else None
    if tcfg["train_fraction"] < 1.0:  # learning curves: a seeded subset of the training split
        rows = split["train"]
        keep = np.random.default_rng(derive_seed(cfg["seed"], SPLIT_STREAM, 2)).permutation(len(rows))
        split["train"] = np.sort(rows[keep[:max(1, round(tcfg["train_fraction"] * len(rows)))]])
        check_classes(classes, split["train"], "train", inputs)
    common = dict(block_rows=tcfg["block_rows"], blocks_per_group=tcfg["shuffle_blocks"],
                  workers=tcfg["workers"], variables=variables, pixels=pixels)
    train_data = ImageStream.create(inputs, split["train"], labels, weights, tcfg["batch_size"],
                                    shuffle=True, seed=train_seed(cfg, 1), **common)
    # validation batches of twice the training batch: the activations of a batch, not the
    # number of images, set the trainer's memory (a 64 x 64 event image makes 2 MB in bhimji's
    # first layer)
    val_data = ImageStream.create(inputs, split["validation"], labels, weights,
                                  2 * tcfg["batch_size"], shuffle=False, **common)
    return train_data, val_data


def _compiled_model(cfg: Config, train_data: Any, n_gpus: int, lam: float | None = None,
                    dropout: float | None = None) -> Any:
    """The configured zoo model, its standardization adapted on training images (their input
    channels), compiled (with the DisCo loss of weight ``lam`` when given,
    :func:`jetimage.decorrelation.disco.objective`; with the ``dropout`` rate when given, else the
    model's own; a pixel model of ``train.task: images`` with :func:`pixel_objective`)."""
    import keras

    from jetimage.decorrelation.disco import objective
    from jetimage.models import zoo
    from jetimage.training.pixels import pixel_objective

    tcfg = cfg["train"]
    with _strategy_scope(n_gpus):
        norm = None
        if tcfg["standardize"]:
            sample = standardization_sample(train_data, tcfg["standardize_sample"], train_seed(cfg, 1))
            adapt = zoo.channel_standardizer if tcfg["task"] == "images" else zoo.standardizer
            norm = adapt(zoo.transform_pixels(sample, tcfg["transform"]))
        variables = None
        if train_data.variables is not None:  # statistics of the training split only
            rows = np.concatenate(train_data.blocks)
            variables = zoo.variable_standardizer(train_data.variables[rows])
        first = train_data[0][0]
        shape = tuple((first["images"] if isinstance(first, dict) else first).shape[1:])
        if tcfg["task"] == "images":
            model = zoo.PIXEL_ZOO[tcfg["model"]](shape, normalization=norm, transform=tcfg["transform"])
        else:
            model = zoo.build(tcfg["model"], shape, normalization=norm, augment=tcfg["augment"],
                              transform=tcfg["transform"], variables=variables,
                              **({} if dropout is None else {"dropout": dropout}))
        loss, metrics = pixel_objective() if tcfg["task"] == "images" else objective(lam)
        model.compile(
            optimizer=keras.optimizers.Adam(float(tcfg["learning_rate"])),  # Keras refuses an int
            loss=loss,
            weighted_metrics=metrics,
            jit_compile=bool(n_gpus > 0 and tcfg["jit_compile"]),
        )
    return model


def _training_files(model_path: str | Path) -> dict[str, Path]:
    """Files beside the model: the resume ``backup``, the per-epoch ``epochs_csv`` (appended
    across resumed runs) and the kept per-epoch ``checkpoints``."""
    model_path = Path(model_path)
    return {k: model_path.with_name(model_path.stem + suffix) for k, suffix in
            (("backup", ".backup"), ("epochs_csv", ".epochs.csv"), ("checkpoints", ".checkpoints"))}


@contextlib.contextmanager
def exclusive(model_path: str | Path) -> Iterator[None]:
    """Hold ``<model stem>.lock`` for the whole training, so two trainings never share a backup.

    Raises
    ------
    InputError
        Naming the model when another process holds the lock (an orphaned job, a second run).
    """
    lock = Path(model_path).with_name(Path(model_path).stem + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the lock file is removed at the end: a lock taken on a file already removed (opened
            # just before another training ended) is no lock
            if not lock.exists() or os.stat(lock).st_ino != os.fstat(handle.fileno()).st_ino:
                raise BlockingIOError
        except BlockingIOError:
            raise InputError(f"{model_path}: another training of this model is running (it holds "
                             f"{lock}); wait for it to end or stop it, then rerun") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # while still held: no training is left without its lock
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resume(files: dict[str, Path], model: Any, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The state of a usable resume backup, restored into ``model`` (:func:`restore_backup`); else
    None, with the backup and the files of earlier runs removed."""
    state = restore_backup(files["backup"], model, fingerprint) if files["backup"].exists() else None
    if state is None:  # files left by an earlier, completed or discarded run
        shutil.rmtree(files["backup"], ignore_errors=True)
        files["epochs_csv"].unlink(missing_ok=True)
        shutil.rmtree(files["checkpoints"], ignore_errors=True)
    else:
        log.info("resuming from the backup in %s after epoch %d", files["backup"], state["epoch"])
        trim_epochs_csv(files["epochs_csv"], state["epoch"])
    files["checkpoints"].mkdir(parents=True, exist_ok=True)
    for folder in (files["checkpoints"], files["backup"], files["backup"].parent):
        if folder.is_dir():  # writes of killed runs that this one may never redo
            remove_stale_temporaries(folder)
    return state


def _callbacks(cfg: Config, train_data: Any, files: dict[str, Path], model_path: str | Path,
               fingerprint: dict[str, Any], state: dict[str, Any] | None) -> list[Any]:
    """The callbacks in the order they must run at an epoch's end: the loss check before
    anything is written, the early stopping before the backup that keeps its counters."""
    import keras

    from jetimage.training.definition import input_definition

    tcfg = cfg["train"]
    stopping = _EarlyStopping(tcfg["patience"], state)
    callbacks = [
        _FiniteLoss(model_path),
        _SpaceCheck(files["backup"]),
        _set_epoch_callback([train_data]),
        keras.callbacks.CSVLogger(str(files["epochs_csv"]), append=True),
        stopping,
        _Backup(files["backup"], fingerprint, stopping),
        _EpochCheckpoint(files["checkpoints"], input_definition(cfg)),
        _ProgressLog(tcfg["epochs"]),
    ]
    if tcfg["tensorboard"] and _has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(Path(model_path).parent / "tensorboard"),
                                                     profile_batch=0))
    elif tcfg["tensorboard"]:
        log.warning("train.tensorboard: the tensorboard package is not installed; no logs")
    return callbacks


def variant_objective(var: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(DisCo lambda, dropout rate) of a variant: DisCo trains without dropout unless told,
    because dropout noise hides the output's mass dependence from the per-batch dCorr^2."""
    if var is None or var["method"] == "none":
        return None, var.get("dropout") if var else None
    disco = var["method"] == "disco"
    dropout = var.get("dropout")
    return (var["lambda"] if disco else None), (0.0 if dropout is None and disco else dropout)


def variant_of(cfg: Config, name: str | None) -> dict[str, Any] | None:
    """The ``train.variants`` entry called ``name`` (None for the nominal CNN).

    Raises
    ------
    ConfigError
        Naming the configured variants when there is none of that name.
    """
    if name is None:
        return None
    found = [v for v in cfg["train"]["variants"] if v["name"] == name]
    if not found:
        raise ConfigError(f"train.variants: no variant named {name!r}; have "
                          f"{[v['name'] for v in cfg['train']['variants']]}")
    return found[0]


#: Keys of a ``train.variants`` entry that override the ``train`` key of the same name.
VARIANT_OVERRIDES = ("batch_size", "seed", "epochs", "learning_rate", "patience", "variables")


def variant_config(cfg: Config, var: dict[str, Any] | None) -> Config:
    """``cfg`` with the variant's own training settings (:data:`VARIANT_OVERRIDES` that are not
    null) in ``train``; ``cfg`` itself for the nominal CNN. The data split never changes: it
    derives from the master seed only."""
    if var is None:
        return cfg
    own = {k: var[k] for k in VARIANT_OVERRIDES if var.get(k) is not None}
    out = Config({**cfg, "train": {**cfg["train"], **own}})
    out.source = cfg.source
    return out


def training_targets(cfg: Config, inputs: Sequence[str | Path], variant: dict[str, Any] | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels (n,), targets, weights (n,))`` of every row: targets are the labels, or for a
    DisCo variant ``(n, 2)`` (label, jet mass in GeV); weights are the event weights balanced per
    class, planed for a planing variant (:func:`jetimage.decorrelation.planing_weights`)."""
    decorrelated = variant is not None and variant["method"] != "none"
    extra = ["jet_m", "jet_pt"] if decorrelated else []
    cols = read_columns(inputs, ["labels", "weights", *extra])
    labels = cols["labels"].astype(np.float32)
    weights = balanced_weights(labels, cols["weights"])
    if variant is None or not decorrelated:
        return labels, labels, weights
    mass = cols["jet_m"].astype(np.float64)
    if variant["method"] == "planing":
        from jetimage.decorrelation.planing import planing_weights

        window = cfg["evaluate"]["mass_window"] or (0.0, 300.0)
        j = cfg["jets"]
        weights = planing_weights(labels, mass, cols["jet_pt"], weights,
                                  np.linspace(window[0], window[1], variant["bins"] + 1),
                                  np.linspace(j["pt_min"], j["pt_max"], cfg["evaluate"]["pt_bins"] + 1))
        return labels, labels, weights
    return labels, np.c_[labels, mass].astype(np.float32), weights


def train(cfg: Config, inputs: Sequence[str | Path], model_path: str | Path,
          history_path: str | Path, variant: str | None = None,
          init: str | Path | None = None) -> dict[str, list[float]]:
    """Train the configured model on the image files ``inputs``, streaming them from disk.

    One trainer for every kind of study: jet images and whole-event images alike. The rows of
    all files are concatenated in the given order and split with :func:`dataset_split`. Sample
    weights are the example weights, balanced per class. Images are read in batches by
    :class:`ImageStream`, so the training set need not fit in memory; the per-pixel
    standardization is adapted on ``train.standardize_sample`` training images. On a GPU, mixed
    precision and XLA are used as configured; with several GPUs the training is data-parallel.
    The best model on the validation loss is saved to ``model_path`` (``.keras``), the
    per-epoch history to ``history_path`` (JSON); both atomically. TensorBoard logs
    (``train.tensorboard``) go to ``<model dir>/tensorboard/``. The model after every epoch is
    kept as ``<model stem>.checkpoints/epoch_NNN.keras``; a backup of the training state after
    every epoch (``<model stem>.backup/``: weights, optimizer, random states, early stopping)
    lets a killed run resume where it stopped and end with the model of an undisturbed run (the
    shuffle of an epoch follows from the seed and the epoch); a backup made from other inputs or
    settings is discarded with a warning (:func:`restore_backup`). A NaN or infinite training loss
    stops the training with :class:`InputError` and writes no model.

    With ``variant`` (a ``train.variants`` name) the same model is trained mass-decorrelated:
    DisCo (the stream yields the jet mass beside the label, the loss adds lambda dCorr^2) or
    planing (planed weights); see :func:`training_targets`. With ``init`` (a trained model of the
    same architecture, e.g. the nominal CNN for a variant with ``init: nominal``) the training
    starts from its weights instead of a random initialization.

    With ``train.task: images`` the model is a pixel model (the U-Net of pileup removal): the
    stream yields the ``train.inputs`` channels, the per-pixel fraction of ``train.target`` in
    ``neutral`` and the per-pixel weights (:mod:`jetimage.training.pixels`); the loss is the
    energy-weighted per-pixel binary cross-entropy, the metric its fraction's weighted mean
    absolute error, and the class checks, early stopping, backups and fingerprint are as above.

    Returns
    -------
    dict
        The training history per epoch, for train and validation: loss, accuracy and AUC (task
        labels) or loss and ``fraction_mae`` (task images).
    """
    import keras

    var = variant_of(cfg, variant)
    cfg = variant_config(cfg, var)
    tcfg = cfg["train"]
    keras.utils.set_random_seed(train_seed(cfg))
    labels, targets, weights = training_targets(cfg, inputs, var)
    n_gpus = accelerators()
    if n_gpus > 0 and tcfg["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    variables = example_variables(inputs, tcfg["variables"])
    train_data, val_data = _streams(cfg, inputs, targets, weights, variables)
    with_variables = f" with {', '.join(tcfg['variables'])}" if tcfg["variables"] else ""
    log.info("training %s%s on %d images (%d signal), validating on %d, backend %s, devices %s",
             tcfg["model"], with_variables, train_data.n, int(labels[np.concatenate(train_data.blocks)].sum())
             if train_data.blocks else 0, val_data.n, keras.backend.backend(), _devices())
    model = _compiled_model(cfg, train_data, n_gpus, *variant_objective(var))
    if init is not None:
        start_from(model, init)
    files = _training_files(model_path)
    with exclusive(model_path):
        fingerprint = training_fingerprint(cfg, inputs, targets, weights, var, init)
        state = _resume(files, model, fingerprint)
        callbacks = _callbacks(cfg, train_data, files, model_path, fingerprint, state)
        # a run stopped early has nothing left to train: the early stopping restores its best weights
        stopped = state is not None and state["early_stopping"]["stopped_epoch"] > 0
        first = tcfg["epochs"] if stopped else state["epoch"] if state else 0
        train_data.set_epoch(first)  # the shuffle of the first epoch run, before any batch is read
        try:
            # shuffle=False: the stream shuffles by (seed, epoch); Keras would permute the batches
            # with Python's global random state, which a resumed run does not have
            fit = model.fit(train_data, validation_data=val_data, epochs=tcfg["epochs"], shuffle=False,
                            initial_epoch=first, callbacks=callbacks, verbose=0)
        except Exception:
            # an unusable input met by a batch reaches us wrapped by Keras: report it as it is
            error = train_data.error or val_data.error
            if error is not None:
                raise error from None
            raise
        finally:
            train_data.close()
            val_data.close()
        history = _save(model, fit, files, model_path, history_path, cfg)
    log.info("saved %s after %d epochs", model_path, len(history["loss"]))
    return history


def start_from(model: Any, path: str | Path) -> None:
    """Set ``model``'s weights to those of the trained model at ``path``.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or its architecture differs (dropout rates may
        differ: dropout has no weights).
    """
    import keras

    register_custom_objects()
    try:
        source = keras.models.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot start the training from this model: "
                         f"{str(err).splitlines()[0]}") from None
    log.info("training starts from the weights of %s", path)


def _save(model: Any, fit: Any, files: dict[str, Path], model_path: str | Path,
          history_path: str | Path, cfg: Config) -> dict[str, list[float]]:
    """Write the model with its input definition (:func:`jetimage.apply.input_definition`) and the
    history (atomically), then drop the resume state."""
    from jetimage.training.definition import input_definition, save_definition

    history = _read_history(files["epochs_csv"]) if files["epochs_csv"].exists() else {}
    history = history or {k: [float(x) for x in v] for k, v in fit.history.items()}
    with atomic_paths(model_path, history_path) as (tmp_model, tmp_history):
        model.save(tmp_model)
        save_definition(tmp_model, input_definition(cfg))
        tmp_history.write_text(json.dumps(history, indent=1))
    shutil.rmtree(files["backup"], ignore_errors=True)
    files["epochs_csv"].unlink(missing_ok=True)
    return history


def _read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch metrics logged by CSVLogger, across resumed runs (last entry per epoch wins)."""
    rows: dict[int, dict[str, str]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    keys = [k for k in next(iter(rows.values()), {}) if k != "epoch"]
    return {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _devices() -> str:
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    except ImportError:
        return "unknown"
