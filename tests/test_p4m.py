"""p4m layers: for each of the 8 symmetries of the square grid, transforming the input transforms
every equivariant layer's output by the group action; the gcnn's score does not change."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from jetimage.models.p4m import (
    ELEMENTS,
    GroupBatchNorm,
    GroupConv,
    GroupPool,
    LiftingConv,
    compose,
    inverse,
    transform_planes,
)
from jetimage.models.zoo import ZOO, gcnn


def act(f: np.ndarray, h: tuple[int, int]) -> np.ndarray:
    """The group action on a p4m map ``(batch, H, W, C, 8)``: ``(L_h f)[g] = T_h f[h^-1 g]``."""
    planes = np.asarray(transform_planes(f, h))
    order = [ELEMENTS.index(compose(inverse(h), g)) for g in ELEMENTS]
    return planes[..., order]


def images(n: int = 2, size: int = 9, channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, channels)).astype(np.float32)


def test_the_group_law():
    e = (0, 0)
    for a, b, c in itertools.product(ELEMENTS, repeat=3):
        assert compose(compose(a, b), c) == compose(a, compose(b, c))
    for g in ELEMENTS:
        assert compose(g, inverse(g)) == e and compose(e, g) == g
    # and it is the law of the plane transformations
    x = images(1, 5, 1)
    for a, b in itertools.product(ELEMENTS, repeat=2):
        np.testing.assert_array_equal(np.asarray(transform_planes(transform_planes(x, b), a)),
                                      np.asarray(transform_planes(x, compose(a, b))))


@pytest.mark.parametrize("h", ELEMENTS)
def test_lifting_and_group_convolution_are_equivariant(h):
    keras.utils.set_random_seed(1)
    lift, conv = LiftingConv(4, 5), GroupConv(3, 3)
    x = images()
    f = lift(x)
    f_h = lift(np.asarray(transform_planes(x, h)))
    np.testing.assert_allclose(np.asarray(f_h), act(np.asarray(f), h), atol=1e-5)
    g = conv(f)
    np.testing.assert_allclose(np.asarray(conv(act(np.asarray(f), h))), act(np.asarray(g), h), atol=1e-5)
    # batch normalization (training mode: batch statistics) and the group pooling
    norm = GroupBatchNorm()
    np.testing.assert_allclose(np.asarray(norm(act(np.asarray(g), h), training=True)),
                               act(np.asarray(norm(g, training=True)), h), atol=1e-5)
    pooled = np.asarray(GroupPool()(g))
    np.testing.assert_allclose(np.asarray(GroupPool()(act(np.asarray(g), h))),
                               np.asarray(transform_planes(pooled, h)), atol=1e-6)


def test_parameter_counts_follow_the_layer_formulas():
    lift, conv = LiftingConv(4, 5), GroupConv(3, 3)
    f = lift(images(channels=2))
    conv(f)
    assert lift.count_params() == 5 * 5 * 2 * 4 + 4
    assert conv.count_params() == 3 * 3 * 4 * 8 * 3 + 3
    assert gcnn((25, 25, 1)).count_params() <= ZOO["convnet"]((25, 25, 1)).count_params()


def test_the_gcnn_score_is_invariant_and_saves_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(2)
    model = gcnn((11, 11, 2), filters=4, transform="log1p")
    x = np.abs(images(3, 11, 2))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, np.array([0.0, 1.0, 1.0]), epochs=1, verbose=0)  # batch statistics move
    score = model.predict(x, verbose=0)
    for h in ELEMENTS[1:]:
        np.testing.assert_allclose(model.predict(np.asarray(transform_planes(x, h)), verbose=0), score,
                                   rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "gcnn.keras")
    again = keras.saving.load_model(tmp_path / "gcnn.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), score, rtol=1e-6)


def test_the_gcnn_refuses_a_rectangular_image_and_an_even_kernel():
    with pytest.raises(ValueError, match="square"):
        gcnn((10, 12, 1))
    with pytest.raises(ValueError, match="odd"):
        LiftingConv(4, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gcnn", "cyclic"])
def test_the_invariant_models_export_to_onnx_and_onnx_runtime_equals_keras(name, tmp_path):
    import onnxruntime as ort

    from jetimage.stages.export import exportable

    keras.utils.set_random_seed(3)
    model = ZOO[name]((11, 11, 1), filters=4, augment="p4m")  # the augmentation is left out at inference
    x = np.abs(images(4, 11, 1))
    copy = exportable(model)
    copy.predict(x[:1], verbose=0)  # builds the graph
    copy.export(str(tmp_path / f"{name}.onnx"), format="onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-5)


def test_ring_pooling_is_invariant_and_keeps_the_distance_from_the_centre():
    from jetimage.models.p4m import RingPool

    x = images(3, 9, 2)
    pool = RingPool()
    out = np.asarray(pool(x))
    assert out.shape == (3, 5 * 2)
    for h in ELEMENTS:
        np.testing.assert_allclose(np.asarray(pool(np.asarray(transform_planes(x, h)))), out, atol=1e-6)
    # one bright pixel: at the centre it lands in ring 0, two pixels out in ring 2
    spot = np.zeros((2, 9, 9, 1), np.float32)
    spot[0, 4, 4, 0] = spot[1, 4, 6, 0] = 1.0
    rings = np.asarray(pool(spot))
    # ring 2: the 4 pixels at distance 2 and the 8 at sqrt(5) (rounds to 2)
    assert rings[0].argmax() == 0 and rings[1].argmax() == 2 and rings[1, 2] == pytest.approx(1 / 12)
