"""Keras 3 model zoo for jet and event images: every model serves both kinds of study.

Models are plain backend-agnostic Keras 3 (``keras.layers`` only, no Lambda layers) so that
they save to ``.keras`` and load back in safe mode, on TensorFlow or JAX. Every builder takes
``input_shape`` ``(n_eta, n_phi, n_channels)``, an optional adapted ``normalization`` layer
applied to the (transformed) pixels, ``transform`` (``none`` or ``log1p``, inside the model)
``augment`` (``none``, ``rotations`` or ``p4m``: random flips and rotations, or a random one of
the 8 symmetries of the square grid, while training only) and ``variables`` (an adapted
:func:`variable_standardizer`: a second input of physics variables joined to the dense head);
it returns a model whose output ``score`` is a sigmoid probability of the signal class, in
float32 also under a mixed-precision policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from jetimage.models.p4m import (
    CopyPool,
    GroupBatchNorm,
    GroupConv,
    GroupPool,
    LiftingConv,
    P4MCopies,
    RandomP4M,
    RingPool,
)


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


#: Training-time augmentations (``train.augment``): none, random flips with continuous rotations, or
#: a random one of the 8 exact symmetries of the square grid (:class:`jetimage.models.p4m.RandomP4M`).
AUGMENTATIONS = ("none", "rotations", "p4m")


def _augment(x: Any, augment: str | bool = "none") -> Any:
    """The augmentation layers (identities at inference) on the raw pixels; ``True`` and ``False``
    (older configurations) mean ``rotations`` and ``none``."""
    how = ("rotations" if augment else "none") if isinstance(augment, bool) else augment
    if how not in AUGMENTATIONS:
        raise ValueError(f"train.augment: unknown augmentation {augment!r}; use one of {AUGMENTATIONS}")
    if how == "rotations":
        # arXiv:1503.07077-style symmetries of the jet image: flips in eta and phi and
        # rotations about the image centre; empty pixels fill the corners.
        x = keras.layers.RandomFlip("horizontal_and_vertical", name="augment_flip")(x)
        x = keras.layers.RandomRotation(0.5, fill_mode="constant", fill_value=0.0,
                                        name="augment_rotation")(x)
    elif how == "p4m":
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"train.augment: p4m maps a square image onto itself; got {tuple(x.shape[1:3])}")
        x = RandomP4M(name="augment_p4m")(x)
    return x


def _stem(inputs: Any, normalization: keras.layers.Layer | None = None, augment: str | bool = "none",
          transform: str = "none") -> Any:
    """Augmentation (training only) on the raw pixels, the pixel transform, then the standardization."""
    x = _augment(inputs, augment)
    if transform == "log1p":
        x = Log1p(name="log1p")(x)
    return normalization(x) if normalization is not None else x


def _score(x: Any) -> Any:
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(x)


def _head(inputs: Any, x: Any, name: str, variables: keras.layers.Normalization | None = None,
          units: int = 64) -> keras.Model:
    """The model from its image input and image features ``x`` (the output of its dense head).

    With ``variables`` (an adapted :func:`variable_standardizer`) the model takes a second input,
    ``variables`` ``(n_variables,)``: the example's physics variables, standardized inside the model
    with the training split's statistics, are joined to the image features and a dense layer of
    ``units`` (ReLU) scores both. The inputs are then the dict ``{"images", "variables"}``.
    """
    if variables is None:
        return keras.Model(inputs, _score(x), name=name)
    n = int(variables.mean.shape[-1])
    extra = keras.Input(shape=(n,), name="variables")
    x = keras.layers.Concatenate(name="join_variables")([x, variables(extra)])
    x = keras.layers.Dense(units, activation="relu", name="combined")(x)
    return keras.Model({"images": inputs, "variables": extra}, _score(x), name=name)


def convnet(
    input_shape: tuple[int, int, int],
    filters: int = 32,
    first_kernel: int = 11,
    dropout: float = 0.2,
    dense: int = 64,
    normalization: keras.layers.Layer | None = None,
    augment: str | bool = "none",
    transform: str = "none",
    variables: keras.layers.Normalization | None = None,
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
        Augmentation of the input while training: ``none``, ``rotations`` (random flips and
        rotations) or ``p4m`` (a random one of the 8 symmetries of the square grid).
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _convnet_features(_stem(inputs, normalization, augment, transform), filters, first_kernel, dropout)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return _head(inputs, x, "convnet", variables)


def _convnet_features(x: Any, filters: int, first_kernel: int, dropout: float) -> Any:
    """The convolutional units of :func:`convnet`, its normalization and the flattened features."""
    for i, (kernel, pool) in enumerate([(first_kernel, 2), (3, 3), (3, 3)]):
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"pool{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    return keras.layers.Flatten(name="flatten")(x)


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
    augment: str | bool = "none",
    transform: str = "none",
    variables: keras.layers.Normalization | None = None,
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
    return _head(inputs, x, "maxout", variables)


def resnet(
    input_shape: tuple[int, int, int],
    filters: tuple[int, ...] = (16, 32, 64),
    blocks_per_stage: int = 1,
    dense: int = 64,
    dropout: float = 0.2,
    normalization: keras.layers.Layer | None = None,
    augment: str | bool = "none",
    transform: str = "none",
    variables: keras.layers.Normalization | None = None,
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
    return _head(inputs, x, "resnet", variables)


def mobilenet(
    input_shape: tuple[int, int, int],
    filters: tuple[int, ...] = (32, 64, 64, 128),
    strides: tuple[int, ...] = (1, 2, 1, 2),
    dense: int = 64,
    dropout: float = 0.2,
    normalization: keras.layers.Layer | None = None,
    augment: str | bool = "none",
    transform: str = "none",
    variables: keras.layers.Normalization | None = None,
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
    return _head(inputs, x, "mobilenet", variables)


def bhimji(input_shape: tuple[int, int, int], filters: int = 128, n_conv: int = 3, dropout: float = 0.5,
           dense: int = 512, variables: keras.layers.Normalization | None = None, **stem: Any) -> keras.Model:
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
    return _head(inputs, x, "bhimji", variables)


def gcnn(input_shape: tuple[int, int, int], filters: int = 8, first_kernel: int = 5, n_group_conv: int = 2,
         dense: int = 64, dropout: float = 0.2, normalization: keras.layers.Layer | None = None,
         augment: str | bool = "none", transform: str = "none",
         variables: keras.layers.Normalization | None = None) -> keras.Model:
    """A p4m group-equivariant CNN (Cohen and Welling, arXiv:1602.07576) for square images.

    A lifting convolution (``first_kernel``, ``filters``) and ``n_group_conv`` 3x3 group
    convolutions, each followed by a group batch normalization and a ReLU, keep the 8 symmetries
    of the pixel grid (rotations by 90 degrees, mirror images: :mod:`jetimage.models.p4m`); a
    maximum over the group axis and a mean over each ring of equal distance from the image centre
    (:class:`~jetimage.models.p4m.RingPool`: invariant, yet it keeps how far from the centre a feature
    sits, which a global average loses and a jet image needs) make the features invariant, and a
    dense layer (``dense``) scores them. The score is then the same for an image and its 7
    transformed copies, exactly, provided what comes before the lifting is symmetric too: the
    ``log1p`` transform is, a per-pixel ``normalization`` (``train.standardize``) is not. With the
    defaults it has about half of the convnet's parameters (16,321 against 30,785 for one channel of
    25 x 25).
    """
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"gcnn: the p4m symmetries map a square image onto itself; got {input_shape[:2]}")
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, normalization, augment, transform)
    x = LiftingConv(filters, first_kernel, name="lifting")(x)
    for i in range(n_group_conv + 1):
        if i:
            x = GroupConv(filters, 3, name=f"group_conv{i}")(x)
        x = GroupBatchNorm(name=f"group_norm{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
    x = GroupPool(name="group_pool")(x)
    x = RingPool(name="ring_pool")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return _head(inputs, x, "gcnn", variables)


def cyclic(input_shape: tuple[int, int, int], filters: int = 32, first_kernel: int = 11, dropout: float = 0.2,
           dense: int = 64, pool: str = "mean", normalization: keras.layers.Layer | None = None,
           augment: str | bool = "none", transform: str = "none",
           variables: keras.layers.Normalization | None = None) -> keras.Model:
    """The convnet run on the 8 p4m copies of a square image, pooled: invariant by construction.

    After Dieleman et al., arXiv:1503.07077, who feed rotated and mirrored views of a galaxy image
    through one CNN with shared weights: here the views are the 8 symmetries of the square pixel
    grid (rotations by 90 degrees and their mirror images, :class:`jetimage.models.p4m.P4MCopies`),
    the CNN is the convolutional part of :func:`convnet` (same layers, same weights for every
    copy), and the flattened features of the 8 copies are pooled by their ``mean`` or ``max``
    (:class:`jetimage.models.p4m.CopyPool`, ``pool``) before the dense layer (``dense``) and the
    score. The copies of a transformed image are the copies of the image in another order, so the
    score is invariant under p4m; the copies are made of the raw pixels, before ``transform`` and
    ``normalization``, so it is invariant also with a per-pixel standardization
    (``train.standardize``). The parameters are the convnet's (the weights are shared), the
    computation of its convolutions 8 times. ``augment`` acts before the copies (``p4m`` is then
    redundant, ``rotations`` adds the angles between multiples of 90 degrees).

    Raises
    ------
    ValueError
        For an image that is not square (the rotations by 90 degrees would not map it onto itself).
    """
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"cyclic: the p4m symmetries map a square image onto itself; got {input_shape[:2]}")
    inputs = keras.Input(shape=input_shape, name="images")
    x = P4MCopies(name="p4m_copies")(_augment(inputs, augment))
    x = _convnet_features(_stem(x, normalization, "none", transform), filters, first_kernel, dropout)
    x = CopyPool(pool, name="copy_pool")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return _head(inputs, x, "cyclic", variables)


#: The model zoo: name -> builder(input_shape, normalization=..., augment=..., **hyper-parameters).
ZOO: dict[str, Callable[..., keras.Model]] = {
    "convnet": convnet,
    "maxout": maxout,
    "resnet": resnet,
    "mobilenet": mobilenet,
    "bhimji": bhimji,
    "gcnn": gcnn,
    "cyclic": cyclic,
}


def unet(input_shape: tuple[int, int, int], filters: int = 16, depth: int = 2,
         normalization: keras.layers.Layer | None = None, transform: str = "log1p") -> keras.Model:
    """A U-Net (Ronneberger et al., arXiv:1505.04597) for pileup removal, pixel by pixel.

    An encoder of ``depth`` levels [two 3x3 convolutions -> 2x2 max-pooling], doubling the
    filters at each, a bottleneck, and a decoder that upsamples (2x2 transposed convolution) and
    joins the encoder's map of the same size (the skip connections) before two convolutions.
    Images whose sides are not multiples of ``2**depth`` (25 x 25) are zero-padded at the bottom
    and right and cropped back. The output ``fraction`` (sigmoid, one channel, float32) is, per
    pixel, the fraction of the pixel's neutral energy that comes from the leading vertex: pixel-wise
    classification read as a fraction (:func:`unet_targets`), so the corrected neutral image is
    ``fraction * neutral``.

    Parameters
    ----------
    input_shape
        ``(n_eta, n_phi, n_channels)``: the input channels, e.g. ``charged_lv``, ``charged_pu``,
        ``neutral`` (PUMML's, arXiv:1707.08600).
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, normalization, False, transform)
    step = 2**depth
    pad = (-input_shape[0] % step, -input_shape[1] % step)
    if any(pad):
        x = keras.layers.ZeroPadding2D(((0, pad[0]), (0, pad[1])), name="pad")(x)

    def block(x: Any, n: int, name: str) -> Any:
        for k in (0, 1):
            x = keras.layers.Conv2D(n, 3, padding="same", activation="relu", name=f"{name}_conv{k}")(x)
        return x

    skips = []
    for level in range(depth):
        x = block(x, filters * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = block(x, filters * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        x = keras.layers.Conv2DTranspose(filters * 2**level, 2, strides=2, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = block(x, filters * 2**level, f"dec{level}")
    if any(pad):
        x = keras.layers.Cropping2D(((0, pad[0]), (0, pad[1])), name="crop")(x)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="fraction")(x)
    return keras.Model(inputs, out, name="unet")


def unet_targets(neutral: np.ndarray, neutral_lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The U-Net's per-pixel target and loss weight from the ``neutral`` and ``neutral_lv`` images.

    Parameters
    ----------
    neutral, neutral_lv
        ``(n, n_eta, n_phi)`` neutral intensity of every vertex and of the leading vertex (GeV).

    Returns
    -------
    fraction : np.ndarray
        ``(n, n_eta, n_phi, 1)`` float32 ``neutral_lv / neutral`` (0 in empty pixels).
    weight : np.ndarray
        ``(n, n_eta, n_phi)`` float32 the pixel's neutral intensity over the mean of the
        non-empty pixels of its image: an energy-weighted per-pixel loss (Keras ``sample_weight``),
        where an empty pixel weighs nothing. The weights of an image average 1 over its non-empty
        pixels and do not depend on the other images of a batch.
    """
    neutral = np.asarray(neutral, np.float64)
    filled = neutral > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(filled, np.asarray(neutral_lv, np.float64) / neutral, 0.0)
    axes = tuple(range(1, neutral.ndim))
    count = filled.sum(axis=axes, keepdims=True)
    mean = np.where(filled, neutral, 0.0).sum(axis=axes, keepdims=True) / np.maximum(count, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(filled, neutral / mean, 0.0)
    return np.clip(fraction, 0.0, 1.0)[..., None].astype(np.float32), weight.astype(np.float32)


#: Models whose output is an image (pixel by pixel), not a class score: name -> builder.
PIXEL_ZOO: dict[str, Callable[..., keras.Model]] = {"unet": unet}


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


def channel_standardizer(train_images: np.ndarray) -> keras.layers.Normalization:
    """Per-channel standardization (one mean and variance per channel, over every pixel) adapted on
    the training images only: the standardization of the pixel models (:data:`PIXEL_ZOO`), whose
    convolutions treat every pixel alike. A per-pixel one (:func:`standardizer`) would divide a
    pixel that no training image fills by the variance's floor (1e-7), and a test image with energy
    there would saturate the output.

    Parameters
    ----------
    train_images
        ``(n, n_eta, n_phi, n_channels)`` the network's input channels (transformed as in the
        model), a sample of the training split.
    """
    layer = keras.layers.Normalization(axis=-1, name="standardize")
    layer.adapt(np.asarray(train_images, np.float32))
    return layer


def variable_standardizer(train_variables: np.ndarray) -> keras.layers.Normalization:
    """Standardization of the example variables, adapted on the training split only.

    Parameters
    ----------
    train_variables
        ``(n, n_variables)`` the variables of the training examples (their units: GeV for masses
        and momenta).
    """
    layer = keras.layers.Normalization(axis=-1, name="standardize_variables")
    layer.adapt(np.asarray(train_variables, np.float32))
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
