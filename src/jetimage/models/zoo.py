"""Keras 3 model zoo for jet and event images: every model serves both kinds of study.

Models are plain backend-agnostic Keras 3 (``keras.layers`` only, no Lambda layers) so that
they save to ``.keras`` and load back in safe mode, on TensorFlow or JAX. Every builder takes
``input_shape`` ``(n_eta, n_phi, n_channels)``, an optional adapted ``normalization`` layer
applied to the (transformed) pixels, ``transform`` (``none`` or ``log1p``, inside the model)
and ``augment`` (random flips and rotations while training only);
it returns a model whose output ``score`` is a sigmoid probability of the signal class, in
float32 also under a mixed-precision policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="jetimage")
class Log1p(keras.layers.Layer):
    """``log(1 + x)`` of the pixels: compresses the energy range of calorimeter images.

    A named layer (not a Lambda) so that the model saves the transform with itself and loads in
    safe mode: a tagger applied to new images needs no separate preprocessing step.
    """

    def call(self, inputs: Any) -> Any:
        return keras.ops.log1p(keras.ops.maximum(inputs, 0.0))


#: Pixel transforms applied inside the model (``train.transform``).
TRANSFORMS = ("none", "log1p")


def transform_pixels(images: np.ndarray, how: str) -> np.ndarray:
    """The numpy twin of the model's transform layer, for adapting the standardization."""
    return np.log1p(np.maximum(images, 0.0)) if how == "log1p" else images


def _stem(inputs: Any, normalization: keras.layers.Layer | None = None, augment: bool = False,
          transform: str = "none") -> Any:
    """Augmentation (training only) on the raw pixels, the pixel transform, then the standardization."""
    x = inputs
    if augment:
        # arXiv:1503.07077-style symmetries of the jet image: flips in eta and phi and
        # rotations about the image centre; empty pixels fill the corners. Both layers are
        # identities at inference.
        x = keras.layers.RandomFlip("horizontal_and_vertical", name="augment_flip")(x)
        x = keras.layers.RandomRotation(0.5, fill_mode="constant", fill_value=0.0,
                                        name="augment_rotation")(x)
    if transform == "log1p":
        x = Log1p(name="log1p")(x)
    return normalization(x) if normalization is not None else x


def _score(x: Any) -> Any:
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(x)


def convnet(
    input_shape: tuple[int, int, int],
    filters: int = 32,
    first_kernel: int = 11,
    dropout: float = 0.2,
    dense: int = 64,
    normalization: keras.layers.Layer | None = None,
    augment: bool = False,
    transform: str = "none",
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
    augment
        Random flips and rotations of the input while training.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, normalization, augment, transform)
    for i, (kernel, pool) in enumerate([(first_kernel, 2), (3, 3), (3, 3)]):
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"pool{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _score(x), name="convnet")


def _maxout_dense(x: Any, units: int, pieces: int, name: str) -> Any:
    """A dense MaxOut layer: ``units`` outputs, each the maximum of ``pieces`` linear pieces.

    Built from standard layers (dense -> reshape -> 1D max-pooling over consecutive pieces)
    so it needs no custom or Lambda layer.
    """
    x = keras.layers.Dense(units * pieces, name=f"{name}_linear")(x)
    x = keras.layers.Reshape((units * pieces, 1), name=f"{name}_reshape")(x)
    x = keras.layers.MaxPooling1D(pieces, name=f"{name}_max")(x)
    return keras.layers.Flatten(name=f"{name}_flat")(x)


def maxout(
    input_shape: tuple[int, int, int],
    units: tuple[int, int] = (256, 128),
    pieces: int = 5,
    dense: tuple[int, int] = (64, 25),
    dropout: float = 0.2,
    normalization: keras.layers.Layer | None = None,
    augment: bool = False,
    transform: str = "none",
) -> keras.Model:
    """The MaxOut network of arXiv:1511.05190 (section 4).

    The flattened image feeds two dense MaxOut layers (256 and 128 units, 5 linear pieces
    each), then two dense ReLU layers of 64 and 25 units, then the sigmoid output. Dropout
    after each MaxOut layer regularizes the many parameters (the paper trains on 10^7 jets).
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Flatten(name="pixels")(_stem(inputs, normalization, augment, transform))
    for i, n in enumerate(units):
        x = _maxout_dense(x, n, pieces, name=f"maxout{i}")
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    for i, n in enumerate(dense):
        x = keras.layers.Dense(n, activation="relu", name=f"dense{i}")(x)
    return keras.Model(inputs, _score(x), name="maxout")


def resnet(
    input_shape: tuple[int, int, int],
    filters: tuple[int, ...] = (16, 32, 64),
    blocks_per_stage: int = 1,
    dense: int = 64,
    dropout: float = 0.2,
    normalization: keras.layers.Layer | None = None,
    augment: bool = False,
    transform: str = "none",
) -> keras.Model:
    """A small residual CNN (He et al., arXiv:1512.03385, pre-activation blocks).

    A 5x5 stem convolution, then one stage per entry of ``filters``: ``blocks_per_stage``
    residual blocks of [batch norm -> ReLU -> 3x3 conv] x 2 with an identity (or 1x1
    projection) shortcut, the first block of every stage after the first striding by 2; then
    global average pooling, dense 64 and the sigmoid output.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, normalization, augment, transform)
    x = keras.layers.Conv2D(filters[0], 5, padding="same", name="stem_conv")(x)
    for s, f in enumerate(filters):
        for b in range(blocks_per_stage):
            stride = 2 if (s > 0 and b == 0) else 1
            name = f"stage{s}_block{b}"
            h = keras.layers.BatchNormalization(name=f"{name}_bn0")(x)
            h = keras.layers.Activation("relu", name=f"{name}_relu0")(h)
            shortcut = x
            if stride != 1 or x.shape[-1] != f:
                shortcut = keras.layers.Conv2D(f, 1, strides=stride, padding="same",
                                               name=f"{name}_proj")(h)
            h = keras.layers.Conv2D(f, 3, strides=stride, padding="same", name=f"{name}_conv0")(h)
            h = keras.layers.BatchNormalization(name=f"{name}_bn1")(h)
            h = keras.layers.Activation("relu", name=f"{name}_relu1")(h)
            h = keras.layers.Conv2D(f, 3, padding="same", name=f"{name}_conv1")(h)
            x = keras.layers.Add(name=f"{name}_add")([shortcut, h])
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.Activation("relu", name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _score(x), name="resnet")


def mobilenet(
    input_shape: tuple[int, int, int],
    filters: tuple[int, ...] = (32, 64, 64, 128),
    strides: tuple[int, ...] = (1, 2, 1, 2),
    dense: int = 64,
    dropout: float = 0.2,
    normalization: keras.layers.Layer | None = None,
    augment: bool = False,
    transform: str = "none",
) -> keras.Model:
    """A MobileNet-style CNN (Howard et al., arXiv:1704.04861) of depthwise-separable blocks.

    A 3x3 stem convolution, then per entry of ``filters``: [3x3 depthwise convolution (with
    the given stride) -> batch norm -> ReLU -> 1x1 pointwise convolution -> batch norm ->
    ReLU]; global average pooling, dense 64 and the sigmoid output.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, normalization, augment, transform)
    x = keras.layers.Conv2D(filters[0], 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for i, (f, s) in enumerate(zip(filters, strides, strict=True)):
        x = keras.layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False,
                                         name=f"block{i}_dw")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_dw_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_dw_relu")(x)
        x = keras.layers.Conv2D(f, 1, use_bias=False, name=f"block{i}_pw")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_pw_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_pw_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _score(x), name="mobilenet")


def bhimji(input_shape: tuple[int, int, int], filters: int = 128, n_conv: int = 3, dropout: float = 0.5,
           dense: int = 512, **stem: Any) -> keras.Model:
    """The CNN of Bhimji et al., arXiv:1711.03573, for whole-event images.

    ``n_conv`` x [3x3 convolution with ``filters`` maps (ReLU) -> 2x2 max pooling], dropout,
    dense ``dense`` (ReLU) -> 1 (sigmoid). Works on jet images as well as on event images.
    ``stem``: ``normalization``, ``augment`` and ``transform`` as for every model of the zoo.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, **stem)
    for i in range(n_conv):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _score(x), name="bhimji")


#: The model zoo: name -> builder(input_shape, normalization=..., augment=..., **hyper-parameters).
ZOO: dict[str, Callable[..., keras.Model]] = {
    "convnet": convnet,
    "maxout": maxout,
    "resnet": resnet,
    "mobilenet": mobilenet,
    "bhimji": bhimji,
}


def standardizer(train_images: np.ndarray) -> keras.layers.Normalization:
    """Per-pixel, per-channel standardization adapted on the training images only.

    Parameters
    ----------
    train_images
        ``(n, n_eta, n_phi, n_channels)`` raw pixel intensities (GeV), a sample of the
        training split.
    """
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
