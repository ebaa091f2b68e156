"""Resuming a killed training: the per-epoch backup (one ``.npz`` written atomically) holds the
model's variables, the optimizer and early-stopping state and the epoch, with a fingerprint of
what the training was made from (image files, settings, variant, targets). A backup whose
fingerprint differs from the present training's is discarded with one warning line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.config import Config
from jetimage.formats.atomic import atomic_path
from jetimage.formats.errors import InputError
from jetimage.training.data import (
    file_identity,
)

log = logging.getLogger(__name__)


__all__ = ["discard_backup", "restore_backup", "training_fingerprint", "trim_epochs_csv", "write_backup"]


#: ``train`` keys that cannot change the trained model, left out of the training fingerprint
#: (``variants``: the variant trained is fingerprinted on its own).
_NOT_FINGERPRINTED = ("variants", "workers", "tensorboard")


#: Layout of the resume backup ``<model stem>.backup/state.npz``; another layout is discarded.
_BACKUP_FORMAT = 1


def training_fingerprint(cfg: Config, inputs: Sequence[str | Path], targets: np.ndarray,
                         weights: np.ndarray, variant: dict[str, Any] | None,
                         init: str | Path | None) -> dict[str, Any]:
    """What a training is made from, kept in its resume backup and compared at the next start
    (:func:`restore_backup`), as JSON data in the order a difference is reported: the image files
    (by position and name, with :func:`jetimage.training.data.file_identity`: attributes, shapes,
    content), ``seed``, every ``train`` key that can change the model (``train.split`` and
    ``train.seed`` first), the variant, the ``init`` model's name and digest, and a digest of the
    per-row targets and training weights (planing weights also follow ``evaluate`` and ``jets``
    keys). Digests are SHA-256 cut to 16 hex digits."""
    tcfg = cfg["train"]
    out: dict[str, Any] = {"inputs": [Path(p).name for p in inputs]}
    for i, path in enumerate(inputs):
        out[f"inputs[{i}] {Path(path).name}"] = file_identity(path)
    out["seed"] = cfg["seed"]
    first = ("split", "seed", "model")
    for key in (*first, *sorted(set(tcfg) - {*first, *_NOT_FINGERPRINTED})):
        out[f"train.{key}"] = tcfg[key]
    out["variant"] = variant
    out["init"] = None if init is None else {"name": Path(init).name, "sha256": _sha256(Path(init))}
    digest = hashlib.sha256(np.ascontiguousarray(targets, np.float32).tobytes())
    digest.update(np.ascontiguousarray(weights, np.float64).tobytes())
    out["training targets and weights"] = digest.hexdigest()[:16]
    return json.loads(json.dumps(out, default=_plain))


def _plain(value: Any) -> Any:
    """JSON data of the mappings, sequences and numpy scalars of a configuration."""
    if isinstance(value, np.generic):
        return value.item()
    return dict(value) if hasattr(value, "keys") else list(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise InputError(f"{path}: cannot read the model to start the training from ({err})") from None
    return digest.hexdigest()[:16]


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """``'<key>: <old> then, <new> now'`` for the first entry of two fingerprints that differs, None
    when they are equal. A short mapping or list is shown whole (``train.split``), a long one by its
    first differing entry (nested keys joined by dots)."""
    if old == new:
        return None
    long = max(len(_short(old, 1000)), len(_short(new, 1000))) > 60
    if long and isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:
            if found := _first_difference(old.get(key, _ABSENT), new.get(key, _ABSENT), _join(where, key)):
                return found
    if long and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if found := _first_difference(a, b, f"{where}[{i}]"):
                return found
    return f"{where}: {_short(old)} then, {_short(new)} now"


_ABSENT = "<absent>"


def _join(where: str, key: str) -> str:
    """``train.split.test``; ``inputs[0] qcd.h5: attrs.images`` (a file's name holds dots)."""
    if not where:
        return key
    return f"{where}: {key}" if where.startswith("inputs[") and ": " not in where else f"{where}.{key}"


def _short(value: Any, width: int = 60) -> str:
    text = value if value is _ABSENT else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def write_backup(backup: Path, model: Any, epoch: int, fingerprint: dict[str, Any], stopping: Any) -> None:
    """Write the state after ``epoch`` completed epochs as ``<backup>/state.npz`` in one atomic
    rename, so that a kill or a full disk never leaves a backup half old and half new: every
    variable of the model (weights, standardization, the augmentation's and dropout's random
    states) and of the optimizer (step, moments), the early stopping's counters and best
    weights, and the training fingerprint."""
    arrays: dict[str, Any] = {f"model_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)}
    arrays |= {f"best_{i}": np.asarray(w) for i, w in enumerate(stopping.best_weights or [])}
    meta = {"format": _BACKUP_FORMAT, "epoch": epoch, "fingerprint": fingerprint,
            "early_stopping": stopping.state(), "best_weights": stopping.best_weights is not None}
    backup.mkdir(parents=True, exist_ok=True)
    with atomic_path(backup / "state.npz") as tmp:
        np.savez(tmp, metadata=np.array(json.dumps(meta)), **arrays)


def restore_backup(backup: Path, model: Any, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Set ``model`` and its optimizer to the state of the resume backup ``backup`` and return
    ``{"epoch": completed epochs, "early_stopping": counters, "best_weights": arrays or None}``.

    Returns None, after one warning line naming the backup, when the backup cannot be read (an
    older layout, a file cut short) or was made from other inputs or settings than
    ``fingerprint`` (:func:`training_fingerprint`; the line names the first that differs): the
    training then starts afresh, instead of failing on every rerun (another model) or testing on
    rows it trained on (another split).
    """
    if not (backup / "state.npz").exists():
        discard_backup(backup, "cannot be read (no state.npz: cut short, or written by an older jetimage)")
        return None
    try:
        with np.load(backup / "state.npz", allow_pickle=False) as f:
            meta = json.loads(str(f["metadata"]))
            arrays = {k: f[k] for k in f.files if k != "metadata"}
        if meta.get("format") != _BACKUP_FORMAT:
            raise ValueError(f"layout {meta.get('format')}, this jetimage writes {_BACKUP_FORMAT}")
        epoch, old = int(meta["epoch"]), meta["fingerprint"]
        stored = [arrays[f"model_{i}"] for i in range(sum(k.startswith("model_") for k in arrays))]
        best = [arrays[f"best_{i}"] for i in range(sum(k.startswith("best_") for k in arrays))]
        opt = [arrays[f"optimizer_{i}"] for i in range(sum(k.startswith("optimizer_") for k in arrays))]
        state = {"epoch": epoch, "early_stopping": meta["early_stopping"],
                 "best_weights": best if meta["best_weights"] else None}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        discard_backup(backup, f"cannot be read ({type(err).__name__}: {' '.join(str(err).split())})")
        return None
    if difference := _first_difference(old, fingerprint):
        discard_backup(backup, f"was made from other inputs or settings ({difference})")
        return None
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = [*model.variables, *model.optimizer.variables]
    if [tuple(v.shape) for v in variables] != [a.shape for a in [*stored, *opt]]:
        discard_backup(backup, "cannot be read (its variables do not fit the model)")
        return None
    for variable, value in zip(variables, [*stored, *opt], strict=True):
        variable.assign(value)
    return state


def discard_backup(backup: Path, why: str) -> None:
    log.warning("the resume backup %s %s: training starts afresh", backup, why)


def trim_epochs_csv(path: Path, epochs: int) -> None:
    """Keep the whole rows of the first ``epochs`` epochs of the per-epoch log: a kill after the
    log's row but before the backup, or in the middle of a row, leaves more."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    kept = [r for r in rows[1:] if len(r) == len(header) and r[0].isdigit() and int(r[0]) < epochs]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *kept] if kept else [])
