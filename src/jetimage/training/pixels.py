"""The image task (``train.task: images``): what a batch of pixel-level pileup removal holds, and its loss.

A pixel model (:data:`jetimage.models.zoo.PIXEL_ZOO`, the U-Net) sees some channels of an image
(``train.inputs``) and learns, per pixel, the fraction of the ``neutral`` energy that the target
channel (``train.target``: ``neutral_lv``) holds (:func:`jetimage.models.zoo.unet_targets`). The
channels are picked by name from the channels the image files were made with (their ``images``
attribute), so the files may hold more (the target, the total) in any order. The weight of a
pixel is its neutral energy over the mean of its image's non-empty pixels, times the example's
class-balanced weight: the loss (:func:`pixel_objective`) is the binary cross-entropy of the
fraction weighted by energy, and an empty pixel weighs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.formats.errors import InputError

__all__ = ["PixelChannels", "file_channels", "pixel_channels", "pixel_objective"]


@dataclass(frozen=True)
class PixelChannels:
    """Where the channels of the image task are among the channels of the image files.

    Attributes
    ----------
    channels
        The files' channels, in their order (the last axis of their ``images``).
    inputs
        The channels the network sees, in the order it sees them (``train.inputs``).
    target
        The channel it learns as a fraction of ``neutral`` (``train.target``).
    """

    channels: tuple[str, ...]
    inputs: tuple[str, ...]
    target: str

    @property
    def input_index(self) -> list[int]:
        return [self.channels.index(c) for c in self.inputs]

    def network_inputs(self, images: np.ndarray) -> np.ndarray:
        """The input channels of ``(n, n_eta, n_phi, n_channels)`` images, ``(n, n_eta, n_phi, n_inputs)``."""
        return np.ascontiguousarray(images[..., self.input_index])

    def batch(self, images: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inputs, fraction, pixel weights)`` of a batch of images with the files' channels.

        Parameters
        ----------
        images
            ``(n, n_eta, n_phi, n_channels)`` float32, the files' channels.
        weights
            ``(n,)`` the examples' training weights (class-balanced).

        Returns
        -------
        tuple
            The network's input channels ``(n, n_eta, n_phi, n_inputs)``; the target fraction
            ``(n, n_eta, n_phi, 1)``; the per-pixel weight ``(n, n_eta, n_phi)``, the energy weight of
            :func:`jetimage.models.zoo.unet_targets` times the example's weight (all float32).
        """
        from jetimage.models.zoo import unet_targets  # Keras is imported with the zoo

        neutral = images[..., self.channels.index("neutral")]
        fraction, energy = unet_targets(neutral, images[..., self.channels.index(self.target)])
        pixel_weights = energy * np.asarray(weights, np.float32)[:, None, None]
        return self.network_inputs(images), fraction, pixel_weights.astype(np.float32)


def file_channels(path: str | Path) -> list[str]:
    """The channels of an HDF5 image file (its ``images`` attribute), in the order of its last axis.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or does not record its channels.
    """
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("images")
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from err
    try:
        channels = json.loads(raw)["channels"] if raw is not None else None
    except (TypeError, ValueError, KeyError):
        channels = None
    if not isinstance(channels, list):
        raise InputError(f"{path}: the file does not record its image channels (attribute images.channels); "
                         "rerun the images rule")
    return [str(c) for c in channels]


def pixel_channels(paths: Sequence[str | Path], inputs: Sequence[str], target: str) -> PixelChannels:
    """The :class:`PixelChannels` of the image files ``paths`` (``train.inputs``, ``train.target``).

    Raises
    ------
    InputError
        Naming the file when its channels differ from the first file's, or lack an input, the
        target or ``neutral`` (images made with other ``images.channels``).
    """
    first: list[str] | None = None
    for path in paths:
        channels = file_channels(path)
        if first is not None and channels != first:
            raise InputError(f"{path}: its image channels {channels} differ from those of {paths[0]} "
                             f"{first}: make every image file with the same images.channels")
        first = channels
        for name, key in [*((c, "train.inputs") for c in inputs), (target, "train.target"),
                          ("neutral", "the fraction's denominator")]:
            if name not in channels:
                raise InputError(f"{path}: its images have the channels {channels}, without {name!r} "
                                 f"({key}): rerun the images rule with it in images.channels")
    if first is None:
        raise InputError("no image file to train on")
    return PixelChannels(tuple(first), tuple(inputs), target)


def pixel_objective() -> tuple[Any, list[Any]]:
    """Loss and weighted metrics of the image task: the per-pixel binary cross-entropy of the
    leading-vertex fraction (weighted by the ``(n, n_eta, n_phi)`` pixel weights of
    :meth:`PixelChannels.batch`, Keras' ``sum_over_batch_size`` over pixels), and the
    weighted mean absolute error of the fraction, ``fraction_mae`` (energy-weighted)."""
    import keras

    return "binary_crossentropy", [keras.metrics.MeanAbsoluteError(name="fraction_mae")]
