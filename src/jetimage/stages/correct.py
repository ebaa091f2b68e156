"""Pileup removal by a trained pixel model (``train.task: images``, the U-Net): corrected images and
the corrected jet mass.

The model gives, per pixel, the fraction of the neutral energy that comes from the leading vertex.
:func:`corrected_images` turns images with a study's channels into the corrected neutral image
(that fraction times ``neutral``) and the corrected image (``charged_lv`` plus the corrected
neutral: the tracks of the leading vertex, as charged-hadron subtraction keeps them, with the
network's share of the neutral energy), predicting a batch at a time. :func:`iterate_corrected`
streams them from HDF5 image files, a block of rows at a time. :func:`corrected_mass` is the jet
mass of a corrected image, its pixels taken as massless particles at the pixel centres of the jet
frame (:func:`jetimage.stages.image_mass.image_mass`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import image_attrs
from jetimage.images.pixelize import Grid
from jetimage.stages.image_mass import image_mass
from jetimage.training.data import file_rows, iterate_rows
from jetimage.training.definition import check_definition, model_task, read_definition
from jetimage.training.loading import load_model
from jetimage.training.pixels import file_channels

__all__ = ["corrected_images", "corrected_mass", "file_inputs", "iterate_corrected", "pixel_model"]


def pixel_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The trained pixel model at ``path`` and its input definition.

    Raises
    ------
    InputError
        Naming the file when it is unreadable, holds no definition, or is a tagger (``train.task:
        labels``), which gives a score, not a corrected image.
    """
    definition = read_definition(path)
    if model_task(definition) != "images":
        raise InputError(f"{path}: the model is a tagger (train.task: {model_task(definition)}): it gives a "
                         "score per example, not a corrected image; give a model trained with train.task: "
                         "images")
    return load_model(path), definition


def _index(channels: Sequence[str], name: str, why: str) -> int:
    if name not in channels:
        raise InputError(f"the images have the channels {list(channels)}, without {name!r} ({why}): make "
                         "them with it in images.channels")
    return list(channels).index(name)


def corrected_images(model: Any, definition: Mapping[str, Any], images: np.ndarray, channels: Sequence[str],
                     batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The corrected neutral image and the corrected image of every example.

    Parameters
    ----------
    model, definition
        A pixel model and its input definition (:func:`pixel_model`).
    images
        ``(n, n_eta, n_phi, n_channels)`` intensities (GeV) with the ``channels`` of a study; they
        hold the model's input channels (``definition["inputs"]``), ``neutral`` and ``charged_lv``.
    batch_size
        Images predicted at a time: the model's activations of one batch are held at once.

    Returns
    -------
    neutral : np.ndarray
        ``(n, n_eta, n_phi)`` float32 the predicted leading-vertex fraction times ``neutral``.
    total : np.ndarray
        ``(n, n_eta, n_phi)`` float32 ``charged_lv`` plus the corrected neutral image.

    Raises
    ------
    InputError
        Naming the channel the images lack.
    """
    inputs = [_index(channels, c, "an input of the model") for c in definition["inputs"]]
    neutral_at = _index(channels, "neutral", "the energy the model shares out")
    charged_at = _index(channels, "charged_lv", "the tracks of the leading vertex")
    n = len(images)
    neutral = np.empty((n, *images.shape[1:3]), np.float32)
    total = np.empty_like(neutral)
    for lo in range(0, n, batch_size):
        block = np.asarray(images[lo:lo + batch_size], np.float32)
        fraction = np.asarray(model.predict_on_batch(np.ascontiguousarray(block[..., inputs])), np.float32)
        hi = lo + len(block)
        neutral[lo:hi] = fraction[..., 0] * block[..., neutral_at]
        total[lo:hi] = block[..., charged_at] + neutral[lo:hi]
    return neutral, total


def file_inputs(model_path: str | Path, definition: Mapping[str, Any], paths: Sequence[str | Path]
                ) -> list[list[str]]:
    """The channels of each image file, after checking that its images were made as the pixel
    model's training images (grid, preprocessing, jet definition; the channels may differ: they
    are picked by name).

    Raises
    ------
    ConfigError
        Naming the file and the first setting that differs.
    """
    same = {**definition, "images": {k: v for k, v in definition["images"].items() if k != "channels"}}
    channels = []
    for path in paths:
        attrs = image_attrs(path)
        check_definition(same, attrs.get("kind", definition["kind"]), attrs.get("images", {}),
                         attrs.get("jets"), model_path, str(path))
        channels.append(file_channels(path))
    return channels


def iterate_corrected(model_path: str | Path, paths: Sequence[str | Path], rows: np.ndarray | None = None,
                      block: int = 4096, batch_size: int = 256
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, neutral, total)`` of :func:`corrected_images` over the global ``rows`` (sorted; all
    by default) of HDF5 image files, at most ``block`` rows at a time: memory is bounded whatever
    the size of the files.

    Raises
    ------
    InputError
        Naming the model when it is not a pixel model, or a file whose images lack a channel.
    ConfigError
        Naming the first setting (grid, preprocessing, jet definition) in which a file's images
        differ from the model's training images; the channels may differ (they are picked by name,
        so images without the target, as the data's, are corrected too).
    """
    model, definition = pixel_model(model_path)
    channels = file_inputs(model_path, definition, paths)
    offsets = np.r_[0, np.cumsum(file_rows(paths))]
    rows = np.arange(offsets[-1]) if rows is None else np.asarray(rows)
    for r, images in iterate_rows(paths, rows, block):  # each piece from one file
        f = int(np.searchsorted(offsets, r[0], side="right") - 1)
        neutral, total = corrected_images(model, definition, images, channels[f], batch_size)
        yield r, neutral, total


def corrected_mass(total: np.ndarray, images: Mapping[str, Any], eta_c: np.ndarray | None = None,
                   phi_c: np.ndarray | None = None) -> np.ndarray:
    """The jet mass of corrected images, ``(n,)`` GeV: their pixels as massless particles at the
    pixel centres (:func:`jetimage.stages.image_mass.image_mass`).

    Parameters
    ----------
    total
        ``(n, n_eta, n_phi)`` corrected images (:func:`corrected_images`), pT or E per pixel (GeV).
    images
        The study's ``images`` settings (or an image file's attribute): the grid and ``intensity``.
    eta_c, phi_c
        ``(n,)`` detector position of the image centre, needed for E images (a pT image's mass does
        not depend on it).
    """
    return image_mass(np.asarray(total), Grid.from_config(dict(images)), images.get("intensity", "pt"),
                      eta_c, phi_c)
