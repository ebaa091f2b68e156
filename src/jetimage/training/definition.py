"""The model's input definition: what an input image of a trained model is.

:func:`save_definition` stores, inside the ``.keras`` archive (the member ``jetimage_inputs.json``,
which Keras ignores when loading), the study's kind, the image grid and channels, the
preprocessing, the jet definition, the in-model pixel transform and standardization, the physics
variables the model takes beside the image, the task (a label or an image per example) with the
channels the network sees and learns, and the input shape (:func:`input_definition`).
:func:`check_definition` compares it with the study that applies the model, or with the attributes
of an HDF5 image file, and raises a one-line error naming the first setting made differently.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jetimage.config import Config, ConfigError
from jetimage.formats.errors import InputError

__all__ = ["DEFINITION_MEMBER", "IMAGE_KEYS", "JET_KEYS", "check_definition", "check_study", "check_tagger",
           "input_definition", "model_task", "model_variables", "read_definition", "save_definition",
           "stored_definition"]


#: Member of the ``.keras`` archive holding the model's input definition (JSON).
DEFINITION_MEMBER = "jetimage_inputs.json"


#: The ``images`` settings that define an input image, per kind (the rest do not change pixels).
IMAGE_KEYS: dict[str, tuple[str, ...]] = {
    "jets": ("n_eta", "n_phi", "pixel_eta", "pixel_phi", "intensity", "channels", "centre", "rotate",
             "flip", "normalize", "deposit", "massless", "mode"),
    "events": ("n_eta", "n_phi", "eta_max", "intensity", "channels"),
}


#: The ``jets`` settings that define what a jet is (the pT window may differ when applying).
JET_KEYS = ("R", "trim_R", "trim_fcut")


def input_definition(cfg: Config) -> dict[str, Any]:
    """What an input image of a model trained by the study ``cfg`` is.

    Returns
    -------
    dict
        ``kind``; ``images`` (the settings of :data:`IMAGE_KEYS`); ``jets`` (kind jets:
        :data:`JET_KEYS`); ``train``: ``transform`` and ``standardize`` (inside the model);
        ``input_shape`` ``[n_eta, n_phi, n_channels]``; ``variables``: the names of the physics
        variables of the second input, in its order (empty: images only); ``study``; ``task``
        (``labels``: a score per example; ``images``: a pixel model's image per example),
        ``inputs`` (the channels the network sees, in its order: every image channel for task
        labels, ``train.inputs`` for task images) and ``target`` (``train.target`` for task images,
        else None).
    """
    tcfg = cfg["train"]
    images = {k: cfg["images"][k] for k in IMAGE_KEYS[cfg.kind]}
    pixels = tcfg["task"] == "images"
    inputs = list(tcfg["inputs"] if pixels else images["channels"])
    out: dict[str, Any] = {
        "kind": cfg.kind, "study": cfg["study"], "images": images,
        "train": {k: tcfg[k] for k in ("model", "transform", "standardize")},
        "input_shape": [images["n_eta"], images["n_phi"], len(inputs)],
        "variables": list(tcfg["variables"]),
        "task": tcfg["task"], "inputs": inputs, "target": tcfg["target"] if pixels else None,
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


def model_task(definition: Mapping[str, Any] | None) -> str:
    """What a model gives per example: ``labels`` (a score) or ``images`` (a pixel model); a
    definition that predates the image task is a tagger's."""
    return str((definition or {}).get("task") or "labels")


def model_variables(definition: Mapping[str, Any] | None) -> list[str]:
    """The physics variables a model takes beside its image (empty for an image-only model, or one
    whose definition predates them)."""
    return list((definition or {}).get("variables") or [])


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


def check_tagger(definition: Mapping[str, Any] | None, model: str | Path) -> None:
    """Refuse a pixel model (``train.task: images``) where a tagger's score is wanted (evaluate,
    apply, export).

    Raises
    ------
    InputError
        Naming the model.
    """
    if model_task(definition) != "labels":
        raise InputError(f"{model}: a pixel model (train.task: {model_task(definition)}) gives a corrected "
                         "image per example, not a score: apply it with jetimage.stages.correct")


def check_study(cfg: Config, model: str | Path) -> dict[str, Any]:
    """The model's definition, after checking that it is a tagger and that the study ``cfg`` makes the
    same images."""
    definition = read_definition(model)
    check_tagger(definition, model)
    check_definition(definition, cfg.kind, cfg["images"], cfg["jets"] if cfg.kind == "jets" else None,
                     model, cfg.source)
    return definition
