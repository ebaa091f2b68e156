"""HDF5 image files: ``images`` ``(n, n_eta, n_phi, n_channels)``, labels, weights and one dataset per
example variable, chunked by rows and optionally compressed; readers of rows and columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jetimage.formats.atomic import atomic_path, close_and_publish, ensure_space
from jetimage.formats.errors import InputError

__all__ = ["CHUNK_BYTES", "ImageWriter", "READ_SPAN_BYTES", "check_class_weights", "check_targets",
           "chunk_rows_for", "compression_options", "contiguous_reads", "finite_images", "image_attrs",
           "read_columns", "read_images"]


#: The most bytes of one HDF5 chunk of images: h5py's chunk cache holds 1 MiB, and a read
#: decompresses whole chunks.
CHUNK_BYTES = 2**20


def chunk_rows_for(row_bytes: int, max_rows: int = 1024) -> int:
    """Rows per HDF5 chunk of images: the largest power of two of at most ``max_rows`` rows and
    :data:`CHUNK_BYTES` bytes (at least 1), so that chunks hold whole rows and tile the training
    stream's blocks (``train.block_rows``, a power of two by default)."""
    rows = max(1, min(max_rows, CHUNK_BYTES // max(row_bytes, 1)))
    return 1 << (rows.bit_length() - 1)


def compression_options(compression: str = "none", level: int = 1) -> dict[str, Any]:
    """h5py ``create_dataset`` filters: ``gzip`` (deflate, ``level`` 1-9) or ``lzf``, both after the
    byte-shuffle filter; ``none`` writes raw chunks."""
    if compression == "none":
        return {}
    if compression not in ("gzip", "lzf"):
        raise ValueError(f"images.compression: {compression!r} is not one of none, gzip, lzf")
    return {"compression": compression, "shuffle": True,
            **({"compression_opts": int(level)} if compression == "gzip" else {})}


class ImageWriter:
    """Append images and per-jet variables to an HDF5 file, atomically renamed on close.

    Datasets: ``images`` ``(n, n_eta, n_phi, n_channels)`` float32, ``labels`` int8,
    ``weights`` float32 and one 1-D dataset per jet variable, all chunked by rows so that
    training can stream them (image chunks: :func:`chunk_rows_for`), compressed with
    ``compression`` (:func:`compression_options`). ``attrs`` are stored as JSON strings in the
    file attributes.
    """

    def __init__(self, path: str | Path, image_shape: tuple[int, ...], attrs: Mapping[str, Any],
                 chunk_rows: int = 1024, compression: str = "none", level: int = 1) -> None:
        self.path = Path(path)
        self.image_shape = tuple(image_shape)
        self.attrs = dict(attrs)
        self.chunk_rows = chunk_rows
        self.filters = compression_options(compression, level)
        self.n = 0

    def __enter__(self) -> ImageWriter:
        self._atomic = atomic_path(self.path)
        self._file = h5py.File(self._atomic.__enter__(), "w")
        for key, value in self.attrs.items():
            self._file.attrs[key] = json.dumps(value)
        return self

    def _dataset(self, name: str, shape: tuple[int, ...], dtype) -> h5py.Dataset:
        if name not in self._file:
            rows = chunk_rows_for(np.dtype(dtype).itemsize * int(np.prod(shape)), self.chunk_rows)
            self._file.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                chunks=(rows, *shape), **self.filters,
            )
        return self._file[name]

    def append(self, images: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Append ``images`` and the 1-D arrays of ``columns`` (``labels``, ``weights``, jet variables)."""
        n = len(images)
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"image shape {images.shape[1:]} != {self.image_shape}")
        items = {"images": images.astype(np.float32, copy=False), **columns}
        new_chunks = -(-(self.n + n) // self.chunk_rows) - -(-self.n // self.chunk_rows)
        ensure_space(self.path, new_chunks * self.chunk_rows * sum(
            np.asarray(v).nbytes // max(n, 1) for v in items.values()))
        for name, values in items.items():
            values = np.asarray(values)
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} rows, images {n}")
            dtype = np.float32 if values.dtype == np.float64 else values.dtype
            ds = self._dataset(name, values.shape[1:], dtype)
            ds.resize(self.n + n, axis=0)
            ds[self.n:] = values
        self.n += n

    def _finish(self) -> None:
        if "images" not in self._file:  # no image appended: the empty datasets
            self._dataset("images", self.image_shape, np.float32)
            self._dataset("labels", (), np.int8)
            self._dataset("weights", (), np.float32)
        self._file.attrs["n_jets"] = self.n

    def __exit__(self, exc_type, exc, tb) -> None:
        close_and_publish(self._file, self._atomic, self._finish if exc_type is None else None,
                          exc_type, exc, tb)


#: The most bytes of images one contiguous HDF5 read may span (rows between wanted rows included).
READ_SPAN_BYTES = 32 * 2**20


def contiguous_reads(rows: np.ndarray, row_bytes: int, max_gap: int) -> list[tuple[int, int]]:
    """Split sorted file rows into ``[a, b)`` index ranges, each read with one HDF5 slice.

    A range ends at a gap of more than ``max_gap`` rows, or before its slice would span more
    than :data:`READ_SPAN_BYTES` (rows of ``row_bytes`` each), so that a sparse selection (a
    split of a few percent of the file) never reads a large stretch of unwanted rows.
    """
    max_span = max(1, READ_SPAN_BYTES // max(row_bytes, 1))
    reads, a = [], 0
    while a < len(rows):
        b = int(np.searchsorted(rows, rows[a] + max_span, side="left"))
        gaps = np.flatnonzero(np.diff(rows[a:b]) > max_gap)
        b = a + int(gaps[0]) + 1 if len(gaps) else b
        reads.append((a, b))
        a = b
    return reads


def finite_images(images: np.ndarray, path: str | Path, first_row: int) -> np.ndarray:
    """``images`` unchanged, after checking that every pixel is finite.

    Raises
    ------
    InputError
        Naming the file and the first row with a NaN or infinite pixel: such a file was damaged
        after the image stage wrote it (which writes finite pixels only); rerun that stage.
    """
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: image row {first_row + int(np.argmax(bad))} (and {int(bad.sum()) - 1} "
                         "more of this block) holds NaN or infinite pixels; delete the file and rerun "
                         "the images rule")
    return images


def check_targets(name: str, values: np.ndarray, path: str | Path) -> np.ndarray:
    """``values`` of the dataset ``labels`` or ``weights`` of ``path`` unchanged, after checking them:
    labels are 0 (background) or 1 (signal), weights are finite (negative ones are allowed: NLO
    generators make them). Other datasets are returned unchecked.

    Raises
    ------
    InputError
        Naming the file, the dataset, the first bad row and how many there are.
    """
    if name == "labels":
        bad = (values != 0) & (values != 1)
        what = "labels must be 0 (background) or 1 (signal)"
    elif name == "weights":
        bad = ~np.isfinite(values)
        what = "weights must be finite"
    else:
        return values
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{path}: dataset {name!r} row {i} holds {values[i].item()} ({int(bad.sum())} bad "
                         f"rows of {len(values)}): {what}; rerun the images rule on fixed inputs")
    return values


def read_columns(paths: Sequence[str | Path], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate the datasets ``names`` of several HDF5 files (rows in file order); ``labels`` and
    ``weights`` are checked (:func:`check_targets`), so that no stage trains on or scores them."""
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for path in paths:
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise InputError(f"{path}: not a readable HDF5 file ({err})") from err
        with f:
            for name in names:
                if name not in f:
                    raise InputError(f"{path}: no dataset {name!r}")
                out[name].append(check_targets(name, f[name][...], path))
    return {k: np.concatenate(v) for k, v in out.items()}


def check_class_weights(labels: np.ndarray, weights: np.ndarray, rows: np.ndarray, part: str,
                        paths: Sequence[str | Path]) -> None:
    """Refuse a split (global ``rows`` of ``paths``) where a class's total weight is not positive:
    its efficiencies (weighted sums over the class, divided by its total) do not exist.

    Raises
    ------
    InputError
        Naming the files and the class's total weight.
    """
    y, w = labels[rows], weights[rows]
    for cls, name in ((1, "signal"), (0, "background")):
        total = float(w[y == cls].sum())
        if not total > 0:
            raise InputError(f"{', '.join(map(str, paths))}: the {name} examples of the {part} split have "
                             f"total weight {total:g} (of {int((y == cls).sum())} examples): its "
                             "efficiencies need a positive total; check the weights of the sample "
                             "(weight_branch, cross_section)")


def read_images(paths: Sequence[str | Path], columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Concatenate ``images``, ``labels``, ``weights`` and the named columns of several files."""
    return read_columns(paths, ["images", "labels", "weights", *columns])


def image_attrs(path: str | Path) -> dict[str, Any]:
    """The JSON attributes (grid, preprocessing, sample) of an image file."""
    with h5py.File(path, "r") as f:
        return {k: json.loads(v) for k, v in f.attrs.items() if isinstance(v, str)}
