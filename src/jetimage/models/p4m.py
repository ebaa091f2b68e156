"""Layers equivariant under p4m, the symmetry group of the square pixel grid (Cohen and Welling,
arXiv:1602.07576): the 4 rotations by 90 degrees and their mirror images, 8 elements that map the
pixels of a square image onto each other exactly. A jet's radiation pattern has no preferred
direction in the (eta, phi) plane; these layers carry that symmetry in the network instead of
preprocessing it away (rotation and flip of arXiv:1511.05190) or learning it from augmented data.

A p4m feature map has shape ``(batch, height, width, channels, 8)``: one plane per channel and
group element. The group element ``g = (m, r)`` acts on a plane as ``rot90^r(flip^m(plane))``
(:func:`transform_planes`) and on a p4m map by that transformation of every plane and a permutation
of the group axis, ``(L_h f)[g] = T_h f[h^-1 g]``. Written with ``keras.ops`` only: they run on
every backend and save and load in safe mode.

Besides the equivariant layers, two other ways to use the same 8 elements: :class:`RandomP4M`
augments the training images with a random element each, and :class:`P4MCopies` with
:class:`CopyPool` runs one network on the 8 transformed copies of an image and pools their features
(the cyclic model of the zoo, after Dieleman et al., arXiv:1503.07077).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["ELEMENTS", "CopyPool", "GroupBatchNorm", "GroupConv", "GroupPool", "LiftingConv", "P4MCopies",
           "RandomP4M", "RingPool", "compose", "inverse", "transform_planes"]

#: The 8 elements of p4m as (mirror, rotation), in the order of the group axis.
ELEMENTS: tuple[tuple[int, int], ...] = tuple((m, r) for m in (0, 1) for r in range(4))


def compose(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The element ``a b`` (apply ``b`` first): ``(m_a xor m_b, r_a + (-1)^m_a r_b mod 4)``, as a
    mirror turns a rotation around."""
    return (a[0] ^ b[0], (a[1] + (-1) ** a[0] * b[1]) % 4)


def inverse(g: tuple[int, int]) -> tuple[int, int]:
    """``g^-1``: a rotation turned back, a mirrored element its own inverse."""
    return g if g[0] else (0, (-g[1]) % 4)


def _index(g: tuple[int, int]) -> int:
    return ELEMENTS.index(g)


def transform_planes(x: Any, g: tuple[int, int], axes: tuple[int, int] = (1, 2)) -> Any:
    """Apply ``g = (m, r)`` to the planes spanned by ``axes`` of ``x``: a flip of the first axis if
    ``m``, then ``r`` counter-clockwise rotations by 90 degrees (square planes)."""
    a, b = axes
    if g[0]:
        x = keras.ops.flip(x, axis=a)
    for _ in range(g[1]):  # rot90: transpose the two axes, then flip the (new) first one
        perm = list(range(len(x.shape)))
        perm[a], perm[b] = perm[b], perm[a]
        x = keras.ops.flip(keras.ops.transpose(x, perm), axis=a)
    return x


class _P4MConv(keras.layers.Layer):
    """What both p4m convolutions share: an odd ``k x k`` kernel, a bias per filter (shared by the
    8 elements, so that it commutes with the group action), and one ``conv`` of the stacked,
    transformed filter bank ``(k, k, inputs, filters * 8)`` giving ``(batch, H, W, filters, 8)``."""

    def __init__(self, filters: int, kernel_size: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size {kernel_size}: an odd size keeps the equivariance exact")
        self.filters, self.kernel_size = filters, kernel_size

    def _weights(self, *kernel_shape: int) -> None:
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, *kernel_shape, self.filters),
                                      initializer="he_normal")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def _convolve(self, x: Any, bank: Any) -> Any:
        k = self.kernel_size
        y = keras.ops.conv(x, keras.ops.reshape(bank, (k, k, x.shape[-1], self.filters * 8)), padding="same")
        y = keras.ops.reshape(y, (-1, y.shape[1], y.shape[2], self.filters, 8))
        return y + keras.ops.reshape(self.bias, (self.filters, 1))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="jetimage")
class LiftingConv(_P4MConv):
    """Lifting convolution, plane -> p4m (equivariant: ``lift(T_h x)[g] = T_h lift(x)[h^-1 g]``).

    One ``k x k`` filter bank, applied in its 8 transformed copies: output ``(batch, H, W,
    filters, 8)`` from ``(batch, H, W, channels)``. ``k`` odd and ``same`` padding keep the
    equivariance exact on square images. Parameters: ``k^2 channels filters + filters``.
    """

    def build(self, input_shape: tuple[int, ...]) -> None:
        self._weights(int(input_shape[-1]))

    def call(self, x: Any) -> Any:
        # filters of element g: T_g psi, stacked as (k, k, C_in, filters, 8)
        return self._convolve(x, keras.ops.stack([transform_planes(self.kernel, g, (0, 1)) for g in ELEMENTS],
                                                 axis=-1))


@keras.saving.register_keras_serializable(package="jetimage")
class GroupConv(_P4MConv):
    """Group convolution, p4m -> p4m (equivariant: ``conv(L_h f) = L_h conv(f)``).

    ``out[g] = sum_k f[k] * T_g psi[g^-1 k]``: each output element sees the filter transformed
    by it, with its input group axis permuted. Parameters: ``k^2 8 channels filters + filters``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, **kwargs)
        # for output g and input k: the index of g^-1 k
        self._perm = np.array([[_index(compose(inverse(g), h)) for h in ELEMENTS] for g in ELEMENTS])

    def build(self, input_shape: tuple[int, ...]) -> None:
        self._weights(int(input_shape[-2]), 8)

    def call(self, f: Any) -> Any:
        banks = [transform_planes(keras.ops.take(self.kernel, self._perm[i], axis=3), g, (0, 1))
                 for i, g in enumerate(ELEMENTS)]  # psi[..., g^-1 k, :] as input k, then T_g
        x = keras.ops.reshape(f, (-1, f.shape[1], f.shape[2], f.shape[3] * 8))
        return self._convolve(x, keras.ops.stack(banks, axis=-1))  # (k, k, C_in, 8 in, filters, 8 out)


@keras.saving.register_keras_serializable(package="jetimage")
class GroupBatchNorm(keras.layers.BatchNormalization):
    """Batch normalization of p4m maps whose statistics and scale are per channel, shared over the
    group axis (and the planes), so that it commutes with the group action."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("axis", -2)
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="jetimage")
class GroupPool(keras.layers.Layer):
    """Pooling over the group axis (max): p4m maps -> plane maps that transform as images,
    ``pool(L_h f) = T_h pool(f)``; a spatial global pooling after it gives invariant features."""

    def call(self, f: Any) -> Any:
        return keras.ops.max(f, axis=-1)


@keras.saving.register_keras_serializable(package="jetimage")
class RingPool(keras.layers.Layer):
    """Mean over rings of equal distance from the image centre: plane maps ``(batch, H, W, C)`` ->
    invariant features ``(batch, rings * C)``.

    Every element of p4m (about the image centre) keeps a pixel's distance from the centre, so a
    ring is a union of orbits and its mean is invariant, like a global average; unlike one, it keeps
    how far from the centre a feature sits, which a jet image needs (the second prong of a W sits
    2 m / pT from the first, at the centre after centring). Ring ``k`` holds the pixels whose
    distance from the centre, in pixels, rounds to ``k`` (the last ring also holds the corners).

    Parameters
    ----------
    rings
        Number of rings (default: up to the middle of an edge, ``H // 2 + 1``).
    """

    def __init__(self, rings: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rings = rings

    def build(self, input_shape: Any) -> None:
        h, w = int(input_shape[1]), int(input_shape[2])
        n = self.rings or h // 2 + 1
        i, j = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
        ring = np.minimum(np.rint(np.hypot(i, j)).astype(int), n - 1).ravel()
        onehot = np.eye(n, dtype=np.float32)[ring]  # (H W, rings)
        self.n_rings = n
        # a fixed weight, not a captured tensor: ONNX converters turn captured tensors into inputs
        self.average = self.add_weight(shape=onehot.shape, trainable=False, name="ring_average",
                                       initializer=keras.initializers.Constant(
                                           onehot / np.maximum(onehot.sum(axis=0), 1.0)))

    def call(self, x: Any) -> Any:
        shape = keras.ops.shape(x)
        flat = keras.ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
        pooled = keras.ops.einsum("bpc,pr->brc", flat, keras.ops.cast(self.average, flat.dtype))
        return keras.ops.reshape(pooled, (shape[0], self.n_rings * shape[3]))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        n = self.rings or int(input_shape[1]) // 2 + 1
        return (input_shape[0], n * int(input_shape[3]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rings": self.rings}


@keras.saving.register_keras_serializable(package="jetimage")
class RandomP4M(keras.layers.Layer):
    """Augmentation by the exact symmetries of the square grid: while training, each image of a
    batch is replaced by ``T_g`` of itself, ``g`` drawn uniformly from the 8 elements of p4m.

    Unlike a continuous rotation (``keras.layers.RandomRotation``) it moves whole pixels only:
    nothing is interpolated and no corner is cut off, so every augmented image is one the
    detector could have recorded under a rotation by a multiple of 90 degrees or a mirror image.
    The identity at inference (``training`` false): an exported model holds no trace of it.

    Parameters
    ----------
    seed
        Seed of the layer's ``keras.random.SeedGenerator`` (its state is a variable of the model,
        so a resumed training continues the same draws); None draws one from Keras' global seed
        (``keras.utils.set_random_seed``).
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training:
            return x
        draw = keras.random.randint((keras.ops.shape(x)[0],), 0, len(ELEMENTS), seed=self.seed_generator)
        draw = keras.ops.reshape(draw, (-1,) + (1,) * (len(x.shape) - 1))
        out = x  # element 0 is the identity; each other element replaces the images that drew it
        for i, g in enumerate(ELEMENTS[1:], start=1):
            out = keras.ops.where(keras.ops.equal(draw, i), transform_planes(x, g), out)
        return out

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="jetimage")
class P4MCopies(keras.layers.Layer):
    """The 8 transformed copies ``T_g x`` of every image, stacked along the batch axis:
    ``(batch, H, W, C)`` -> ``(batch * 8, H, W, C)``, rows ``8 b .. 8 b + 7`` the copies of image
    ``b`` in the order of :data:`ELEMENTS` (square images).

    The copies of ``T_h x`` are those of ``x`` in another order (``T_g T_h = T_gh``): a network
    applied to every copy and pooled over them by :class:`CopyPool` is invariant under p4m
    (Dieleman et al., arXiv:1503.07077, with the 8 elements as the viewpoints).
    """

    def call(self, x: Any) -> Any:
        copies = keras.ops.stack([transform_planes(x, g) for g in ELEMENTS], axis=1)
        return keras.ops.reshape(copies, (-1, *x.shape[1:]))

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[Any, ...]:
        return (None, *input_shape[1:])


@keras.saving.register_keras_serializable(package="jetimage")
class CopyPool(keras.layers.Layer):
    """Pooling over the 8 copies of :class:`P4MCopies`: features ``(batch * 8, ...)`` ->
    ``(batch, ...)``, their mean or maximum over the copies of each image. Both are symmetric
    functions of the copies, so the pooled features are invariant under p4m (Dieleman et al.,
    arXiv:1503.07077).

    Parameters
    ----------
    mode
        ``mean`` or ``max``.
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"CopyPool: mode {mode!r}; use mean or max")
        self.mode = mode

    def call(self, x: Any) -> Any:
        copies = keras.ops.reshape(x, (-1, len(ELEMENTS), *x.shape[1:]))
        return keras.ops.mean(copies, axis=1) if self.mode == "mean" else keras.ops.max(copies, axis=1)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[Any, ...]:
        return (None, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
