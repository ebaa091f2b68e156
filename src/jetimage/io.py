"""File formats: ROOT TTrees (uproot) and HDF5 image files (h5py).

Every writer writes to a temporary file beside the target and renames it when complete, so a
killed job leaves either the previous output or none, never a truncated file that looks whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
import uproot

#: Name of the TTree of jets written by the generation stage.
JETS_TREE = "jets"
#: Scalar branches of the ``jets`` tree (name -> numpy dtype).
JET_BRANCHES: dict[str, str] = {
    "event": "int64",
    "label": "int32",
    "weight": "float64",
    "jet_pt": "float64",
    "jet_eta": "float64",
    "jet_phi": "float64",
    "jet_m": "float64",
    "jet_e": "float64",
    "tau21": "float64",
    "n_subjets": "int32",
    "subjet1_pt": "float64",
    "subjet1_eta": "float64",
    "subjet1_phi": "float64",
    "subjet2_pt": "float64",
    "subjet2_eta": "float64",
    "subjet2_phi": "float64",
}
#: Jagged constituent fields, written as branches ``constituent_<field>`` with counter ``n_constituents``.
CONSTITUENT_FIELDS: dict[str, str] = {
    "pt": "float64",
    "eta": "float64",
    "phi": "float64",
    "e": "float64",
    "charge": "int32",
    "pdgid": "int32",
}
COUNTER = "n_constituents"


class InputError(ValueError):
    """An input file that cannot be used; the message names the file, tree or branch."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # keep the suffix
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class JetTreeWriter:
    """Buffered writer of the ``jets`` TTree (uproot ``mktree``), atomic on close.

    Use as a context manager; :meth:`extend` takes a mapping with every name of
    :data:`JET_BRANCHES` (``(n_jets,)`` arrays) and ``constituents``, an ``(n_jets, var)``
    awkward record array with the fields of :data:`CONSTITUENT_FIELDS`. Rows are buffered and
    written in baskets of at least ``basket_size`` jets.
    """

    def __init__(self, path: str | Path, basket_size: int = 20000) -> None:
        self.path = Path(path)
        self.basket_size = basket_size
        self._buffer: list[Mapping[str, Any]] = []
        self._buffered = 0
        self.n_written = 0

    def __enter__(self) -> JetTreeWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._file = uproot.recreate(tmp)
        types: dict[str, Any] = dict(JET_BRANCHES)
        record = ak.types.RecordType(
            [ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(np.dtype(t)))
             for t in CONSTITUENT_FIELDS.values()],
            list(CONSTITUENT_FIELDS),
        )
        types["constituent"] = ak.types.ListType(record)
        self._tree = self._file.mktree(
            JETS_TREE,
            types,
            counter_name=lambda counted: COUNTER,
            field_name=lambda outer, inner: f"{outer}_{inner}",
            title="jetimage jets: one entry per trimmed jet",
        )
        return self

    @property
    def n_jets(self) -> int:
        """Jets given so far (written or still buffered)."""
        return self.n_written + self._buffered

    def extend(self, jets: Mapping[str, Any]) -> None:
        n = len(jets["jet_pt"])
        if n:
            self._buffer.append(jets)
            self._buffered += n
        if self._buffered >= self.basket_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        data: dict[str, Any] = {
            name: np.concatenate([np.asarray(b[name], dtype=t) for b in self._buffer])
            for name, t in JET_BRANCHES.items()
        }
        constituents = ak.concatenate([b["constituents"] for b in self._buffer])
        data["constituent"] = ak.zip(
            {f: ak.values_astype(constituents[f], t) for f, t in CONSTITUENT_FIELDS.items()}
        )
        self._tree.extend(data)
        self.n_written += self._buffered
        self._buffer, self._buffered = [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
        finally:
            self._file.close()
            self._atomic.__exit__(exc_type, exc, tb)


def _open_tree(path: str, tree: str):
    try:
        f = uproot.open(path)
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except Exception as err:  # uproot raises many types for corrupt files
        reason = " ".join(str(err).split())  # uproot's messages span lines
        raise InputError(f"{path}: not a readable ROOT file ({type(err).__name__}: {reason})") from err
    if tree not in f:
        raise InputError(f"{path}: no tree {tree!r} (keys: {sorted(f.keys(cycle=False))})")
    return f[tree]


def iterate_jets(
    paths: Sequence[str | Path],
    branches: Sequence[str] | None = None,
    step_size: int = 20000,
    tree: str = JETS_TREE,
) -> Iterator[ak.Array]:
    """Stream the ``jets`` tree of several files in chunks of at most ``step_size`` jets.

    Yields
    ------
    ak.Array
        ``(n,)`` records with the scalar branches and, when requested (the default),
        ``constituents``: ``(n, var)`` records with the fields of :data:`CONSTITUENT_FIELDS`.
    """
    scalars = list(JET_BRANCHES) if branches is None else [b for b in branches if b in JET_BRANCHES]
    want_constituents = branches is None or "constituents" in branches
    needed = scalars + ([f"constituent_{f}" for f in CONSTITUENT_FIELDS] if want_constituents else [])
    for path in paths:
        t = _open_tree(str(path), tree)
        missing = [b for b in needed if b not in t]
        if missing:
            raise InputError(f"{path}: tree {tree!r} lacks branches {missing}")
        check_branch_types(t, scalars, [b for b in needed if b.startswith("constituent_")], path)
        if t.num_entries == 0:
            raise InputError(f"{path}: tree {tree!r} has no entries")
        try:
            for chunk in t.iterate(needed, step_size=step_size, library="ak"):
                fields = {name: chunk[name] for name in scalars}
                if want_constituents:
                    fields["constituents"] = ak.zip(
                        {f: chunk[f"constituent_{f}"] for f in CONSTITUENT_FIELDS}
                    )
                yield ak.zip(fields, depth_limit=1)
        except (OSError, ValueError, uproot.DeserializationError) as err:
            reason = " ".join(str(err).split())
            raise InputError(f"{path}: tree {tree!r} cannot be read, the file may be truncated "
                             f"({type(err).__name__}: {reason})") from err


def check_branch_types(tree, scalars: Sequence[str], jagged: Sequence[str], path) -> None:
    """Raise :class:`InputError` naming the branch if a scalar branch is jagged or not numeric,
    or a constituent branch is not a jagged numeric array."""
    for name in list(scalars) + list(jagged):
        interp = tree[name].interpretation
        is_jagged = isinstance(interp, uproot.interpretation.jagged.AsJagged)
        dtype = getattr(interp.content if is_jagged else interp, "from_dtype", None)
        numeric = dtype is not None and dtype.kind in "iuf" and dtype.fields is None
        if not numeric or is_jagged != (name in jagged):
            want = "a jagged numeric array" if name in jagged else "one number per entry"
            raise InputError(f"{path}: branch {name!r} of tree {tree.name!r} must be {want}, "
                             f"found {interp}")


def read_jets(paths: Sequence[str | Path], branches: Sequence[str] | None = None) -> ak.Array:
    """All jets of several files in one array (see :func:`iterate_jets`)."""
    chunks = list(iterate_jets(paths, branches))
    return ak.concatenate(chunks) if chunks else ak.Array([])


# ---------------------------------------------------------------------------------------------
# HDF5 image files
# ---------------------------------------------------------------------------------------------


class ImageWriter:
    """Append images and per-jet variables to an HDF5 file, atomically renamed on close.

    Datasets: ``images`` ``(n, n_eta, n_phi, n_channels)`` float32, ``labels`` int8,
    ``weights`` float32 and one 1-D dataset per jet variable, all chunked by rows so that
    training can stream them. ``attrs`` are stored as JSON strings in the file attributes.
    """

    def __init__(self, path: str | Path, image_shape: tuple[int, ...], attrs: Mapping[str, Any],
                 chunk_rows: int = 1024) -> None:
        self.path = Path(path)
        self.image_shape = tuple(image_shape)
        self.attrs = dict(attrs)
        self.chunk_rows = chunk_rows
        self.n = 0

    def __enter__(self) -> ImageWriter:
        self._atomic = atomic_path(self.path)
        self._file = h5py.File(self._atomic.__enter__(), "w")
        for key, value in self.attrs.items():
            self._file.attrs[key] = json.dumps(value)
        return self

    def _dataset(self, name: str, shape: tuple[int, ...], dtype) -> h5py.Dataset:
        if name not in self._file:
            self._file.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                chunks=(self.chunk_rows, *shape),
            )
        return self._file[name]

    def append(self, images: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Append ``images`` and the 1-D arrays of ``columns`` (``labels``, ``weights``, jet variables)."""
        n = len(images)
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"image shape {images.shape[1:]} != {self.image_shape}")
        items = {"images": images.astype(np.float32, copy=False), **columns}
        for name, values in items.items():
            values = np.asarray(values)
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} rows, images {n}")
            dtype = np.float32 if values.dtype == np.float64 else values.dtype
            ds = self._dataset(name, values.shape[1:], dtype)
            ds.resize(self.n + n, axis=0)
            ds[self.n:] = values
        self.n += n

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and "images" not in self._file:
                self._dataset("images", self.image_shape, np.float32)
                self._dataset("labels", (), np.int8)
                self._dataset("weights", (), np.float32)
            self._file.attrs["n_jets"] = self.n
        finally:
            self._file.close()
            self._atomic.__exit__(exc_type, exc, tb)


def read_columns(paths: Sequence[str | Path], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate the datasets ``names`` of several HDF5 files (rows in file order)."""
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
                out[name].append(f[name][...])
    return {k: np.concatenate(v) for k, v in out.items()}


def read_images(paths: Sequence[str | Path], columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Concatenate ``images``, ``labels``, ``weights`` and the named columns of several files."""
    return read_columns(paths, ["images", "labels", "weights", *columns])


def image_attrs(path: str | Path) -> dict[str, Any]:
    """The JSON attributes (grid, preprocessing, sample) of an image file."""
    with h5py.File(path, "r") as f:
        return {k: json.loads(v) for k, v in f.attrs.items() if isinstance(v, str)}
