"""Model zoo (build, one training step, .keras round trip in safe mode) and the streaming dataset."""

from __future__ import annotations

import numpy as np
import pytest

from jetimage.formats.hdf5 import ImageWriter
from jetimage.models import zoo as models
from jetimage.training.data import ImageStream, standardization_sample


@pytest.mark.slow
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


# -- the trainer: resume backups and non-finite losses ------------------------------------------


def _toy_images(path, n=256, seed=0, weights=None):
    """``n`` learnable 25 x 25 images (one centred blob, class 1 with a second blob)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.exponential(0.2, (n, 25, 25, 1)).astype(np.float32)
    images[:, 12, 12, 0] += 50.0
    images[labels == 1, 12, 16, 0] += rng.uniform(10, 30, int(labels.sum()))
    with ImageWriter(path, (25, 25, 1), {"sample": "toy"}) as w:
        w.append(images, {"labels": labels.astype(np.int8),
                          "weights": np.ones(n) if weights is None else weights(labels)})
    return path


def _train_config(**train):
    from jetimage import config as config_mod

    from .conftest import tiny_raw_config

    raw = tiny_raw_config()
    raw["train"].update({"epochs": 3, "batch_size": 32, "patience": 1, "augment": True, **train})
    return config_mod.validate(raw)


class _Killed(Exception):
    """Stands for a kill after an epoch's backup (the progress line is the last callback)."""


def _killed_after(monkeypatch, epochs):
    """Make the trainer stop, as killed, after ``epochs`` epochs (once their backup is written)."""
    from jetimage.stages import train as train_mod

    real = train_mod._ProgressLog

    def progress(total):
        callback = real(total)
        log_epoch = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            log_epoch(epoch, logs)
            if epoch + 1 == epochs:
                raise _Killed

        callback.on_epoch_end = on_epoch_end
        return callback

    monkeypatch.setattr(train_mod, "_ProgressLog", progress)


def _run(cfg, images, out):
    from jetimage.stages.train import train

    return train(cfg, [images], out / "model.keras", out / "history.json")


def _weights(path):
    import keras

    from jetimage.training.loading import register_custom_objects

    register_custom_objects()
    return keras.saving.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    """Toy images and the undisturbed training of :func:`_train_config` on them."""
    where = tmp_path_factory.mktemp("undisturbed")
    images = _toy_images(where / "toy.h5")
    return images, _run(_train_config(), images, where / "full"), where / "full" / "model.keras"


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [1, 3])  # 3: every epoch done, the model not yet saved
def test_a_resumed_training_ends_with_the_undisturbed_model(undisturbed, tmp_path, monkeypatch, caplog,
                                                            killed_after):
    images, full, full_model = undisturbed
    cfg = _train_config()
    with monkeypatch.context() as m:
        _killed_after(m, killed_after)
        with pytest.raises(_Killed):
            _run(cfg, images, tmp_path)
    assert (tmp_path / "model.backup" / "state.npz").exists() and not (tmp_path / "model.keras").exists()
    with caplog.at_level("INFO", "jetimage"):
        resumed = _run(cfg, images, tmp_path)
    assert f"after epoch {killed_after}" in caplog.text and "epoch 1/3" not in caplog.text
    # weights, optimizer, random states and early stopping restored, shuffles by (seed, epoch)
    assert resumed == full
    for a, b in zip(_weights(full_model), _weights(tmp_path / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "model.backup").exists()


@pytest.mark.slow
def test_a_backup_made_from_another_split_is_discarded_with_one_warning(tmp_path, monkeypatch, caplog):
    images = _toy_images(tmp_path / "toy.h5")
    with monkeypatch.context() as m:
        _killed_after(m, 1)
        with pytest.raises(_Killed):
            _run(_train_config(epochs=2), images, tmp_path)
    backup = tmp_path / "model.backup"
    assert backup.exists()
    split = {"train": 0.5, "validation": 0.3, "test": 0.2}
    with caplog.at_level("INFO", "jetimage"):
        history = _run(_train_config(epochs=2, split=split), images, tmp_path)
    # jetimage's own warnings (TensorFlow warns of retracing when a process has built many models)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name.startswith("jetimage")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"the resume backup {backup} was made from other inputs or settings "
                                  "(train.split: "), warnings[0]
    assert warnings[0].endswith(": training starts afresh") and "\n" not in warnings[0]
    assert "epoch 1/2" in caplog.text and "resuming" not in caplog.text
    assert len(history["loss"]) == 2 and (tmp_path / "model.keras").exists() and not backup.exists()


@pytest.mark.parametrize(("change", "named"), [
    ({"train": {"model": "maxout"}}, 'train.model: "convnet" then, "maxout" now'),
    ({"seed": 7}, "seed: "),
    ({"train": {"seed": 3}}, "train.seed: 0 then, 3 now"),
    ({"train": {"learning_rate": 0.01}}, "train.learning_rate: 0.001 then, 0.01 now"),
    ({"images": 1}, "inputs[0] toy.h5: content: "),
    ({"variant": {"name": "disco", "method": "disco", "lambda": 10.0}}, "variant: null then, "),
])
def test_the_training_fingerprint_names_the_first_difference(tmp_path, change, named):
    from jetimage.stages.train import training_targets
    from jetimage.training.resume import _first_difference, training_fingerprint

    def fingerprint(cfg, images, variant=None):
        _, targets, weights = training_targets(cfg, [images], None)
        return training_fingerprint(cfg, [images], targets, weights, variant, None)

    images = _toy_images(tmp_path / "a" / "toy.h5")
    before = fingerprint(_train_config(), images)
    raw_train = change.get("train", {})
    cfg = _train_config(**raw_train)
    if "seed" in change:
        cfg = type(cfg)({**cfg, "seed": change["seed"]})
    if "images" in change:  # rewritten with other events: same name, shapes and attributes
        images = _toy_images(tmp_path / "b" / "toy.h5", seed=change["images"])
    after = fingerprint(cfg, images, change.get("variant"))
    assert _first_difference(before, after).startswith(named)
    # the same inputs and settings, the file rewritten or moved: the backup is kept
    same = fingerprint(_train_config(), _toy_images(tmp_path / "c" / "toy.h5"))
    assert _first_difference(before, same) is None


@pytest.mark.slow
def test_a_class_without_positive_total_weight_stops_training_naming_the_files(tmp_path):
    import subprocess
    import sys

    import yaml

    from .conftest import tiny_raw_config

    # NLO-like background weights of +1 and -1 summing to 0: balancing them would make them infinite
    images = _toy_images(tmp_path / "toy.h5", weights=lambda y: np.where(
        y == 1, 1.0, np.where(np.arange(len(y)) % 4 == 0, 1.0, -1.0)))
    raw = tiny_raw_config()
    raw["train"].update(epochs=2, batch_size=32)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    model = tmp_path / "out" / "model.keras"
    proc = subprocess.run([sys.executable, "-m", "jetimage", "train", "--config",
                           str(tmp_path / "config.yaml"), "--inputs", str(images), "--model", str(model),
                           "--history", str(tmp_path / "out" / "history.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("jetimage train: error: ") and str(images) in last and "background" in last, last
    assert "Traceback" not in proc.stderr
    # no TensorFlow start-up noise on a machine without a GPU (CUDA probing, oneDNN notices)
    assert "cuda" not in proc.stderr.lower() and "onednn" not in proc.stderr.lower(), proc.stderr[-2000:]
    assert not model.exists()


def test_a_non_finite_training_loss_is_one_line_and_writes_no_model(tmp_path, caplog):
    from jetimage.formats.errors import InputError
    from jetimage.stages.train import train

    # a diverging training: a learning rate far beyond the schema's bound, set after validation
    cfg = _train_config(epochs=2, augment=False)
    cfg["train"]["learning_rate"] = 1e30
    images = _toy_images(tmp_path / "toy.h5")
    model = tmp_path / "out" / "model.keras"
    with pytest.raises(InputError) as err:
        train(cfg, [images], model, tmp_path / "out" / "history.json")
    message = str(err.value)
    assert message.startswith(f"{model}: the training loss is not finite at epoch ") and "\n" not in message
    assert message.endswith("): check train.learning_rate and the inputs' weights")
    assert not model.exists() and not (tmp_path / "out" / "history.json").exists()


@pytest.mark.parametrize("content", [None, b"PK\x03\x04" + b"\0" * 40])  # missing; cut short
def test_an_unreadable_backup_is_one_warning_line(tmp_path, caplog, content):
    from jetimage.training.resume import restore_backup

    backup = tmp_path / "model.backup"
    backup.mkdir()
    if content is not None:
        (backup / "state.npz").write_bytes(content)
    with caplog.at_level("WARNING", "jetimage"):
        assert restore_backup(backup, model=None, fingerprint={}) is None
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"the resume backup {backup} cannot be read (")
    assert line.endswith("): training starts afresh") and "\n" not in line


def test_train_fraction_takes_a_seeded_subset_of_the_training_split_only(tmp_path):
    """Learning curves: 30% of the training split, the same rows for every training seed, inside
    the full split; validation untouched."""
    from jetimage.stages.train import _streams
    from jetimage.training.data import dataset_split

    images = _toy_images(tmp_path / "toy.h5", n=400)
    labels, weights = (np.arange(400) % 2).astype(np.float32), np.ones(400)
    full = dataset_split(_train_config(), 400)
    rows = {}
    for seed in (0, 5):
        train, val = _streams(_train_config(train_fraction=0.3, seed=seed), [images], labels, weights)
        rows[seed] = np.sort(np.concatenate(train.blocks))
        assert val.n == len(full["validation"])
        train.close()
        val.close()
    assert len(rows[0]) == round(0.3 * len(full["train"]))
    assert set(rows[0]) <= set(full["train"]) and np.array_equal(rows[0], rows[5])
