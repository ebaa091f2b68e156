"""Keras 3 model zoo for jet and event images.

Models are plain backend-agnostic Keras 3 (``keras.layers`` only, no Lambda layers) so that
they save to ``.keras`` and load back in safe mode, on TensorFlow or JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def convnet(
    input_shape: tuple[int, int, int],
    filters: int = 32,
    first_kernel: int = 11,
    dropout: float = 0.2,
    dense: int = 64,
    normalization: keras.layers.Layer | None = None,
) -> keras.Model:
    """The ConvNet of de Oliveira et al., arXiv:1511.05190 (section 4).

    Three units of [convolution with 32 feature maps -> ReLU -> max-pooling -> dropout 20%]
    with an 11x11 first filter (the large first filter suits the sparse images) and 3x3 filters
    after it, max-pooling 2x2, 3x3, 3x3; then a normalization layer and dense 64 -> 1 (sigmoid).
    The paper's local response normalization has no Keras 3 layer; layer normalization takes
    its place.

    Parameters
    ----------
    input_shape
        ``(n_eta, n_phi, n_channels)``.
    normalization
        An optional (adapted) ``keras.layers.Normalization`` applied to the raw pixels first.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = normalization(inputs) if normalization is not None else inputs
    for i, (kernel, pool) in enumerate([(first_kernel, 2), (3, 3), (3, 3)]):
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"pool{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model(inputs, outputs, name="convnet")


#: The model zoo: name -> builder(input_shape, normalization=..., **hyper-parameters).
ZOO: dict[str, Callable[..., keras.Model]] = {"convnet": convnet}


def standardizer(train_images: np.ndarray) -> keras.layers.Normalization:
    """Per-pixel, per-channel standardization adapted on the training images only."""
    layer = keras.layers.Normalization(axis=(1, 2, 3), name="standardize")
    layer.adapt(train_images)
    return layer


def build(name: str, input_shape: tuple[int, int, int], **hp: Any) -> keras.Model:
    """Build a model of the zoo by name.

    Raises
    ------
    KeyError
        Naming the unknown model and the available ones.
    """
    if name not in ZOO:
        raise KeyError(f"train.model: unknown model {name!r}; available: {sorted(ZOO)}")
    return ZOO[name](input_shape, **hp)
