"""Model zoo (build, one training step, .keras round trip in safe mode) and the streaming dataset."""

from __future__ import annotations

import numpy as np
import pytest

from jetimage.formats.hdf5 import ImageWriter
from jetimage.models import zoo as models
from jetimage.training.data import ImageStream, standardization_sample


@pytest.mark.parametrize("name", sorted(models.ZOO))
def test_zoo_model_builds_trains_a_step_and_round_trips(name, tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, (16, 25, 25, 1)).astype(np.float32)
    y = (rng.random(16) < 0.5).astype(np.float32)
    model = models.build(name, (25, 25, 1), normalization=models.standardizer(x),
                         augment=name == "convnet")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    p0, p1 = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert p0.shape == (16, 1) and np.all((p0 >= 0) & (p0 <= 1))
    np.testing.assert_allclose(p0, p1, rtol=1e-5, atol=1e-6)


def test_unknown_model_names_the_choices():
    with pytest.raises(KeyError, match="maxout"):
        models.build("lenet", (25, 25, 1))


def test_augmentation_is_active_in_training_only():
    x = np.zeros((4, 9, 9, 1), np.float32)
    x[:, 0, 4, 0] = 1.0  # an off-centre pixel: any flip or rotation moves it
    model = models.convnet((9, 9, 1), augment=True)
    aug = model.get_layer("augment_flip")
    rot = model.get_layer("augment_rotation")
    out_train = np.asarray(rot(aug(x, training=True), training=True))
    out_infer = np.asarray(rot(aug(x, training=False), training=False))
    np.testing.assert_array_equal(out_infer, x)
    assert not np.allclose(out_train, x)
    # mass of the image is (nearly) kept by the transformation
    assert out_train.sum() == pytest.approx(x.sum(), rel=0.5)


def _files(tmp_path, sizes=(700, 500)):
    paths, offset = [], 0
    for i, n in enumerate(sizes):
        path = tmp_path / f"f{i}.h5"
        rows = np.arange(offset, offset + n)
        # the pixel (0, 0) holds the global row number, so every batch can be traced back
        images = np.zeros((n, 5, 5, 1), np.float32)
        images[:, 0, 0, 0] = rows
        with ImageWriter(path, (5, 5, 1), {"sample": f"f{i}"}, chunk_rows=64) as w:
            w.append(images, {"labels": (rows % 2).astype(np.int8), "weights": np.ones(n)})
        paths.append(path)
        offset += n
    return paths, offset


def test_stream_yields_each_row_once_with_its_label_and_reshuffles_per_epoch(tmp_path):
    paths, n = _files(tmp_path)
    rows = np.sort(np.random.default_rng(1).choice(n, 800, replace=False))
    labels = (np.arange(n) % 2).astype(np.float32)
    weights = np.arange(n, dtype=np.float32)
    stream = ImageStream.create(paths, rows, labels, weights, batch_size=50, block_rows=64,
                                blocks_per_group=4, shuffle=True, seed=3)

    def epoch_rows():
        seen = []
        for i in range(len(stream)):
            x, y, w = stream[i]
            r = x[:, 0, 0, 0].astype(int)
            np.testing.assert_array_equal(y, labels[r])
            np.testing.assert_array_equal(w, weights[r])
            seen.append(r)
        return np.concatenate(seen)

    assert len(stream) == 16
    e0 = epoch_rows()
    assert sorted(e0.tolist()) == rows.tolist()
    # batches mix both files (classes): the first batch spans several blocks
    assert len(np.unique(e0[:50] // 64)) > 1
    stream.set_epoch(1)
    e1 = epoch_rows()
    assert sorted(e1.tolist()) == rows.tolist() and not np.array_equal(e0, e1)
    stream.set_epoch(0)
    np.testing.assert_array_equal(epoch_rows(), e0)  # the shuffle of an epoch is reproducible
    sample = standardization_sample(stream, 100, seed=0)
    assert sample.shape == (100, 5, 5, 1) and set(sample[:, 0, 0, 0].astype(int)) <= set(rows)
    stream.close()


def test_unshuffled_stream_keeps_the_row_order(tmp_path):
    paths, n = _files(tmp_path, sizes=(130,))
    stream = ImageStream.create(paths, np.arange(0, n, 3), np.zeros(n), np.ones(n), batch_size=7,
                                block_rows=10, blocks_per_group=2, shuffle=False)
    got = np.concatenate([stream[i][0][:, 0, 0, 0] for i in range(len(stream))]).astype(int)
    np.testing.assert_array_equal(got, np.arange(0, n, 3))
    stream.close()
