"""Use a trained tagger: score any sample into friend trees, check the model's inputs, export to ONNX.

The model carries its inputs' definition
----------------------------------------
:func:`save_definition` stores, inside the ``.keras`` archive (the member ``jetimage_inputs.json``,
which Keras ignores when loading), what an input image of the model is: the study's kind, the
image grid and channels, the preprocessing, the jet definition, the in-model pixel transform and
standardization, and the input shape (:func:`input_definition`). :func:`check_definition` compares
it with the study that applies the model, or with the attributes of an HDF5 image file, and raises
a one-line error naming the first setting made differently.

Friend trees
------------
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
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import uproot

from . import preprocess
from .config import Config, ConfigError
from .fatjets import event_variables
from .images import clean_jets, event_images, jet_columns
from .io import LAYOUTS, InputError, atomic_path, iterate_tree

__all__ = ["DEFINITION_MEMBER", "FRIEND_TREE", "IMAGE_KEYS", "ROW_TYPES", "Alignment", "apply",
           "check_definition", "check_study", "export_onnx", "friend_columns", "input_definition",
           "onnx_scores", "read_definition", "save_definition", "score_tree", "stored_definition"]

log = logging.getLogger(__name__)

#: Member of the ``.keras`` archive holding the model's input definition (JSON).
DEFINITION_MEMBER = "jetimage_inputs.json"
#: Name of the friend tree written by :func:`apply`.
FRIEND_TREE = "jetimage"
#: The ``images`` settings that define an input image, per kind (the rest do not change pixels).
IMAGE_KEYS: dict[str, tuple[str, ...]] = {
    "jets": ("n_eta", "n_phi", "pixel_eta", "pixel_phi", "intensity", "channels", "centre", "rotate",
             "flip", "normalize", "deposit", "massless", "mode"),
    "events": ("n_eta", "n_phi", "eta_max", "intensity", "channels"),
}
#: The ``jets`` settings that define what a jet is (the pT window may differ when applying).
JET_KEYS = ("R", "trim_R", "trim_fcut")
#: How the friend tree lines up with the input tree (see the module docstring).
Alignment = Literal["per_jet", "event_jets", "per_event"]


# ---------------------------------------------------------------------------------------------
# the model's input definition
# ---------------------------------------------------------------------------------------------


def input_definition(cfg: Config) -> dict[str, Any]:
    """What an input image of a model trained by the study ``cfg`` is.

    Returns
    -------
    dict
        ``kind``; ``images`` (the settings of :data:`IMAGE_KEYS`); ``jets`` (kind jets:
        :data:`JET_KEYS`); ``train``: ``transform`` and ``standardize`` (inside the model);
        ``input_shape`` ``[n_eta, n_phi, n_channels]``; ``study``.
    """
    images = {k: cfg["images"][k] for k in IMAGE_KEYS[cfg.kind]}
    out: dict[str, Any] = {
        "kind": cfg.kind, "study": cfg["study"], "images": images,
        "train": {k: cfg["train"][k] for k in ("model", "transform", "standardize")},
        "input_shape": [images["n_eta"], images["n_phi"], len(images["channels"])],
    }
    if cfg.kind == "jets":
        out["jets"] = {k: cfg["jets"][k] for k in JET_KEYS}
    return out


def save_definition(model_path: str | Path, definition: Mapping[str, Any]) -> None:
    """Add ``definition`` to the ``.keras`` archive ``model_path`` (call before it is published)."""
    with zipfile.ZipFile(model_path, "a") as z:
        z.writestr(DEFINITION_MEMBER, json.dumps(definition, indent=1, sort_keys=True))


def stored_definition(model_path: str | Path) -> dict[str, Any] | None:
    """The input definition stored in a ``.keras`` model; None for a model that holds none (not
    trained by jetimage, or by an older one).

    Raises
    ------
    InputError
        Naming the file when it is missing or not a ``.keras`` archive.
    """
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file; run the train rule first (or set apply.model)")
    try:
        with zipfile.ZipFile(path) as z:
            if DEFINITION_MEMBER not in z.namelist():
                return None
            return json.loads(z.read(DEFINITION_MEMBER))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable .keras model ({type(err).__name__}: {err})") from err


def read_definition(model_path: str | Path) -> dict[str, Any]:
    """The input definition stored in a ``.keras`` model (:func:`stored_definition`).

    Raises
    ------
    InputError
        Naming the file when it is missing, not a ``.keras`` archive, or holds no definition
        (a model trained before jetimage stored one: retrain it).
    """
    definition = stored_definition(model_path)
    if definition is None:
        raise InputError(f"{model_path}: the model holds no input definition ({DEFINITION_MEMBER}): it "
                         "was trained by an older jetimage; rerun the train rule")
    return definition


def _differences(model: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> list[str]:
    return [f"{prefix}.{k}: the model was trained with {model[k]!r}, these inputs have {given.get(k)!r}"
            for k in model if given.get(k) != model[k]]


def check_definition(definition: Mapping[str, Any], kind: str, images: Mapping[str, Any],
                     jets: Mapping[str, Any] | None, model: str | Path, where: str) -> None:
    """Refuse inputs made differently from the model's training images.

    Parameters
    ----------
    definition
        The model's :func:`input_definition`.
    kind, images, jets
        The kind and the ``images`` (and ``jets``) settings of the inputs: a study's config
        sections, or the attributes of an HDF5 image file.
    model, where
        The model file and what the inputs are (config file, HDF5 file), for the message.

    Raises
    ------
    ConfigError
        One line naming the first setting that differs, the model's value and the inputs'.
    """
    if kind != definition["kind"]:
        raise ConfigError(f"{where}: kind: the model {model} scores {definition['kind']}, these inputs "
                          f"are {kind}")
    problems = _differences(definition["images"], images, "images")
    if jets is not None and "jets" in definition:
        problems += _differences(definition["jets"], jets, "jets")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{where}: {problems[0]}{more}; model {model}: make the images as the model "
                          "was trained, or train a model on these")


def check_study(cfg: Config, model: str | Path) -> dict[str, Any]:
    """The model's definition, after checking that the study ``cfg`` makes the same images."""
    definition = read_definition(model)
    check_definition(definition, cfg.kind, cfg["images"], cfg["jets"] if cfg.kind == "jets" else None,
                     model, cfg.source)
    return definition


# ---------------------------------------------------------------------------------------------
# scoring a tree
# ---------------------------------------------------------------------------------------------


def _predict(model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(n,)`` float64 scores of ``(n, n_eta, n_phi, n_channels)`` images (evaluate's batching)."""
    if len(images) == 0:
        return np.zeros(0)
    return model.predict(images, batch_size=batch_size, verbose=0).ravel().astype(np.float64)


def _score_jets(cfg: Config, model: Any, chunk: ak.Array, first_row: int) -> dict[str, np.ndarray]:
    """Per row of a ``jets`` chunk: ``score`` (NaN if unusable), ``passed`` and the jet variables."""
    n = len(chunk)
    usable, _ = clean_jets(ak.with_field(chunk, np.arange(n), "row"))
    scored = ak.to_numpy(usable.row)
    images, _ = preprocess.make_images(usable, cfg["images"])
    score = np.full(n, np.nan)
    score[scored] = _predict(model, images)
    passed = np.zeros(n, bool)
    passed[scored] = True
    columns = jet_columns(chunk)
    return {"score": score, "passed": passed, "label": ak.to_numpy(chunk.label).astype(np.int32),
            **columns, "row": first_row + np.arange(n)}


def _score_events(cfg: Config, model: Any, chunk: ak.Array, first_row: int) -> dict[str, np.ndarray]:
    """Per row of an ``events`` chunk: ``score``, ``passed`` and the event variables."""
    v = event_variables(chunk.fatjets, cfg["events"]["selection"])
    n = len(chunk)
    return {"score": _predict(model, event_images(chunk.particles, cfg["images"])),
            "passed": np.ones(n, bool), "event": ak.to_numpy(chunk.event),
            **{k: np.asarray(v[k]) for k in ("n_fatjets", "mj", "lead_pt", "deta12")},
            "cut_pass": np.asarray(v["cut_pass"], bool), "row": first_row + np.arange(n)}


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


def score_tree(cfg: Config, model: Any, path: str | Path) -> dict[str, np.ndarray]:
    """Score every row of the study's tree in ``path`` (a shard or an ingested chunk).

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
    score = _score_jets if cfg.kind == "jets" else _score_events
    parts, done = [], 0
    for chunk in iterate_tree([path], LAYOUTS[cfg.kind], step_size=cfg["images"]["chunk_size"]):
        parts.append(score(cfg, model, chunk, done))
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


def apply(cfg: Config, sample: str, tree_path: str | Path, model_path: str | Path, output: str | Path,
          start: int | None = None, stop: int | None = None) -> int:
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
        ``stop - start`` entries aligned with them.

    Returns
    -------
    int
        Entries of the friend tree written to ``output`` (ROOT, atomically).
    """
    from .evaluate import load_model

    s = cfg.sample(sample)
    check_study(cfg, model_path)
    model = load_model(model_path)
    rows = score_tree(cfg, model, tree_path)
    how = alignment(cfg, s)
    read = "files" in s
    if read and (start is None or stop is None):
        raise ConfigError(f"{cfg.source}: samples[{cfg.sample_names.index(sample)}]: sample {sample!r} "
                          "is read from files: give the chunk's --start and --stop entries")
    n_entries = stop - start if read else len(rows["score"])
    entries = _entries_of_rows(tree_path, LAYOUTS[cfg.kind].tree, rows, start, stop) if read else None
    columns = friend_columns(rows, how, entries, n_entries)
    write_friend(columns, output, f"jetimage scores of {Path(model_path).name} ({how})")
    n_scored = int(np.isfinite(rows["score"]).sum())
    log.info("%s: %d entries, %d examples scored (%s) -> %s", sample, n_entries, n_scored, how, output)
    return n_entries


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------


def _export_layers() -> tuple[type, type]:
    """Layers that ONNX converters know, standing in for ``Log1p`` and ``Normalization``."""
    import keras

    class ExportLog1p(keras.layers.Layer):
        """``log(1 + max(x, 0))``: ONNX has no log1p operator."""

        def call(self, inputs: Any) -> Any:
            return keras.ops.log(1.0 + keras.ops.maximum(inputs, 0.0))

    class ExportStandardize(keras.layers.Layer):
        """``(x - mean) / max(sqrt(variance), eps)`` with the statistics as weights (the adapted
        ``Normalization`` keeps them as captured tensors, which converters turn into graph inputs)."""

        def __init__(self, mean: np.ndarray, variance: np.ndarray, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            const = keras.initializers.Constant
            self.mean = self.add_weight(shape=mean.shape, initializer=const(mean), trainable=False,
                                        name="mean")
            self.variance = self.add_weight(shape=variance.shape, initializer=const(variance),
                                            trainable=False, name="variance")

        def call(self, inputs: Any) -> Any:
            scale = keras.ops.maximum(keras.ops.sqrt(self.variance), keras.config.epsilon())
            return (inputs - self.mean) / scale

    return ExportLog1p, ExportStandardize


def exportable(model: Any) -> Any:
    """A copy of ``model`` with the same weights in layers that ONNX converters support."""
    import keras

    from .models import Log1p

    log1p, standardize = _export_layers()

    def clone(layer: Any) -> Any:
        if isinstance(layer, Log1p):
            return log1p(name=layer.name)
        if isinstance(layer, keras.layers.Normalization):
            return standardize(np.asarray(layer.mean), np.asarray(layer.variance), name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for new, old in zip(copy.layers, model.layers, strict=True):
        if not isinstance(old, keras.layers.Normalization):
            new.set_weights(old.get_weights())
    return copy


def export_onnx(model_path: str | Path, output: str | Path) -> None:
    """Write the model as ONNX (``keras.Model.export(format="onnx")``, tf2onnx), atomically.

    The input is ``images`` ``(batch, n_eta, n_phi, n_channels)`` float32, the output the
    ``(batch, 1)`` signal probability. The input definition (:func:`input_definition`) is stored
    as the ONNX metadata property ``jetimage_inputs`` (JSON).
    """
    import onnx

    from .evaluate import load_model

    definition = read_definition(model_path)
    copy = exportable(load_model(model_path))
    copy.predict(np.zeros((1, *definition["input_shape"]), np.float32), verbose=0)  # builds the graph
    with atomic_path(output) as tmp:
        copy.export(str(tmp), format="onnx", verbose=False)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "jetimage_inputs", json.dumps(definition, sort_keys=True)
        onnx.save(proto, str(tmp))
    log.info("exported %s to %s", model_path, output)


def onnx_scores(onnx_path: str | Path, images: np.ndarray) -> np.ndarray:
    """``(n,)`` scores of ``(n, n_eta, n_phi, n_channels)`` images with ONNX Runtime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: images.astype(np.float32, copy=False)})[0].ravel().astype(np.float64)
