"""The image task: the U-Net of pileup removal trained by the one trainer (train.task: images), its
configuration, the stream's per-pixel targets and weights, resume, and the corrected images and
jet masses of a trained model."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from jetimage.config import PIXEL_MODELS, ConfigError, validate
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter

from .conftest import tiny_raw_config

#: The channels of the pileup study's images (config/pileup.yaml).
CHANNELS = ["charged_lv", "charged_pu", "neutral", "neutral_lv"]


def _raw(**train) -> dict:
    """The tiny jet study with the pileup study's channels, training a small U-Net."""
    raw = tiny_raw_config()
    raw["images"]["channels"] = list(CHANNELS)
    raw["train"].update({"task": "images", "model": "unet", "transform": "log1p", "augment": "none",
                         "variants": [], "variables": [], "epochs": 6, "batch_size": 32, "patience": 3,
                         "tensorboard": False, **train})
    return raw


def _config(**train):
    return validate(_raw(**train))


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("edit", "line"), [
    (lambda r: r["train"].update(model="convnet"),
     "train.model: convnet gives a label per example; train.task images needs a model whose output is an "
     "image: unet"),
    (lambda r: r["train"].update(task="labels"),
     "train.model: unet gives an image per example, not a label: it trains with train.task: images"),
    (lambda r: r["images"].update(channels=["charged_lv", "neutral", "neutral_lv"]),
     "train.inputs: channel 'charged_pu' is not among images.channels"),
    (lambda r: r["images"].update(channels=["charged_lv", "charged_pu", "neutral"]),
     "train.target: channel 'neutral_lv' is not among images.channels"),
    (lambda r: (r["images"].update(channels=["charged_lv", "charged_pu", "total", "neutral_lv"]),
                r["train"].update(inputs=["charged_lv", "charged_pu", "total"])),
     "images.channels: train.task images needs the channel 'neutral'"),
    (lambda r: r["train"].update(inputs=["charged_lv", "neutral", "neutral_lv"]),
     "train.inputs: channel 'neutral_lv' is the target (train.target)"),
    (lambda r: r["train"].update(variables=["jet_m"]), "train.variables: a pixel model"),
    (lambda r: r["train"].update(variants=[{"name": "vars", "variables": ["jet_m"]}]),
     "train.variants: variants (decorrelated or with variables) are taggers"),
    (lambda r: r["train"].update(augment="p4m"), "train.augment: p4m transforms the input images"),
    (lambda r: r["train"].update(task="pixels"), "train.task: 'pixels' is not one of"),
    (lambda r: r["train"].update(target="charged_lv"), "train.target: 'charged_lv' is not one of"),
    (lambda r: r["train"].update(inputs=[]), "train.inputs: [] should be non-empty"),
])
def test_a_bad_image_task_is_one_line_naming_the_key(edit, line):
    raw = _raw()
    edit(raw)
    with pytest.raises(ConfigError) as err:
        validate(raw, source="c.yaml")
    problems = str(err.value).splitlines()[1:]
    assert len(problems) == 1 and problems[0].strip().startswith(f"c.yaml: {line}"), problems


def test_the_image_task_defaults_and_the_pixel_models():
    from jetimage.models.zoo import PIXEL_ZOO, ZOO

    cfg = _config()
    assert cfg["train"]["inputs"] == ["charged_lv", "charged_pu", "neutral"]
    assert cfg["train"]["target"] == "neutral_lv"
    assert validate(tiny_raw_config())["train"]["task"] == "labels"
    # the configuration names the pixel models without importing Keras: they are the zoo's
    assert set(PIXEL_MODELS) == set(PIXEL_ZOO) and not set(PIXEL_MODELS) & set(ZOO)
    # a tagger's study without the pileup channels is not checked for them
    raw = tiny_raw_config()
    assert validate(raw)["images"]["channels"] == ["total"]


def test_the_definition_records_the_task_and_the_input_channels():
    from jetimage.training.definition import input_definition, model_task

    pixels = input_definition(_config(inputs=["neutral", "charged_lv"]))
    assert (pixels["task"], pixels["inputs"], pixels["target"]) == ("images", ["neutral", "charged_lv"],
                                                                    "neutral_lv")
    assert pixels["input_shape"] == [25, 25, 2] and pixels["images"]["channels"] == CHANNELS
    tagger = input_definition(validate(tiny_raw_config()))
    assert (tagger["task"], tagger["inputs"], tagger["target"]) == ("labels", ["total"], None)
    assert model_task({"kind": "jets"}) == "labels"  # a definition older than the image task


def test_the_fingerprint_changes_with_the_task_its_inputs_and_its_target(tmp_path):
    from jetimage.stages.train import training_targets
    from jetimage.training.resume import _first_difference, training_fingerprint

    cfg = _config()
    images = _learnable_images(tmp_path / "toy.h5", cfg, n=64)

    def fingerprint(c):
        _, targets, weights = training_targets(c, [images], None)
        return training_fingerprint(c, [images], targets, weights, None, None)

    before = fingerprint(cfg)
    tagger = validate(_raw(model="convnet", task="labels"))
    assert _first_difference(before, fingerprint(tagger)).startswith('train.model: "unet" then, "convnet"')
    fewer = _config(inputs=["charged_lv", "neutral"])
    assert _first_difference(before, fingerprint(fewer)).startswith("train.inputs: ")
    other = copy.deepcopy(cfg)
    other["train"]["target"] = "charged_lv"  # no other target is valid yet: the key is fingerprinted
    assert _first_difference(before, fingerprint(other)).startswith(
        'train.target: "neutral_lv" then, "charged_lv" now')
    task = copy.deepcopy(cfg)
    task["train"]["task"] = "labels"
    assert _first_difference(before, fingerprint(task)).startswith('train.task: "images" then, "labels" now')


# -- the stream ---------------------------------------------------------------------------------------


def _hand_made(path, channels):
    """Four 2 x 2 images of known neutral and neutral_lv pixels; the other channels tell the rows."""
    neutral = np.array([[[0, 2], [4, 6]], [[1, 0], [0, 3]], [[5, 5], [0, 0]], [[0, 0], [0, 0]]], np.float32)
    lv = np.array([[[0, 1], [4, 0]], [[1, 0], [0, 0]], [[5, 0], [0, 0]], [[0, 0], [0, 0]]], np.float32)
    images = np.zeros((4, 2, 2, len(channels)), np.float32)
    for name, values in (("neutral", neutral), ("neutral_lv", lv)):
        images[..., channels.index(name)] = values
    for c, name in enumerate(channels):
        if name not in ("neutral", "neutral_lv"):
            images[..., c] = 10 * np.arange(4)[:, None, None] + c  # row and channel
    with ImageWriter(path, (2, 2, len(channels)), {"sample": "hand", "images": {"channels": channels}}) as w:
        w.append(images, {"labels": np.array([1, 0, 1, 0], np.int8), "weights": np.ones(4)})
    return path, images


def test_an_image_task_batch_holds_the_input_channels_the_fraction_and_the_pixel_weights(tmp_path):
    from jetimage.training.data import ImageStream, standardization_sample
    from jetimage.training.pixels import pixel_channels

    channels = ["neutral_lv", "neutral", "charged_pu", "charged_lv", "total"]  # not the default order
    path, images = _hand_made(tmp_path / "hand.h5", channels)
    labels = np.array([1, 0, 1, 0], np.float32)
    weights = np.array([0.5, 1.0, 1.5, 1.0])  # the examples' (class-balanced) weights
    pixels = pixel_channels([path], ["charged_lv", "charged_pu", "neutral"], "neutral_lv")
    stream = ImageStream.create([path], np.arange(4), labels, weights, batch_size=4, shuffle=False,
                                pixels=pixels)
    x, fraction, w = stream[0]
    np.testing.assert_array_equal(x, images[..., [3, 2, 1]])
    assert fraction.shape == (4, 2, 2, 1) and w.shape == (4, 2, 2)
    assert fraction.dtype == w.dtype == np.float32
    np.testing.assert_allclose(fraction[..., 0], [[[0, 0.5], [1, 0]], [[1, 0], [0, 0]], [[1, 0], [0, 0]],
                                                  [[0, 0], [0, 0]]])
    # the neutral energy over the mean of the image's non-empty pixels (4, 2, 5), times the example's
    # weight; an image without neutral energy weighs nothing
    energy = np.array([[[0, 0.5], [1, 1.5]], [[0.5, 0], [0, 1.5]], [[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    np.testing.assert_allclose(w, energy * weights[:, None, None], rtol=1e-6)
    # the same pixels whatever the batch: the weights of an image do not depend on its neighbours
    single = ImageStream.create([path], np.arange(4), labels, weights, batch_size=1, shuffle=False,
                                pixels=pixels)
    np.testing.assert_allclose(np.concatenate([single[i][2] for i in range(4)]), w)
    assert standardization_sample(stream, 4, seed=0).shape == (4, 2, 2, 3)
    # the labels path is unchanged: every channel, the labels and the weights
    tagger = ImageStream.create([path], np.arange(4), labels, weights, batch_size=4, shuffle=False)
    x, y, w = tagger[0]
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(w, weights.astype(np.float32))
    for s in (stream, single, tagger):
        s.close()


def test_image_files_without_a_channel_of_the_task_are_named(tmp_path):
    from jetimage.training.pixels import pixel_channels

    path, _ = _hand_made(tmp_path / "hand.h5", ["charged_lv", "neutral", "neutral_lv"])
    with pytest.raises(InputError, match=re.escape(f"{path}: its images have the channels ['charged_lv', "
                                                   "'neutral', 'neutral_lv'], without 'charged_pu' "
                                                   "(train.inputs)")):
        pixel_channels([path], ["charged_lv", "charged_pu", "neutral"], "neutral_lv")
    bare = tmp_path / "bare.h5"
    with ImageWriter(bare, (2, 2, 1), {"sample": "bare"}) as w:
        w.append(np.zeros((2, 2, 2, 1)), {"labels": np.array([0, 1], np.int8), "weights": np.ones(2)})
    with pytest.raises(InputError, match=re.escape(f"{bare}: the file does not record its image channels")):
        pixel_channels([bare], ["neutral"], "neutral_lv")


# -- corrected images and masses, without a network ------------------------------------------------------


class _FixedFraction:
    """Stands for a pixel model: the same fraction image for every input."""

    def __init__(self, fraction):
        self.fraction = np.asarray(fraction, np.float32)
        self.seen: list[np.ndarray] = []

    def predict_on_batch(self, x):
        self.seen.append(x)
        return np.broadcast_to(self.fraction[..., None], (len(x), *self.fraction.shape, 1))


def test_the_corrected_mass_of_a_hand_made_image():
    from jetimage.stages.correct import corrected_images, corrected_mass

    cfg = _config()
    images = np.zeros((1, 25, 25, 4), np.float32)
    images[0, 12, 9, 0] = 100.0  # charged_lv at (eta, phi) = (0, -0.3)
    images[0, 12, 15, 2] = images[0, 12, 15, 3] = 50.0  # leading-vertex neutral at (0, 0.3)
    images[0, 3, 3, 2] = 20.0  # pileup neutral at (-0.9, -0.9)
    images[0, 20, 20, 1] = 30.0  # a pileup track
    fraction = np.zeros((25, 25))
    fraction[12, 15] = 1.0
    model = _FixedFraction(fraction)
    definition = {"inputs": ["charged_lv", "charged_pu", "neutral"]}
    neutral, total = corrected_images(model, definition, images, CHANNELS)
    assert model.seen[0].shape == (1, 25, 25, 3)
    assert neutral.sum() == 50.0 and total.sum() == 150.0
    # two massless particles: m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi))
    expected = np.sqrt(2 * 100.0 * 50.0 * (np.cosh(0.0) - np.cos(0.6)))
    assert corrected_mass(total, cfg["images"])[0] == pytest.approx(expected, rel=1e-6)
    # the pileup neutral pixel left in moves the mass up
    assert corrected_mass(images[..., 0] + images[..., 2], cfg["images"])[0] > 1.5 * expected
    with pytest.raises(InputError, match="without 'charged_lv'"):
        corrected_images(model, definition, images[..., 1:], CHANNELS[1:])


def test_a_model_serves_its_own_task_only(tmp_path):
    import zipfile

    from jetimage.stages.correct import pixel_model
    from jetimage.stages.evaluate import check_inputs
    from jetimage.training.definition import check_study, input_definition, save_definition

    def model(name, cfg):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", "{}")
        save_definition(path, input_definition(cfg))
        return path

    tagger = model("tagger.keras", validate(tiny_raw_config()))
    with pytest.raises(InputError, match=re.escape(f"{tagger}: the model is a tagger (train.task: labels)")):
        pixel_model(tagger)
    unet = model("unet.keras", _config())
    refusal = re.escape(f"{unet}: a pixel model (train.task: images) gives a corrected image per example, "
                        "not a score: apply it with jetimage.stages.correct")
    with pytest.raises(InputError, match=refusal):  # apply and export
        check_study(_config(), unet)
    with pytest.raises(InputError, match=refusal):  # evaluate
        check_inputs(unet, {})


# -- training -------------------------------------------------------------------------------------------


def _learnable_images(path, cfg, n=384, seed=0):
    """``n`` 25 x 25 images whose leading-vertex fraction is learnable: leading-vertex neutral energy
    where the leading vertex's tracks are (a core of 12 particles), pileup neutral energy where the
    pileup's tracks are (40 particles all over the image); a pixel may hold both. Labels alternate."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 25, 25, 4), np.float32)
    for i in range(n):
        eta, phi = (np.clip(np.round(rng.normal(12, 3, 12)).astype(int), 0, 24) for _ in range(2))
        np.add.at(images[i, ..., 0], (eta, phi), rng.exponential(5.0, 12))
        np.add.at(images[i, ..., 3], (eta, phi), rng.exponential(3.0, 12))
        eta, phi = rng.integers(0, 25, 40), rng.integers(0, 25, 40)
        np.add.at(images[i, ..., 1], (eta, phi), rng.exponential(1.0, 40))
        np.add.at(images[i, ..., 2], (eta, phi), rng.exponential(1.0, 40))
    images[..., 2] += images[..., 3]  # neutral: leading vertex and pileup
    attrs = {"sample": "toy", "kind": "jets", "images": dict(cfg["images"]), "jets": dict(cfg["jets"])}
    with ImageWriter(path, (25, 25, 4), attrs) as w:
        w.append(images, {"labels": (np.arange(n) % 2).astype(np.int8), "weights": np.ones(n)})
    return path


def _run(cfg, images, out):
    from jetimage.stages.train import train

    return train(cfg, [images], out / "model.keras", out / "history.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The learnable images, the undisturbed U-Net training on them, its model."""
    where = tmp_path_factory.mktemp("unet")
    images = _learnable_images(where / "toy.h5", _config())
    return images, _run(_config(), images, where / "full"), where / "full" / "model.keras"


def _lv_and_pu_fractions(neutral_corrected, images):
    """The energy-weighted mean predicted fraction on pixels of leading-vertex neutral energy only,
    and on pixels of pileup neutral energy only."""
    neutral, lv = images[..., 2], images[..., 3]
    pu = neutral - lv
    lv_only, pu_only = (lv > 0) & (pu <= 1e-6), (pu > 1e-6) & (lv == 0)
    return (float(neutral_corrected[lv_only].sum() / neutral[lv_only].sum()),
            float(neutral_corrected[pu_only].sum() / neutral[pu_only].sum()))


@pytest.mark.slow
def test_the_unet_learns_the_leading_vertex_fraction(trained, tmp_path):
    import h5py

    from jetimage.stages.correct import corrected_images, iterate_corrected, pixel_model
    from jetimage.training.definition import read_definition

    _, history, model_path = trained
    assert set(history) == {"loss", "fraction_mae", "val_loss", "val_fraction_mae"}
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0], history["val_loss"]
    assert history["val_fraction_mae"][-1] < 0.5 * history["val_fraction_mae"][0]
    definition = read_definition(model_path)
    assert (definition["task"], definition["target"], definition["input_shape"]) == ("images", "neutral_lv",
                                                                                     [25, 25, 3])
    # on images it never saw: leading-vertex pixels kept, pileup pixels removed
    fresh = _learnable_images(tmp_path / "fresh.h5", _config(), n=64, seed=1)
    with h5py.File(fresh) as f:
        images = f["images"][...]
    model, definition = pixel_model(model_path)
    neutral, total = corrected_images(model, definition, images, CHANNELS, batch_size=24)
    lv, pu = _lv_and_pu_fractions(neutral, images)
    print(f"losses {history['val_loss']}, fraction on LV pixels {lv:.3f}, on PU pixels {pu:.3f}")
    assert lv > 0.7 and pu < 0.3
    # the corrected image: the leading vertex's tracks plus the predicted fraction of the neutral energy
    fraction = model.predict(images[..., :3], verbose=0)[..., 0]
    assert neutral.shape == total.shape == (64, 25, 25) and neutral.dtype == np.float32
    np.testing.assert_allclose(neutral, fraction * images[..., 2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, images[..., 0] + fraction * images[..., 2], rtol=1e-5, atol=1e-5)
    # streamed from the file, a block of rows at a time: the same
    rows = np.arange(3, 64, 2)
    parts = list(iterate_corrected(model_path, [fresh], rows, block=10))
    assert len(parts) > 1
    got = np.concatenate([p[0] for p in parts])
    np.testing.assert_array_equal(got, rows)
    np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), total[rows], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_resumed_unet_training_ends_with_the_undisturbed_model(trained, tmp_path, monkeypatch, caplog):
    from .test_train import _Killed, _killed_after, _weights

    images, full, full_model = trained
    with monkeypatch.context() as m:
        _killed_after(m, 2)
        with pytest.raises(_Killed):
            _run(_config(), images, tmp_path)
    assert (tmp_path / "model.backup" / "state.npz").exists() and not (tmp_path / "model.keras").exists()
    with caplog.at_level("INFO", "jetimage"):
        resumed = _run(_config(), images, tmp_path)
    assert "after epoch 2" in caplog.text and "epoch 1/6" not in caplog.text
    assert resumed == full
    for a, b in zip(_weights(full_model), _weights(tmp_path / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
