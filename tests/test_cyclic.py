"""The p4m augmentation (a random one of the 8 symmetries of the square grid per training image) and
the cyclic model (one CNN on the 8 transformed copies, pooled): exact transforms, an identity at
inference, seeded draws, an invariant score, safe-mode loading and the convnet's parameter count."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from jetimage.config import ConfigError, validate
from jetimage.models.p4m import ELEMENTS, CopyPool, P4MCopies, RandomP4M, transform_planes
from jetimage.models.zoo import convnet, cyclic, standardizer
from jetimage.training.loading import load_model

from .conftest import tiny_raw_config


def images(n: int = 4, size: int = 11, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Positive pixels without any symmetry, so that the 8 transforms of an image all differ."""
    return np.random.default_rng(seed).exponential(1.0, (n, size, size, channels)).astype(np.float32)


def which_element(out: np.ndarray, x: np.ndarray) -> list[int]:
    """For each image, the index of the element whose transform ``out`` is exactly (-1 if none)."""
    found = []
    for i in range(len(x)):
        hits = [k for k, g in enumerate(ELEMENTS)
                if np.array_equal(out[i], np.asarray(transform_planes(x[i:i + 1], g))[0])]
        found.append(hits[0] if len(hits) == 1 else -1)
    return found


def test_the_p4m_augmentation_gives_one_exact_transform_of_each_image_while_training():
    x = images(32, 9, 2)
    layer = RandomP4M(seed=4)
    out = np.asarray(layer(x, training=True))
    drawn = which_element(out, x)
    assert -1 not in drawn, "an output that is not exactly one of the 8 transforms of its image"
    assert len(set(drawn)) >= 5, f"32 images drew only the elements {sorted(set(drawn))}"
    # the next batch draws again
    assert which_element(np.asarray(layer(x, training=True)), x) != drawn
    # identity at inference, and by default
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_the_p4m_augmentation_is_reproducible_with_its_seed():
    x = images(16, 9)
    a, b, c = RandomP4M(seed=7), RandomP4M(seed=7), RandomP4M(seed=8)
    first = [np.asarray(a(x, training=True)) for _ in range(3)]
    again = [np.asarray(b(x, training=True)) for _ in range(3)]
    for one, two in zip(first, again, strict=True):
        np.testing.assert_array_equal(one, two)
    assert not all(np.array_equal(one, np.asarray(c(x, training=True))) for one in first)
    # from Keras' global seed when the layer has none
    keras.utils.set_random_seed(5)
    d = np.asarray(RandomP4M()(x, training=True))
    keras.utils.set_random_seed(5)
    np.testing.assert_array_equal(np.asarray(RandomP4M()(x, training=True)), d)


def test_a_convnet_trains_a_step_with_the_p4m_augmentation_and_its_state_moves():
    keras.utils.set_random_seed(6)
    x, y = images(16, 13), (np.arange(16) % 2).astype(np.float32)
    model = convnet((13, 13, 1), filters=8, augment="p4m")
    aug = model.get_layer("augment_p4m")
    assert isinstance(aug, RandomP4M)
    # the draws' state is a variable of the model: the resume backup keeps it
    state = aug.seed_generator.state
    assert any(v is state for v in model.variables)
    before = np.asarray(state.numpy()).copy()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(np.asarray(state.numpy()), before)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_copies_and_their_pooling():
    x = images(3, 7, 2)
    copies = np.asarray(P4MCopies()(x))
    assert copies.shape == (24, 7, 7, 2)
    for b in range(3):
        for k, g in enumerate(ELEMENTS):
            np.testing.assert_array_equal(copies[8 * b + k], np.asarray(transform_planes(x[b:b + 1], g))[0])
    features = copies.reshape(24, -1)
    np.testing.assert_allclose(np.asarray(CopyPool("mean")(features)),
                               features.reshape(3, 8, -1).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(CopyPool("max")(features)),
                                  features.reshape(3, 8, -1).max(axis=1))
    with pytest.raises(ValueError, match="mean or max"):
        CopyPool("sum")


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_the_cyclic_score_is_invariant_under_each_element_and_loads_in_safe_mode(pool, tmp_path):
    keras.utils.set_random_seed(2)
    x = images(6, 11)
    y = np.array([0, 1, 0, 1, 1, 0], np.float32)
    # standardized per pixel: the copies are made before it, so the symmetry holds all the same
    model = cyclic((11, 11, 1), filters=8, pool=pool, transform="log1p",
                   normalization=standardizer(np.log1p(x)))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)  # weights away from their initial values
    score = model.predict(x, verbose=0)
    assert np.ptp(score) > 0  # not a constant, which would be invariant trivially
    for h in ELEMENTS[1:]:
        np.testing.assert_allclose(model.predict(np.asarray(transform_planes(x, h)), verbose=0), score,
                                   rtol=0, atol=1e-5)
    path = tmp_path / "cyclic.keras"
    model.save(path)
    np.testing.assert_allclose(load_model(path).predict(x, verbose=0), score, rtol=1e-6, atol=1e-7)
    if pool == "mean":  # in a fresh process, where only load_model registers the layers
        np.save(tmp_path / "x.npy", x)
        code = ("import sys, numpy as np; from jetimage.training.loading import load_model; "
                "np.save(sys.argv[2], load_model(sys.argv[1]).predict(np.load(sys.argv[3]), verbose=0))")
        args = [str(path), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")]
        subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), score, rtol=1e-6, atol=1e-7)


def test_the_cyclic_model_has_at_most_the_convnets_parameters_and_refuses_a_rectangle():
    shape = (25, 25, 1)
    assert cyclic(shape).count_params() <= convnet(shape).count_params()
    with pytest.raises(ValueError, match="square"):
        cyclic((10, 12, 1))
    with pytest.raises(ValueError, match="square"):
        convnet((10, 12, 1), augment="p4m")
    with pytest.raises(ValueError, match="unknown augmentation"):
        convnet((9, 9, 1), augment="shear")


@pytest.mark.parametrize(("given", "meant"), [(False, "none"), (True, "rotations"), ("none", "none"),
                                              ("rotations", "rotations"), ("p4m", "p4m")])
def test_train_augment_takes_a_name_and_the_older_booleans(given, meant):
    raw = tiny_raw_config()
    raw["train"]["augment"] = given
    assert validate(raw)["train"]["augment"] == meant


def test_train_augment_refuses_an_unknown_name():
    raw = tiny_raw_config()
    raw["train"]["augment"] = "shear"
    with pytest.raises(ConfigError, match=r"train\.augment"):
        validate(raw)
    del raw["train"]["augment"]
    raw["train"]["model"] = "cyclic"
    cfg = validate(raw)
    assert cfg["train"]["augment"] == "none" and cfg["train"]["model"] == "cyclic"
