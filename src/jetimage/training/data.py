"""The data of a training: the seeded split, class weights, and images streamed from HDF5 files.

Rows of several image files are numbered as if the files were concatenated (:func:`file_rows`);
a split is a set of such global rows. :class:`ImageStream` reads them in batches of contiguous
spans, so that memory is bounded by a batch whatever the size of the files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.config import Config, derive_seed
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import contiguous_reads, finite_images
from jetimage.training.pixels import PixelChannels

__all__ = ["ImageStream", "SPLIT_STREAM", "TRAIN_STREAM", "balanced_weights", "check_classes",
           "dataset_split", "example_variables", "file_identity", "file_rows", "model_inputs",
           "split_indices", "standardization_sample", "train_seed", "iterate_rows"]


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


class ImageStream:
    """A ``keras.utils.PyDataset`` of ``(images, labels, weights)`` batches read from HDF5 files (for
    the image task, ``(input channels, target fractions, pixel weights)``: ``pixels`` of :meth:`create`).

    Only the labels and weights are held in memory; images are read when a batch is asked for.
    The rows (global indices into the concatenation of ``paths``) are cut, per file, into
    blocks of ``block_rows`` consecutive rows, each read with one contiguous HDF5 slice (the
    files are chunked by rows, see :class:`jetimage.io.ImageWriter`). With ``shuffle``, the
    block order is permuted at every epoch with a seed derived from ``seed`` and the epoch
    (:meth:`set_epoch`), and ``blocks_per_group`` blocks at a time are shuffled row by row
    before they are cut into batches, so that batches mix samples and files. Memory: about
    2 x ``block_rows`` x ``blocks_per_group`` images.

    Built with :meth:`create` (the class derives from ``keras.utils.PyDataset`` lazily so that
    importing this module does not import Keras).
    """

    @staticmethod
    def create(paths: Sequence[str | Path], rows: np.ndarray, labels: np.ndarray,
               weights: np.ndarray, batch_size: int, block_rows: int = 1024,
               blocks_per_group: int = 16, shuffle: bool = True, seed: int = 0,
               workers: int = 1, variables: np.ndarray | None = None,
               pixels: PixelChannels | None = None) -> Any:
        """Build the dataset.

        Parameters
        ----------
        paths
            HDF5 image files, concatenated in this order.
        rows
            ``(n,)`` global row indices of the split to stream.
        labels, weights
            ``(n_total,)`` per-row label (or ``(n_total, k)`` targets, label first: DisCo adds the
            jet mass) and sample weight of all rows of all files.
        batch_size
            Images per batch (the last batch of an epoch may be smaller).
        workers
            Threads reading batches ahead (``keras.utils.PyDataset`` workers).
        variables
            ``(n_total, n_variables)`` physics variables of all rows (:func:`example_variables`), or
            None: with them a batch's inputs are :func:`model_inputs`' dict, else the images.
        pixels
            The channels of the image task (``train.task: images``), or None (task labels): with
            them a batch is :meth:`jetimage.training.pixels.PixelChannels.batch`, ``(input channels,
            per-pixel target fraction (n, n_eta, n_phi, 1), per-pixel weight (n, n_eta, n_phi))``,
            the pixel weights scaled by ``weights``; the labels serve the class checks only.
        """
        import keras

        class _Stream(StreamBatches, keras.utils.PyDataset):
            pass

        stream = _Stream(paths, rows, labels, weights, batch_size, block_rows, blocks_per_group,
                         shuffle, seed, workers=workers, use_multiprocessing=False,
                         max_queue_size=max(4, 2 * workers))
        stream.variables = None if variables is None else np.asarray(variables, np.float32)
        stream.pixels = pixels
        return stream


class StreamBatches:
    def __init__(self, paths: Sequence[str | Path], rows: np.ndarray, labels: np.ndarray,
                 weights: np.ndarray, batch_size: int, block_rows: int, blocks_per_group: int,
                 shuffle: bool, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import threading

        self.paths = [str(p) for p in paths]
        sizes = file_rows(self.paths)
        self.offsets = np.r_[0, np.cumsum(sizes)]
        self.labels = np.asarray(labels, dtype=np.float32)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.batch_size, self.blocks_per_group = batch_size, blocks_per_group
        self.shuffle, self.seed = shuffle, seed
        rows = np.sort(np.asarray(rows))
        self.blocks: list[np.ndarray] = []
        for f in range(len(self.paths)):
            in_file = rows[(rows >= self.offsets[f]) & (rows < self.offsets[f + 1])]
            self.blocks += [in_file[i:i + block_rows] for i in range(0, len(in_file), block_rows)]
        self.n = len(rows)
        self._lock = threading.Lock()
        self._files: dict[str, Any] = {}
        self._cache: dict[int, np.ndarray] = {}
        #: the first unusable input met while reading (Keras wraps what a batch raises)
        self.error: InputError | None = None
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix the block order and the within-group row order of ``epoch`` (0-based): a function
        of ``(seed, epoch)`` only, so that a resumed training shuffles as an undisturbed one."""
        if epoch == self.epoch:
            return
        with self._lock:
            self.epoch = epoch
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.blocks)) if self.shuffle else np.arange(len(self.blocks))
            k = self.blocks_per_group
            groups = [np.concatenate([self.blocks[b] for b in order[i:i + k]])
                      for i in range(0, len(order), k)]
            if self.shuffle:
                groups = [rng.permutation(g) for g in groups]
            self.groups = groups
            self.group_start = np.r_[0, np.cumsum([len(g) for g in groups])]
            self._cache = {}

    def __len__(self) -> int:
        return max(1, -(-self.n // self.batch_size))

    def _handle(self, path: str) -> Any:
        import h5py

        if path not in self._files:
            self._files[path] = h5py.File(path, "r")
        return self._files[path]["images"]

    def _group_images(self, g: int) -> np.ndarray:
        """Images of group ``g`` in the group's row order; the two latest groups are cached."""
        with self._lock:
            if g in self._cache:
                return self._cache[g]
            rows = self.groups[g]
            out = None
            for f, path in enumerate(self.paths):
                sel = np.flatnonzero((rows >= self.offsets[f]) & (rows < self.offsets[f + 1]))
                if len(sel) == 0:
                    continue
                local = rows[sel] - self.offsets[f]
                # one contiguous read per block of the group (blocks hold nearby rows)
                order = np.argsort(local, kind="stable")
                ls = local[order]
                ds = self._handle(path)
                if out is None:
                    out = np.empty((len(rows), *ds.shape[1:]), dtype=np.float32)
                row_bytes = 4 * int(np.prod(ds.shape[1:]))
                for a, b in contiguous_reads(ls, row_bytes, 4 * self.batch_size):
                    lo, hi = int(ls[a]), int(ls[b - 1]) + 1
                    out[sel[order[a:b]]] = finite_images(ds[lo:hi], path, lo)[ls[a:b] - lo]
            assert out is not None  # a group holds at least one row of some file
            for old in [k for k in self._cache if k < g - 1]:
                del self._cache[old]
            self._cache[g] = out
            return out

    variables: np.ndarray | None = None
    pixels: PixelChannels | None = None

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray, np.ndarray]:
        try:
            return self._batch(index)
        except InputError as err:
            self.error = self.error or err
            raise

    def _batch(self, index: int) -> tuple[Any, np.ndarray, np.ndarray]:
        lo = index * self.batch_size
        hi = min(lo + self.batch_size, self.n)
        parts, rows = [], []
        g = int(np.searchsorted(self.group_start, lo, side="right") - 1)
        while lo < hi:
            end = min(hi, int(self.group_start[g + 1]))
            a, b = lo - int(self.group_start[g]), end - int(self.group_start[g])
            parts.append(self._group_images(g)[a:b])
            rows.append(self.groups[g][a:b])
            lo, g = end, g + 1
        r = np.concatenate(rows)
        if self.pixels is not None:
            return self.pixels.batch(np.concatenate(parts), self.weights[r])
        return model_inputs(np.concatenate(parts), self.variables, r), self.labels[r], self.weights[r]

    def close(self) -> None:
        """Close the HDF5 files."""
        for f in self._files.values():
            f.close()
        self._files = {}


def model_inputs(images: np.ndarray, variables: np.ndarray | None, rows: np.ndarray) -> Any:
    """What a model takes for ``images`` of the global ``rows``: the images, or, for a model with
    physics variables, ``{"images": images, "variables": variables[rows]}``."""
    if variables is None:
        return images
    return {"images": images, "variables": variables[rows]}


def example_variables(paths: Sequence[str | Path], names: Sequence[str]) -> np.ndarray | None:
    """The physics variables ``names`` of every row of the image files, ``(n_total, len(names))``
    float32 (None for no names), in the order of ``names``.

    Raises
    ------
    InputError
        Naming the file, the dataset and the first row when a variable is missing or not finite
        (a standardization over NaN makes every score NaN).
    """
    if not names:
        return None
    import h5py

    parts = []
    for path in paths:
        with h5py.File(path, "r") as f:
            missing = [n for n in names if n not in f]
            if missing:
                raise InputError(f"{path}: no dataset {missing[0]!r} (a physics variable of the model, "
                                 f"train.variables); rerun the images rule or choose other variables")
            block = np.stack([f[n][...].astype(np.float64) for n in names], axis=1)
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            raise InputError(f"{path}: dataset {names[col]!r} row {row} is {block[row, col]} "
                             f"({int(bad[:, col].sum())} such rows): a model cannot take a variable that is "
                             "not finite; choose other variables (train.variables)")
        parts.append(block.astype(np.float32))
    return np.concatenate(parts)


def file_rows(paths: Sequence[str | Path]) -> list[int]:
    """Number of images in each HDF5 file; raises :class:`jetimage.io.InputError` if unreadable."""
    import h5py

    out = []
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                if "images" not in f:
                    raise InputError(f"{path}: no dataset 'images'")
                out.append(int(f["images"].shape[0]))
        except OSError as err:
            raise InputError(f"{path}: not a readable HDF5 file ({err})") from err
    return out


def file_identity(path: str | Path) -> dict[str, Any]:
    """What an HDF5 image file holds, free of its path and time stamps: its attributes (the
    settings and samples it was made from), the shape of every dataset, a SHA-256 of its 1-D
    datasets (labels, weights, jet variables: one value per event) and of its first and last
    image. A rewritten file with the same content has the same identity (a copy, a rerun of the
    images rule); other events, settings or pixels change it. Reads a few bytes per row.

    Raises
    ------
    InputError
        Naming the file when it cannot be read.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr(v) for k, v in sorted(f.attrs.items())}
            shapes = {k: list(f[k].shape) for k in sorted(f) if isinstance(f[k], h5py.Dataset)}
            digest = hashlib.sha256()
            for k in sorted(shapes):
                ds = f[k]
                if k == "images":
                    digest.update(np.ascontiguousarray(ds[:1]).tobytes())
                    digest.update(np.ascontiguousarray(ds[-1:]).tobytes())
                elif ds.ndim == 1:
                    digest.update(k.encode())
                    digest.update(np.ascontiguousarray(ds[...]).tobytes())
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from err
    return {"attrs": attrs, "shapes": shapes, "content": digest.hexdigest()[:16]}


def _attr(value: Any) -> Any:
    """An HDF5 attribute as JSON data (the writers store JSON strings)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return np.asarray(value).tolist()


def standardization_sample(stream: Any, n_max: int, seed: int) -> np.ndarray:
    """Images of whole random groups of ``stream`` (at least ``n_max`` or all), for adapting
    the standardization: ``(n, n_eta, n_phi, n_channels)``, the channels the network sees (the
    input channels of the image task)."""
    order = np.random.default_rng(seed).permutation(len(stream.groups))
    parts, n = [], 0
    for g in order:
        images = stream._group_images(int(g))
        parts.append(images.copy() if stream.pixels is None else stream.pixels.network_inputs(images))
        n += len(parts[-1])
        if n >= n_max:
            break
    stream._cache = {}
    return np.concatenate(parts)[:n_max]


def train_seed(cfg: Config, *keys: int) -> int:
    """A seed of the training (weights, batch order) derived from ``seed`` and ``train.seed``."""
    extra = (cfg["train"]["seed"],) if cfg["train"]["seed"] else ()
    return derive_seed(cfg["seed"], TRAIN_STREAM, *extra, *keys)


def check_classes(labels: np.ndarray, rows: np.ndarray, part: str, inputs: Sequence[str | Path]) -> None:
    """Raise :class:`InputError` naming the files when the ``part`` split lacks a class: its
    loss is meaningless and its AUC would be reported as 0."""
    for cls, name in ((1, "signal"), (0, "background")):
        if not (labels[rows] == cls).any():
            raise InputError(f"{', '.join(map(str, inputs))}: the {part} split holds no {name} example "
                             f"(of {len(rows)}): its AUC cannot be computed; generate more examples or "
                             f"enlarge train.split.{part}")


def iterate_rows(paths: Sequence[str | Path], rows: np.ndarray, block: int = 4096
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, images)`` of the sorted global ``rows`` of several HDF5 image files, at most
    ``block`` rows at a time, each piece read with one contiguous slice of bounded span
    (:func:`jetimage.io.contiguous_reads`): memory is bounded whatever the file size."""
    import h5py

    offsets = np.r_[0, np.cumsum(file_rows(paths))]
    for f, path in enumerate(paths):
        local = rows[(rows >= offsets[f]) & (rows < offsets[f + 1])] - offsets[f]
        with h5py.File(path, "r") as h5:
            ds = h5["images"]
            row_bytes = 4 * int(np.prod(ds.shape[1:]))
            for i in range(0, len(local), block):
                part = local[i:i + block]
                for a, b in contiguous_reads(part, row_bytes, max_gap=block):
                    lo, hi = int(part[a]), int(part[b - 1]) + 1
                    span = finite_images(ds[lo:hi], path, lo)
                    yield part[a:b] + offsets[f], span[part[a:b] - lo]


