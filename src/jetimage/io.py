"""File formats: ROOT TTrees (uproot) and HDF5 image files (h5py).

Every writer writes to a temporary file beside the target and renames it when complete, so a
killed job leaves either the previous output or none, never a truncated file that looks whole.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
#: Scalar branches of the ``events`` tree: event number, weight (see :data:`RUN_TREE`) and the
#: generator's hard scale (GeV; NaN for read samples).
EVENT_BRANCHES: dict[str, str] = {"event": "int64", "weight": "float64", "pthat": "float32"}
#: Jagged particle fields of the ``events`` tree (branches ``particle_<field>``, counter ``n_particles``).
PARTICLE_FIELDS: dict[str, str] = {"pt": "float32", "eta": "float32", "phi": "float32", "e": "float32",
                                   "charge": "int32", "pdgid": "int32"}
#: Jagged fat-jet fields of the ``events`` tree (branches ``fatjet_<field>``, counter ``n_fatjets``).
FATJET_FIELDS: dict[str, str] = {"pt": "float32", "eta": "float32", "phi": "float32", "m": "float32"}
#: The one-entry summary tree of every file a sample stage writes.
RUN_TREE = "run"
#: Branches of :data:`RUN_TREE`: events generated (or entries read), events written, the sum of
#: the raw event weights over all of them, the cross section they stand for (pb) and its error,
#: and the number of shards of the sample. Example weights in pb are ``weight * sigma_pb /
#: (sum_weights * n_shards)``; a sample's cross section is the sum of ``sigma_pb / n_shards``.
RUN_BRANCHES = ("n_generated", "n_written", "sum_weights", "sigma_pb", "sigma_err_pb", "n_shards")


@dataclass(frozen=True)
class Layout:
    """A TTree layout: scalar branches and jagged collections, each with its counter.

    ``collections`` maps the record name used in memory (``constituents``) to the branch
    prefix (``constituent``), the counter branch and the fields (name -> dtype).
    """

    tree: str
    scalars: dict[str, str]
    collections: dict[str, tuple[str, str, dict[str, str]]]
    title: str


#: One entry per jet: the jet, its substructure and its trimmed constituents.
JETS = Layout(JETS_TREE, JET_BRANCHES, {"constituents": ("constituent", COUNTER, CONSTITUENT_FIELDS)},
              "jetimage jets: one entry per trimmed jet")
#: One entry per event: every visible final-state particle and the anti-kT fat jets.
EVENTS = Layout("events", EVENT_BRANCHES,
                {"particles": ("particle", "n_particles", PARTICLE_FIELDS),
                 "fatjets": ("fatjet", "n_fatjets", FATJET_FIELDS)},
                "jetimage events: visible final-state particles and fat jets")
#: The layout of each study kind.
LAYOUTS: dict[str, Layout] = {"jets": JETS, "events": EVENTS}


class InputError(ValueError):
    """An input file that cannot be used; the message names the file, tree or branch."""


class OutputError(RuntimeError):
    """An output that cannot be written (a full disk); the message names the file."""


#: Free space kept beyond what a write is known to need (HDF5 metadata, filesystem blocks).
SPACE_MARGIN = 2**20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space(err: BaseException | None) -> bool:
    """Whether ``err`` (or an exception it was raised from) is a full disk or quota."""
    while err is not None:
        if isinstance(err, OSError) and (err.errno in _NO_SPACE or "No space left" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def ensure_space(path: str | Path, nbytes: int) -> None:
    """Raise :class:`OutputError` naming ``path`` unless its folder has ``nbytes`` (plus
    :data:`SPACE_MARGIN`) free: HDF5 can crash (segfault) when the disk fills while it writes."""
    st = os.statvfs(Path(path).parent)
    free = st.f_bavail * st.f_frsize
    if free < nbytes + SPACE_MARGIN:
        raise OutputError(f"{path}: no space left on device: writing needs about "
                          f"{(nbytes + SPACE_MARGIN) / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free")


def _temporary(path: Path) -> tuple[Path, str, str]:
    """The temporary name of ``path`` for this process: ``.<stem>.<host>.<pid>.tmp<suffix>``."""
    prefix, suffix = f".{path.stem}.", f".tmp{path.suffix}"  # keep the suffix
    return path.with_name(f"{prefix}{socket.gethostname()}.{os.getpid()}{suffix}"), prefix, suffix


def _remove_stale(path: Path, prefix: str, suffix: str) -> None:
    """Delete temporary files of ``path`` left by killed processes of this host."""
    host = socket.gethostname()
    for old in path.parent.glob(glob.escape(prefix) + "*" + glob.escape(suffix)):
        owner, _, pid = old.name[len(prefix):-len(suffix)].rpartition(".")
        if owner != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            old.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


class Termination:
    """A signal handler that ends a stage with ``SystemExit(128 + signum)``, which unwinds the
    stack so that atomic writers delete their temporary files.

    It raises once (a second signal must not interrupt the clean-up of the first), and not
    inside :meth:`deferred` blocks (renames and clean-ups): there it raises at the block's end.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0
        self._pending = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self._depth:
                self._pending = True
            else:
                raise SystemExit(128 + signum)

    def install(self, signum: int = signal.SIGTERM) -> None:
        """Handle ``signum`` from now on, as a process that has not been signalled yet."""
        self.signum, self._depth, self._pending = None, 0, False
        signal.signal(signum, self)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            raise SystemExit(128 + self.signum)


#: The handler that ``jetimage`` installs for SIGTERM.
TERMINATION = Termination()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Temporary files of ``path`` left by killed processes are deleted first. A full disk met
    in the block is raised as :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, prefix, suffix = _temporary(path)
    _remove_stale(path, prefix, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if no_space(err):
            raise OutputError(f"{path}: no space left on device while writing it "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
        raise
    finally:
        with TERMINATION.deferred():
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several outputs of one stage: all are renamed only if the block
    succeeds, so a failure leaves every earlier output as it was; a SIGTERM meanwhile
    (:data:`TERMINATION`) waits for the last rename."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]
        with TERMINATION.deferred():
            stack.close()


def close_and_publish(handle: Any, atomic: Any, finish: Any, exc_type, exc, tb) -> None:
    """End a writer of a file opened on an :func:`atomic_path` (``atomic``, entered): call
    ``finish`` (None after a failed block), close ``handle``, and rename the file only if all of
    that succeeded; a failure while finishing (a full disk at the last flush) publishes nothing."""
    try:
        if finish is not None:
            finish()
        handle.close()
    except BaseException as err:
        with contextlib.suppress(Exception):
            handle.close()
        atomic.__exit__(type(err), err, err.__traceback__)
        raise
    atomic.__exit__(exc_type, exc, tb)


def _record_type(fields: Mapping[str, str]) -> Any:
    return ak.types.ListType(ak.types.RecordType(
        [ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(np.dtype(t))) for t in fields.values()],
        list(fields)))


class TreeWriter:
    """Buffered writer of one TTree of a :class:`Layout` (uproot ``mktree``), atomic on close.

    Use as a context manager; :meth:`extend` takes a mapping with every scalar of the layout
    (``(n,)`` arrays) and every collection (``(n, var)`` awkward records). Rows are buffered and
    written in baskets of at least ``basket_size`` rows, or earlier once the buffer holds
    ``max_items`` collection items (constituents, particles), which bounds its memory. Set
    :attr:`run` (the values of :data:`RUN_BRANCHES`) before the block ends to write the
    :data:`RUN_TREE` summary. The file is renamed to ``path`` only when everything, the last
    flush and the close included, succeeded.
    """

    def __init__(self, path: str | Path, layout: Layout, basket_size: int = 20000,
                 max_items: int = 1_000_000) -> None:
        self.path = Path(path)
        self.layout = layout
        self.basket_size = basket_size
        self.max_items = max_items
        self._buffer: list[Mapping[str, Any]] = []
        self._buffered = 0
        self._items = 0
        self.n_written = 0
        self.run: dict[str, float] | None = None

    def __enter__(self) -> TreeWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._file = uproot.recreate(tmp)
        types: dict[str, Any] = dict(self.layout.scalars)
        counters = {}
        for prefix, counter, fields in self.layout.collections.values():
            types[prefix] = _record_type(fields)
            counters[prefix] = counter
        self._tree = self._file.mktree(
            self.layout.tree, types, counter_name=lambda prefix: counters[prefix],
            field_name=lambda outer, inner: f"{outer}_{inner}", title=self.layout.title)
        return self

    @property
    def n_rows(self) -> int:
        """Rows given so far (written or still buffered)."""
        return self.n_written + self._buffered

    n_jets = n_rows

    def extend(self, rows: Mapping[str, Any]) -> None:
        n = len(rows[next(iter(self.layout.scalars))])
        if n:
            self._buffer.append(rows)
            self._buffered += n
            # the buffer is bounded in collection items too (jets of thousands of constituents)
            self._items += sum(int(ak.sum(ak.num(rows[k], axis=1))) for k in self.layout.collections)
        if self._buffered >= self.basket_size or self._items >= self.max_items:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        data: dict[str, Any] = {
            name: np.concatenate([np.asarray(b[name], dtype=t) for b in self._buffer])
            for name, t in self.layout.scalars.items()
        }
        for key, (prefix, _, fields) in self.layout.collections.items():
            records = ak.concatenate([b[key] for b in self._buffer])
            data[prefix] = ak.zip({f: ak.values_astype(records[f], t) for f, t in fields.items()})
        self._tree.extend(data)
        self.n_written += self._buffered
        self._buffer, self._buffered, self._items = [], 0, 0

    def _finish(self) -> None:
        self._flush()
        if self.run is not None:
            self._file.mktree(RUN_TREE, {k: "float64" for k in RUN_BRANCHES},
                              title="jetimage sample summary")
            self._file[RUN_TREE].extend({k: np.array([self.run[k]], np.float64) for k in RUN_BRANCHES})

    def __exit__(self, exc_type, exc, tb) -> None:
        close_and_publish(self._file, self._atomic, self._finish if exc_type is None else None,
                          exc_type, exc, tb)


def JetTreeWriter(path: str | Path, basket_size: int = 20000) -> TreeWriter:  # noqa: N802
    """A :class:`TreeWriter` of the ``jets`` layout."""
    return TreeWriter(path, JETS, basket_size)


def _open_file(path: str):
    """``uproot.open(path)``, with :class:`InputError` naming the file when it cannot be read."""
    try:
        return uproot.open(path)
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except Exception as err:  # uproot raises many types for corrupt files
        reason = " ".join(str(err).split())  # uproot's messages span lines
        raise InputError(f"{path}: not a readable ROOT file ({type(err).__name__}: {reason})") from err


def _open_tree(path: str, tree: str):
    f = _open_file(path)
    if tree not in f:
        raise InputError(f"{path}: no tree {tree!r} (keys: {sorted(f.keys(cycle=False))})")
    return f[tree]


def entry_ranges(counts: np.ndarray, max_entries: int, max_items: int | None = None
                 ) -> list[tuple[int, int]]:
    """Cut entries ``[0, len(counts))`` into consecutive ``[a, b)`` ranges of at most ``max_entries``
    entries whose ``counts`` (items per entry: constituents, particles) sum to at most ``max_items``.

    An entry with more than ``max_items`` items alone forms a range (callers that must stay
    within the bound check ``counts.max()`` first). Columnar: one ``searchsorted`` per range.
    """
    cum = np.r_[0, np.cumsum(counts, dtype=np.int64)]
    n, out, a = len(counts), [], 0
    while a < n:
        b = min(n, a + max_entries)
        if max_items is not None:
            b = max(a + 1, min(b, int(np.searchsorted(cum, cum[a] + max_items, side="right")) - 1))
        out.append((a, b))
        a = b
    return out


#: Entries whose counters are read at once when chunks are planned (4 bytes each per collection).
PLAN_ENTRIES = 2**20


def _chunk_ranges(t, counters: Sequence[str], step_size: int, max_items: int | None,
                  path: str | Path, items_key: str) -> Iterator[tuple[int, int]]:
    """Entry ranges of ``t`` of at most ``step_size`` entries and ``max_items`` summed counters."""
    n = t.num_entries
    if max_items is None or not counters:
        yield from ((a, min(n, a + step_size)) for a in range(0, n, step_size))
        return
    piece = max(step_size, PLAN_ENTRIES)
    for start in range(0, n, piece):
        stop = min(n, start + piece)
        counts = sum(t[c].array(entry_start=start, entry_stop=stop, library="np").astype(np.int64)
                     for c in counters)
        if len(counts) and counts.max() > max_items:
            i = int(np.argmax(counts))
            raise InputError(f"{path}: entry {start + i} holds {int(counts[i])} constituents or particles, "
                             f"more than {items_key} = {max_items}, the most one chunk may hold; raise it "
                             "(memory grows with it) or drop such entries")
        yield from ((start + a, start + b) for a, b in entry_ranges(counts, step_size, max_items))


def iterate_tree(
    paths: Sequence[str | Path],
    layout: Layout = JETS,
    branches: Sequence[str] | None = None,
    step_size: int = 20000,
    tree: str | None = None,
    max_items: int | None = None,
    items_key: str = "images.chunk_constituents",
) -> Iterator[ak.Array]:
    """Stream the tree of a :class:`Layout` from several files, in chunks of at most ``step_size`` rows.

    Parameters
    ----------
    branches
        Scalars and collection names (``constituents``) to read; default all.
    max_items
        With a value, a chunk also holds at most this many items of the collections read
        (constituents, particles and fat jets summed; counted from the counter branches), so
        that memory is bounded in bytes, not only in entries. Chunk boundaries do not change
        what is read.
    items_key
        The configuration key of ``max_items``, named by the error when one entry exceeds it.

    Yields
    ------
    ak.Array
        ``(n,)`` records with the scalar branches and each collection as ``(n, var)`` records.

    Raises
    ------
    InputError
        Naming the file for a missing or mistyped branch, an empty or unreadable tree, or one
        entry with more than ``max_items`` items.
    """
    tree = tree or layout.tree
    scalars = [b for b in layout.scalars if branches is None or b in branches]
    wanted = {k: v for k, v in layout.collections.items() if branches is None or k in branches}
    jagged = [f"{prefix}_{f}" for prefix, _, fields in wanted.values() for f in fields]
    for path in paths:
        t = _open_tree(str(path), tree)
        missing = [b for b in scalars + jagged if b not in t]
        if missing:
            raise InputError(f"{path}: tree {tree!r} lacks branches {missing}")
        check_branch_types(t, scalars, jagged, path)
        if t.num_entries == 0:
            if read_run(path) is not None:
                continue  # written by a sample stage: a chunk in which nothing passed, not an error
            raise InputError(f"{path}: tree {tree!r} has no entries")
        counters = [counter for _, counter, _ in wanted.values()]
        try:
            for a, b in _chunk_ranges(t, counters, step_size, max_items, path, items_key):
                chunk = t.arrays(scalars + jagged, entry_start=a, entry_stop=b, library="ak",
                                 array_cache=None)  # uproot's cache would keep ~100 MB of past chunks
                fields = {name: chunk[name] for name in scalars}
                for key, (prefix, _, cfields) in wanted.items():
                    fields[key] = ak.zip({f: chunk[f"{prefix}_{f}"] for f in cfields})
                yield ak.zip(fields, depth_limit=1)
        except (OSError, ValueError, uproot.DeserializationError) as err:
            reason = " ".join(str(err).split())
            raise InputError(f"{path}: tree {tree!r} cannot be read, the file may be truncated "
                             f"({type(err).__name__}: {reason})") from err


def iterate_jets(paths: Sequence[str | Path], branches: Sequence[str] | None = None,
                 step_size: int = 20000, tree: str = JETS_TREE, max_items: int | None = None
                 ) -> Iterator[ak.Array]:
    """:func:`iterate_tree` of the ``jets`` layout (``max_items``: constituents per chunk)."""
    return iterate_tree(paths, JETS, branches, step_size, tree, max_items)


def read_run(path: str | Path) -> dict[str, float] | None:
    """The :data:`RUN_TREE` summary of one file (summed over its entries), or None if it has none.

    Raises
    ------
    InputError
        If the file is missing or not a readable ROOT file.
    """
    with _open_file(str(path)) as f:
        if RUN_TREE not in f:
            return None
        run = f[RUN_TREE].arrays(list(RUN_BRANCHES), library="np")
    return {k: float(v.sum()) for k, v in run.items()}


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
