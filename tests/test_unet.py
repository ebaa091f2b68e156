"""The U-Net of pileup removal: an image out of the input's shape, targets, and one batch learnt."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from jetimage.models.zoo import PIXEL_ZOO, unet, unet_targets


def batch(n: int = 8, shape: tuple[int, int] = (25, 25), seed: int = 0):
    """Sparse images of three channels (charged LV, charged PU, neutral) and a neutral LV share."""
    rng = np.random.default_rng(seed)
    x = (rng.exponential(1.0, (n, *shape, 3)) * (rng.uniform(size=(n, *shape, 3)) < 0.3)).astype(np.float32)
    return x, x[..., 2] * rng.uniform(size=(n, *shape))


@pytest.mark.parametrize("shape", [(25, 25, 3), (32, 32, 3), (7, 9, 2)])
def test_the_output_has_the_input_image_shape_and_saves_in_safe_mode(shape, tmp_path):
    model = PIXEL_ZOO["unet"](shape, filters=4)
    assert model.output_shape == (None, shape[0], shape[1], 1)
    x = np.random.default_rng(1).exponential(1.0, (2, *shape)).astype(np.float32)
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float32 and ((out >= 0) & (out <= 1)).all()
    model.save(tmp_path / "unet.keras")
    again = keras.saving.load_model(tmp_path / "unet.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), out, rtol=1e-6, atol=1e-7)


def test_targets_are_the_neutral_lv_fraction_weighted_by_the_neutral_energy():
    neutral = np.array([[[0.0, 2.0], [4.0, 6.0]]])
    lv = np.array([[[0.0, 1.0], [4.0, 0.0]]])
    fraction, weight = unet_targets(neutral, lv)
    assert fraction.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(fraction[0, ..., 0], [[0.0, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(weight[0], [[0.0, 0.5], [1.0, 1.5]])  # mean of the filled pixels: 4


@pytest.mark.slow
def test_it_learns_one_batch():
    """Overfitting one batch: the energy-weighted error of the fraction falls from ~0.25 to a few
    percent, the loss to the entropy of the targets (its floor with soft targets)."""
    x, lv = batch()
    fraction, weight = unet_targets(x[..., 2], lv)
    keras.utils.set_random_seed(1)
    model = unet(x.shape[1:], filters=8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")

    def error() -> float:
        p = model.predict(x, verbose=0)
        return float((np.abs(p - fraction)[..., 0] * weight).sum() / weight.sum())

    before = error()
    model.fit(x, fraction, sample_weight=weight, batch_size=len(x), epochs=300, verbose=0)
    f = np.clip(fraction[..., 0], 1e-7, 1 - 1e-7)
    floor = float((-(f * np.log(f) + (1 - f) * np.log(1 - f)) * weight).mean())
    loss = float(model.evaluate(x, fraction, sample_weight=weight, verbose=0))
    assert before > 0.1 and error() < 0.03
    assert loss - floor < 0.01
