"""ROOT files: the TTree layouts of jets and events (written with uproot ``mktree``, so ROOT opens
them), the one-entry ``run`` tree, and chunked readers bounded in entries and items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jetimage.formats.atomic import atomic_path, close_and_publish
from jetimage.formats.errors import InputError

__all__ = ["BASKET_ITEMS", "CONSTITUENT_FIELDS", "COUNTER", "EVENTS", "EVENT_BRANCHES", "FATJET_FIELDS",
           "JETS", "JETS_TREE", "JET_BRANCHES", "JetTreeWriter", "LAYOUTS", "Layout", "PARTICLE_FIELDS",
           "PILEUP_BRANCHES", "PILEUP_JETS", "PILEUP_RUN_BRANCHES",
           "PLAN_ENTRIES", "RUN_BRANCHES", "RUN_TREE", "TreeWriter", "check_branch_types", "entry_ranges",
           "iterate_jets", "iterate_tree", "read_jets", "read_run"]


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
    prefix (``constituent``), the counter branch and the fields (name -> dtype). ``optional``
    scalars and collection fields (``<prefix>_<field>``) are read where a file has them (the
    branches of samples with pileup) and written by the layouts that list them as required.
    """

    tree: str
    scalars: dict[str, str]
    collections: dict[str, tuple[str, str, dict[str, str]]]
    title: str
    optional: dict[str, str] = field(default_factory=dict)


#: Scalar branches of jets with pileup: the same jet clustered from the leading vertex's particles
#: alone (the truth of pileup removal; ``truth_tau21`` NaN below two constituents), the number
#: of pileup vertices of its event, and the event's pileup densities after charged-hadron
#: subtraction: ``rho`` and ``rho_m`` (GeV per unit area) and the SoftKiller threshold (GeV).
#: Its constituents carry ``origin`` (0: leading vertex, 1: pileup).
PILEUP_BRANCHES: dict[str, str] = {"truth_pt": "float64", "truth_eta": "float64", "truth_phi": "float64",
                                   "truth_m": "float64", "truth_tau21": "float64", "n_pileup": "int32",
                                   "rho": "float64", "rho_m": "float64", "softkiller_cut": "float64"}

#: The ``run`` branches of a sample with pileup: its mean number of vertices, the minimum-bias pool's
#: size and the vertices overlaid (the pool's reuse factor is ``pileup_vertices / pileup_pool``).
PILEUP_RUN_BRANCHES = ("pileup_mu", "pileup_pool", "pileup_vertices")

#: One entry per jet: the jet, its substructure and its trimmed constituents.
JETS = Layout(JETS_TREE, JET_BRANCHES, {"constituents": ("constituent", COUNTER, CONSTITUENT_FIELDS)},
              "jetimage jets: one entry per trimmed jet",
              {**PILEUP_BRANCHES, "constituent_origin": "int32"})

#: :data:`JETS` with pileup: every branch of :data:`PILEUP_BRANCHES` and the constituents' origin.
PILEUP_JETS = Layout(JETS_TREE, {**JET_BRANCHES, **PILEUP_BRANCHES},
                     {"constituents": ("constituent", COUNTER, {**CONSTITUENT_FIELDS, "origin": "int32"})},
                     "jetimage jets with pileup: one entry per trimmed jet")


#: One entry per event: every visible final-state particle and the anti-kT fat jets.
EVENTS = Layout("events", EVENT_BRANCHES,
                {"particles": ("particle", "n_particles", PARTICLE_FIELDS),
                 "fatjets": ("fatjet", "n_fatjets", FATJET_FIELDS)},
                "jetimage events: visible final-state particles and fat jets")


#: The layout of each study kind.
LAYOUTS: dict[str, Layout] = {"jets": JETS, "events": EVENTS}


def _record_type(fields: Mapping[str, str]) -> Any:
    return ak.types.ListType(ak.types.RecordType(
        [ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(np.dtype(t))) for t in fields.values()],
        list(fields)))


#: Collection items (constituents, particles) buffered before :class:`TreeWriter` writes a basket:
#: a basket of jetimage's files holds at most this plus one :meth:`TreeWriter.extend`'s items.
BASKET_ITEMS = 1_000_000


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
                 max_items: int = BASKET_ITEMS) -> None:
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
        if self.run is not None:  # the RUN_BRANCHES, then any others given (pileup)
            names = [*RUN_BRANCHES, *(k for k in self.run if k not in RUN_BRANCHES)]
            self._file.mktree(RUN_TREE, dict.fromkeys(names, "float64"), title="jetimage sample summary")
            self._file[RUN_TREE].extend({k: np.array([self.run[k]], np.float64) for k in names})

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


def _unreadable(path: str | Path, tree: str, err: Exception) -> InputError:
    """The one-line error for a tree whose directory or baskets cannot be read (a cut file)."""
    reason = " ".join(str(err).split())  # uproot's messages span lines
    return InputError(f"{path}: tree {tree!r} cannot be read, the file may be truncated "
                      f"({type(err).__name__}: {reason})")


def _open_tree(path: str, tree: str):
    f = _open_file(path)
    try:
        if tree not in f:
            raise InputError(f"{path}: no tree {tree!r} (keys: {sorted(f.keys(cycle=False))})")
        return f[tree]
    except (OSError, ValueError, uproot.DeserializationError) as err:
        raise _unreadable(path, tree, err) from err


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


def _read_range(t, branches: Sequence[str], a: int, b: int) -> dict[str, ak.Array]:
    """Entries ``[a, b)`` of ``branches``, one branch at a time.

    uproot decompresses every basket a read touches before slicing it; ``t.arrays`` held the
    touched baskets of all branches at once (compressed and not), which grew with the baskets'
    constituents, not the chunk's (1.3 GiB for a chunk of 2,000,000 constituents in baskets of
    6,000,000). Branch by branch, at most one branch's baskets are held beside the chunk.
    """
    # array_cache=None: uproot's cache would keep ~100 MB of past chunks
    return {name: t[name].array(entry_start=a, entry_stop=b, library="ak", array_cache=None)
            for name in branches}


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
    base_scalars = [b for b in layout.scalars if branches is None or b in branches]
    wanted = {k: v for k, v in layout.collections.items() if branches is None or k in branches}
    base_jagged = [f"{prefix}_{f}" for prefix, _, fields in wanted.values() for f in fields]
    for path in paths:
        t = _open_tree(str(path), tree)
        missing = [b for b in base_scalars + base_jagged if b not in t]
        if missing:
            raise InputError(f"{path}: tree {tree!r} lacks branches {missing}")
        scalars, jagged, extra = _with_optional(t, layout, base_scalars, wanted, branches)
        check_branch_types(t, scalars, jagged, path)
        if t.num_entries == 0:
            if read_run(path) is not None:
                continue  # written by a sample stage: a chunk in which nothing passed, not an error
            raise InputError(f"{path}: tree {tree!r} has no entries")
        counters = [counter for _, counter, _ in wanted.values()]
        try:
            for a, b in _chunk_ranges(t, counters, step_size, max_items, path, items_key):
                chunk = _read_range(t, scalars + jagged, a, b)
                fields = {name: chunk.pop(name) for name in scalars}
                for key, (prefix, _, cfields) in wanted.items():
                    fields[key] = ak.zip({f: chunk.pop(f"{prefix}_{f}") for f in [*cfields, *extra[key]]})
                yield ak.zip(fields, depth_limit=1)
                del fields  # or this chunk's arrays stay alive while the next one is read
        except (OSError, ValueError, uproot.DeserializationError) as err:
            raise _unreadable(path, tree, err) from err


def _with_optional(t, layout: Layout, scalars: list[str], wanted: dict[str, tuple[str, str, dict[str, str]]],
                   branches: Sequence[str] | None) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The scalars and jagged branches to read from ``t``: the layout's, and its optional ones
    that ``t`` has (the optional fields of each collection in ``extra``)."""
    prefixes = tuple(f"{p}_" for p, _, _ in layout.collections.values())
    scalars = scalars + [b for b in layout.optional if b in t and not b.startswith(prefixes)
                         and (branches is None or b in branches)]
    extra: dict[str, list[str]] = {}
    jagged = [f"{prefix}_{f}" for prefix, _, fields in wanted.values() for f in fields]
    for key, (prefix, _, fields) in wanted.items():
        extra[key] = [b[len(prefix) + 1:] for b in layout.optional
                      if b.startswith(f"{prefix}_") and b in t and b[len(prefix) + 1:] not in fields]
        jagged += [f"{prefix}_{f}" for f in extra[key]]
    return scalars, jagged, extra


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
        try:  # uproot reads the directory and baskets lazily: a truncated file fails only here
            if RUN_TREE not in f:
                return None
            run = f[RUN_TREE].arrays(list(RUN_BRANCHES), library="np")
        except (OSError, ValueError, uproot.DeserializationError) as err:
            raise _unreadable(path, RUN_TREE, err) from err
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
