"""The apply stage: score a tree file of a sample with a trained model into a friend tree.

:func:`apply` scores one tree file of a sample (a generated shard or an ingested chunk) and writes
a ROOT file with one TTree, ``jetimage``, aligned entry by entry with the tree the user has:

- ``per_jet``: the input holds one jet per entry (a generated ``jets`` shard, or a per-jet tree read
  with the ``jetimage`` preset): one ``score`` per entry;
- ``event_jets``: the input holds one event per entry and the tagger scores jets (a tree read with
  the ``particles``, ``delphes`` or ``nested`` preset in a jet study): jagged ``jet_*`` branches
  with counter ``n_jets``, one element per jet that
  jetimage clustered and selected;
- ``per_event``: an event classifier (kind ``events``): one ``score`` per event.

Entries without a scored example (a jet with unusable constituents, an event the skim dropped, a
jet outside the cuts) keep their entry with ``passed = false`` and ``score = NaN``, so that ROOT's
``AddFriend`` lines the trees up. The jet (or event) variables jetimage computed sit beside the score.
For a read sample the entries are ``[start, stop)`` of the user's file (one ingest chunk), and the
rows of the ingested tree are placed by their ``entry`` branch (the input entry ingest records),
or, in chunks ingested before it did, by ``event``.

The output is never one of the inputs (the tree file or the model, compared by resolved path and
by :func:`os.path.samefile`, so hard links too), and an existing file is replaced only when
jetimage wrote it (a ROOT file holding only the friend tree ``jetimage``) or with ``force``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import uproot

from jetimage.config import Config, ConfigError
from jetimage.formats.atomic import atomic_path
from jetimage.formats.errors import InputError
from jetimage.formats.root import LAYOUTS, iterate_tree, read_run
from jetimage.images import preprocess
from jetimage.physics.events import event_variables
from jetimage.stages.images import clean_jets, event_images, jet_columns
from jetimage.training.definition import check_study, model_variables
from jetimage.training.loading import load_model

__all__ = ["Alignment", "FRIEND_TREE", "ROW_TYPES", "VARIABLE_BRANCHES", "alignment", "apply",
           "check_entry_range", "check_output", "check_variables", "friend_columns", "is_friend_file",
           "score_tree", "write_friend"]


log = logging.getLogger(__name__)


#: Name of the friend tree written by :func:`apply`.
FRIEND_TREE = "jetimage"


#: How the friend tree lines up with the input tree (see the module docstring).
Alignment = Literal["per_jet", "event_jets", "per_event"]


def _predict(model: Any, images: np.ndarray, variables: np.ndarray | None = None,
             batch_size: int = 256) -> np.ndarray:
    """``(n,)`` float64 scores of ``(n, n_eta, n_phi, n_channels)`` images, with the ``(n, k)``
    physics variables of a model that takes them (evaluate's batching)."""
    if len(images) == 0:
        return np.zeros(0)
    x = images if variables is None else {"images": images, "variables": variables.astype(np.float32)}
    return model.predict(x, batch_size=batch_size, verbose=0).ravel().astype(np.float64)


def _score_rows(model: Any, images: np.ndarray, columns: dict[str, np.ndarray], rows: np.ndarray,
                names: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(score, passed)`` of ``n`` rows, of which ``rows`` have ``images``: a row whose physics
    variables (``names``, from ``columns``) are not all finite is not scored."""
    variables = np.stack([np.asarray(columns[k], np.float64)[rows] for k in names], axis=1) if names else None
    ok = np.isfinite(variables).all(axis=1) if variables is not None else np.ones(len(rows), bool)
    score, passed = np.full(n, np.nan), np.zeros(n, bool)
    score[rows[ok]] = _predict(model, images[ok], None if variables is None else variables[ok])
    passed[rows[ok]] = True
    return score, passed


def _score_jets(cfg: Config, model: Any, chunk: ak.Array, first_row: int, names: Sequence[str] = ()
                ) -> dict[str, np.ndarray]:
    """Per row of a ``jets`` chunk: ``score`` (NaN if unusable), ``passed`` and the jet variables."""
    n = len(chunk)
    usable, _ = clean_jets(ak.with_field(chunk, np.arange(n), "row"))
    images, _ = preprocess.make_images(usable, cfg["images"])
    columns = jet_columns(chunk)
    score, passed = _score_rows(model, images, columns, ak.to_numpy(usable.row), names, n)
    return {"score": score, "passed": passed, "label": ak.to_numpy(chunk.label).astype(np.int32),
            **columns, "row": first_row + np.arange(n)}


def _score_events(cfg: Config, model: Any, chunk: ak.Array, first_row: int, names: Sequence[str] = ()
                  ) -> dict[str, np.ndarray]:
    """Per row of an ``events`` chunk: ``score``, ``passed`` and the event variables."""
    v = event_variables(chunk.fatjets, cfg["events"]["selection"])
    n = len(chunk)
    columns = {k: np.asarray(v[k]) for k in ("n_fatjets", "mj", "lead_pt", "deta12")}
    score, passed = _score_rows(model, event_images(chunk.particles, cfg["images"]), columns, np.arange(n),
                                names, n)
    return {"score": score, "passed": passed, "event": ak.to_numpy(chunk.event), **columns,
            "cut_pass": np.asarray(v["cut_pass"], bool), "row": first_row + np.arange(n)}


#: The branches of the study's tree each physics variable of a model is computed from.
VARIABLE_BRANCHES: dict[str, tuple[str, ...]] = {
    "jet_pt": ("jet_pt",), "jet_eta": ("jet_eta",), "jet_m": ("jet_m",), "tau21": ("tau21",),
    "n_subjets": ("n_subjets",), "delta_r": ("subjet1_eta", "subjet1_phi", "subjet2_eta", "subjet2_phi"),
    "n_fatjets": ("n_fatjets",), "mj": ("fatjet_m",), "lead_pt": ("fatjet_pt",), "deta12": ("fatjet_eta",),
}


def check_variables(path: str | Path, tree: str, names: Sequence[str]) -> None:
    """Refuse a tree without a branch that a physics variable of the model is computed from.

    Raises
    ------
    InputError
        One line naming the file, the tree, the branch and the variable.
    """
    with uproot.open(path) as f:
        have = set(f[tree].keys()) if tree in f else set()
    for name in names:
        for branch in VARIABLE_BRANCHES.get(name, (name,)):
            if branch not in have:
                raise InputError(f"{path}: tree {tree!r} has no branch {branch!r}, from which the model's "
                                 f"physics variable {name!r} is read: map it (samples[].branches) or apply "
                                 "a model trained without it (train.variables)")


#: The branches of :func:`score_tree` per kind and their types (the same in every friend file,
#: also one of an ingested chunk where nothing passed, so that the parts chain).
ROW_TYPES: dict[str, dict[str, str]] = {
    "jets": {"score": "float64", "passed": "bool", "label": "int32", "event": "int64", "jet_pt": "float64",
             "jet_eta": "float64", "jet_phi": "float64", "jet_m": "float64", "tau21": "float64",
             "n_subjets": "int32", "delta_r": "float64", "row": "int64"},
    "events": {"score": "float64", "passed": "bool", "event": "int64", "n_fatjets": "int32",
               "mj": "float64", "lead_pt": "float64", "deta12": "float64", "cut_pass": "bool",
               "row": "int64"},
}


def score_tree(cfg: Config, model: Any, path: str | Path, variables: Sequence[str] = ()
               ) -> dict[str, np.ndarray]:
    """Score every row of the study's tree in ``path`` (a shard or an ingested chunk), giving the
    model the physics ``variables`` of each row beside its image when it takes them
    (:func:`check_variables` first).

    Returns
    -------
    dict
        ``(n_rows,)`` arrays in tree order, typed as :data:`ROW_TYPES`: ``score`` (NaN where
        nothing was scored), ``passed``, ``row`` and the kind's variables (jets: ``event``,
        ``label``, ``jet_pt``, ``jet_eta``, ``jet_phi``, ``jet_m``, ``tau21``, ``n_subjets``,
        ``delta_r``; events: ``event``, ``n_fatjets``, ``mj``, ``lead_pt``, ``deta12``,
        ``cut_pass``). A tree without entries (an ingested chunk where nothing passed) gives
        empty arrays.
    """
    types = ROW_TYPES[cfg.kind]
    tree = LAYOUTS[cfg.kind].tree
    with uproot.open(path) as f:
        empty = tree in f and f[tree].num_entries == 0
    if empty:
        return {k: np.zeros(0, t) for k, t in types.items()}
    check_variables(path, tree, variables)
    score = _score_jets if cfg.kind == "jets" else _score_events
    parts, done = [], 0
    for chunk in iterate_tree([path], LAYOUTS[cfg.kind], step_size=cfg["images"]["chunk_size"]):
        parts.append(score(cfg, model, chunk, done, variables))
        done += len(chunk)
    return {k: np.concatenate([p[k] for p in parts]).astype(t) for k, t in types.items()}


def _entries_of_rows(path: str | Path, tree: str, rows: dict[str, np.ndarray], start: int, stop: int
                     ) -> np.ndarray:
    """The input entry of each row of an ingested chunk, relative to ``start``; checked in range."""
    with uproot.open(path) as f:
        t = f[tree]
        entry = t["entry"].array(library="np") if "entry" in t else rows["event"]
    local = np.asarray(entry, np.int64) - start
    if len(local) and (local.min() < 0 or local.max() >= stop - start):
        lo, hi = int(local.min()) + start, int(local.max()) + start
        raise InputError(f"{path}: tree {tree!r} rows do not carry input entry numbers in [{start}, "
                         f"{stop}) (they range {lo}..{hi}), so the friend tree cannot be aligned: "
                         "rerun the ingest rule (ingest records each row's input entry)")
    return local


def alignment(cfg: Config, sample: Mapping[str, Any]) -> Alignment:
    """How the friend tree of ``sample`` lines up with its input (see the module docstring)."""
    if cfg.kind == "events":
        return "per_event"
    return "event_jets" if "files" in sample and sample["preset"] != "jetimage" else "per_jet"


def _place(values: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """``values`` at positions ``at`` of a length-``n`` array, the rest NaN (floats) or 0."""
    fill = np.nan if values.dtype.kind == "f" else 0
    out = np.full(n, fill, dtype=values.dtype)
    out[at] = values
    return out


def friend_columns(rows: dict[str, np.ndarray], how: Alignment, entries: np.ndarray | None,
                   n_entries: int) -> dict[str, Any]:
    """The friend tree's branches, one entry per input entry.

    Parameters
    ----------
    rows
        :func:`score_tree` output, ``(n_rows,)`` each.
    how
        The :data:`Alignment`.
    entries
        ``(n_rows,)`` input entry of each row (relative to the chunk), or None when the rows are
        the input entries themselves (a generated shard).
    n_entries
        Entries of the friend tree.
    """
    rows = {k: v for k, v in rows.items() if k != "row"}
    if entries is None:
        return rows
    if how != "event_jets":
        if len(np.unique(entries)) != len(entries):
            raise InputError("two rows of an ingested chunk come from the same input entry; a per-entry "
                             "friend tree cannot hold both")
        return {k: _place(v, entries, n_entries) for k, v in rows.items()}
    counts = np.bincount(entries, minlength=n_entries)
    order = np.argsort(entries, kind="stable")
    jets = {k.removeprefix("jet_"): ak.unflatten(v[order], counts) for k, v in rows.items()}
    return {"jet": ak.zip(jets)}


def write_friend(columns: Mapping[str, Any], output: str | Path, title: str) -> None:
    """Write the friend tree :data:`FRIEND_TREE` with ``columns`` (uproot ``mktree``), atomically."""
    with atomic_path(output) as tmp, uproot.recreate(tmp) as f:
        types = {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in columns.items()}
        tree = f.mktree(FRIEND_TREE, types, counter_name=lambda name: "n_jets",
                        field_name=lambda outer, inner: f"jet_{inner}", title=title)
        tree.extend(dict(columns))


def is_friend_file(path: str | Path) -> bool:
    """Whether ``path`` is a friend file written by :func:`apply`: a ROOT file holding only the
    tree :data:`FRIEND_TREE` (the one file ``apply`` replaces without ``force``)."""
    try:
        with uproot.open(path) as f:
            return f.keys(cycle=False) == [FRIEND_TREE] and f.classname_of(FRIEND_TREE) == "TTree"
    except Exception:  # not a ROOT file (uproot raises many types): not a friend file
        return False


def check_output(output: str | Path, inputs: Sequence[str | Path], force: bool = False) -> None:
    """Refuse an ``output`` that is one of ``inputs`` (the same resolved path, or the same file by
    :func:`os.path.samefile`: a hard link), or an existing file that jetimage did not write
    (:func:`is_friend_file`) unless ``force``: ``apply --output mydata.root`` replaced the user's file.

    Raises
    ------
    InputError
        Naming the output, the input it is, and the fix.
    """
    out = Path(output)
    for p in inputs:
        same = out.exists() and Path(p).exists() and os.path.samefile(out, p)  # hard links too
        if same or out.resolve() == Path(p).resolve():
            raise InputError(f"{output}: is the input {p}: apply writes the friend tree to a file of its own "
                             "(never onto an input); give another --output")
    if out.exists() and not force and not is_friend_file(out):
        raise InputError(f"{output}: exists and is not a friend file written by jetimage apply (a ROOT file "
                         f"holding only the tree {FRIEND_TREE!r}): not replaced; give another --output, or "
                         "--force to replace it")


def check_entry_range(tree_path: str | Path, start: int, stop: int) -> None:
    """Refuse ``[start, stop)`` unless it is the range of user entries the ingested chunk
    ``tree_path`` was read from (its ``run`` summary's ``n_generated``): ``--stop 200`` on a chunk of
    102 entries wrote a 200-entry friend tree that no longer lined up with the user's tree."""
    if not 0 <= start <= stop:  # start == stop: the one chunk of an empty file
        raise InputError(f"{tree_path}: --start {start} --stop {stop} is no range of entries; give the "
                         "chunk's --start and --stop (those of its jetimage ingest)")
    run = read_run(tree_path)
    n = None if run is None else int(run["n_generated"])
    if n is not None and stop - start != n:
        raise InputError(f"{tree_path}: ingested from {n} entries of the user's tree, but --start {start} "
                         f"--stop {stop} spans {stop - start}: the friend tree would not line up; give the "
                         "chunk's own --start and --stop (those of its jetimage ingest)")


def apply(cfg: Config, sample: str, tree_path: str | Path, model_path: str | Path, output: str | Path,
          start: int | None = None, stop: int | None = None, force: bool = False) -> int:
    """Score one tree file of ``sample`` with a trained model; write its friend tree.

    Parameters
    ----------
    tree_path
        The study's tree (``jets`` or ``events``): a generated shard, or the ingested chunk of
        entries ``[start, stop)`` of one of the sample's files.
    model_path
        A ``.keras`` model trained by jetimage (this study's or another's); its input definition
        must match this study's image settings (:func:`check_definition`).
    start, stop
        For an ingested chunk: its entries in the user's file; the friend tree then has
        ``stop - start`` entries aligned with them (:func:`check_entry_range`).
    force
        Replace an existing ``output`` that jetimage did not write (:func:`check_output`; the
        inputs are never replaced).

    Returns
    -------
    int
        Entries of the friend tree written to ``output`` (ROOT, atomically).
    """

    check_output(output, [tree_path, model_path], force)
    s = cfg.sample(sample)
    read = "files" in s
    if read and (start is None or stop is None):
        raise ConfigError(f"{cfg.source}: samples[{cfg.sample_names.index(sample)}]: sample {sample!r} "
                          "is read from files: give the chunk's --start and --stop entries")
    if read and start is not None and stop is not None:
        check_entry_range(tree_path, start, stop)
    definition = check_study(cfg, model_path)
    model = load_model(model_path)
    rows = score_tree(cfg, model, tree_path, model_variables(definition))
    how = alignment(cfg, s)
    # read implies start and stop (checked above)
    n_entries = stop - start if read and start is not None and stop is not None else len(rows["score"])
    entries = (_entries_of_rows(tree_path, LAYOUTS[cfg.kind].tree, rows, start, stop)
               if read and start is not None and stop is not None else None)
    columns = friend_columns(rows, how, entries, n_entries)
    write_friend(columns, output, f"jetimage scores of {Path(model_path).name} ({how})")
    n_scored = int(np.isfinite(rows["score"]).sum())
    log.info("%s: %d entries, %d examples scored (%s) -> %s", sample, n_entries, n_scored, how, output)
    return n_entries
