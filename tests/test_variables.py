"""Images and physics variables in one tagger: the second input from the HDF5 columns through the
stream, the trainer, the input definition, evaluate, apply (with its refusal of a tree without the
branch) and the ONNX export with two named inputs."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from jetimage.config import ConfigError, validate
from jetimage.evaluation.metrics import auc, roc_curve
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter, read_columns
from jetimage.training.data import ImageStream, dataset_split, example_variables, iterate_rows
from jetimage.training.definition import read_definition

from .conftest import tiny_raw_config


def _toy(path, n=400, seed=0, first_row=0):
    """Images that do not tell the classes apart (noise around one blob) and a jet mass that does."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int8)
    images = rng.exponential(0.2, (n, 25, 25, 1)).astype(np.float32)
    images[:, 12, 12, 0] += 50.0
    mass = np.where(labels == 1, rng.normal(80, 8, n), rng.normal(40, 15, n))
    with ImageWriter(path, (25, 25, 1), {"sample": "toy"}) as w:
        w.append(images, {"labels": labels, "weights": np.ones(n), "jet_m": mass,
                          "tau21": rng.uniform(0, 1, n), "row_id": first_row + np.arange(n, dtype=float)})
    return path


def test_the_stream_gives_each_image_its_own_variables(tmp_path):
    a, b = _toy(tmp_path / "a.h5", 300, 1), _toy(tmp_path / "b.h5", 200, 2, first_row=300)
    variables = example_variables([a, b], ["row_id", "jet_m"])
    assert variables.shape == (500, 2) and variables.dtype == np.float32
    labels = read_columns([a, b], ["labels"])["labels"].astype(np.float32)
    rows = np.arange(0, 500, 3)
    stream = ImageStream.create([a, b], rows, labels, np.ones(500), 32, block_rows=16, blocks_per_group=2,
                                shuffle=True, seed=4, variables=variables)
    seen = []
    for i in range(len(stream)):
        x, y, _ = stream[i]
        assert set(x) == {"images", "variables"} and len(x["images"]) == len(x["variables"]) == len(y)
        got = x["variables"][:, 0].astype(int)  # the row each example came from
        np.testing.assert_array_equal(y, labels[got])
        np.testing.assert_array_equal(x["variables"][:, 1], variables[got, 1])
        seen.append(got)
    assert sorted(np.concatenate(seen)) == list(rows)
    stream.close()


def test_a_missing_or_non_finite_variable_is_one_line_naming_file_and_dataset(tmp_path):
    path = _toy(tmp_path / "a.h5", 50)
    with pytest.raises(InputError, match=r"a\.h5: no dataset 'delta_r'"):
        example_variables([path], ["jet_m", "delta_r"])
    with h5py.File(path, "r+") as f:
        f["tau21"][7] = np.nan
    with pytest.raises(InputError, match=r"a\.h5: dataset 'tau21' row 7 is nan \(1 such rows\)"):
        example_variables([path], ["jet_m", "tau21"])
    assert example_variables([path], []) is None


def test_variables_of_another_kind_are_refused_naming_the_key():
    raw = tiny_raw_config()
    raw["train"]["variables"] = ["jet_m", "mj"]
    with pytest.raises(ConfigError, match=r"train\.variables: 'mj' is no variable of kind jets"):
        validate(raw)
    raw["train"]["variables"] = []
    raw["train"]["variants"] = [{"name": "vars", "variables": ["tau21", "n_fatjets"]}]
    with pytest.raises(ConfigError, match=r"train\.variants\[0\]\.variables: 'n_fatjets'"):
        validate(raw)
    raw["train"]["variants"] = [{"name": "vars", "variables": ["tau21"]}]
    assert validate(raw)["train"]["variants"][0]["method"] == "none"


@pytest.mark.slow
def test_the_trainer_gives_the_model_its_variables_and_records_them(tmp_path):
    """The images carry no information here: only a model that receives the mass separates."""
    from jetimage.evaluation.scoring import predict
    from jetimage.stages.train import train
    from jetimage.training.loading import load_model

    path = _toy(tmp_path / "toy.h5", 600)
    raw = tiny_raw_config()
    raw["train"].update(epochs=8, batch_size=32, patience=8, learning_rate=3e-3, standardize=False)
    aucs = {}
    for name, variables in (("images", []), ("vars", ["jet_m", "tau21"])):
        raw["train"]["variables"] = variables
        cfg = validate(raw)
        model_path = tmp_path / name / "model.keras"
        train(cfg, [path], model_path, tmp_path / name / "history.json")
        assert read_definition(model_path)["variables"] == variables
        model = load_model(model_path)
        assert [t.name for t in model.inputs] == (["images", "variables"] if variables else ["images"])
        test = dataset_split(cfg, 600)["test"]
        score = predict(model, [path], test, variables=example_variables([path], variables))
        labels = read_columns([path], ["labels"])["labels"][test]
        aucs[name] = auc(*roc_curve(score, labels))
    assert aucs["images"] < 0.7 < 0.9 < aucs["vars"], aucs


@pytest.fixture(scope="module")
def combined(tiny_config, generated, tmp_path_factory):
    """Real images of the tiny jet study and a one-epoch CNN with jet mass and tau21 beside them."""
    from jetimage.stages.images import make_sample_images
    from jetimage.stages.train import train

    raw = tiny_raw_config()
    raw["train"]["variables"] = ["jet_m", "tau21"]
    cfg = validate(raw)
    out = tmp_path_factory.mktemp("combined")
    images = [out / f"{name}.h5" for name in cfg.sample_names]
    for name, h5 in zip(cfg.sample_names, images, strict=True):
        make_sample_images(cfg, name, [generated[name]], h5)
    train(cfg, images, out / "model.keras", out / "history.json")
    return cfg, images, out


@pytest.mark.slow
def test_onnx_has_two_named_inputs_and_equals_keras(combined):
    import onnx

    from jetimage.evaluation.scoring import predict
    from jetimage.stages.export import export_onnx, onnx_scores
    from jetimage.training.loading import load_model

    cfg, images, out = combined
    export_onnx(out / "model.keras", out / "model.onnx")
    assert [i.name for i in onnx.load(str(out / "model.onnx")).graph.input] == ["images", "variables"]
    labels = read_columns(images, ["labels"])["labels"]
    test = dataset_split(cfg, len(labels))["test"]
    variables = example_variables(images, ["jet_m", "tau21"])
    pixels = np.concatenate([im for _, im in iterate_rows(images, test)])
    keras_scores = predict(load_model(out / "model.keras"), images, test, variables=variables)
    onnx_out = onnx_scores(out / "model.onnx", pixels, variables[test])
    np.testing.assert_allclose(onnx_out, keras_scores, rtol=0, atol=1e-5)
    assert np.ptp(onnx_out) > 0
    with pytest.raises(InputError, match=r"takes the inputs \['images', 'variables'\], given \['images'\]"):
        onnx_scores(out / "model.onnx", pixels)


@pytest.mark.slow
def test_apply_scores_with_the_trees_variables_and_refuses_a_tree_without_one(combined, generated, tmp_path):
    from jetimage.stages.apply import apply

    cfg, _, out = combined
    name = cfg.sample_names[0]
    apply(cfg, name, generated[name], out / "model.keras", tmp_path / "friend.root")
    with uproot.open(tmp_path / "friend.root") as f:
        score = f["jetimage"]["score"].array(library="np")
    assert np.isfinite(score).any() and np.ptp(score[np.isfinite(score)]) > 0
    # the same jets tree without tau21: one line naming the file, the tree and the branch
    with uproot.open(generated[name]) as f:
        arrays = f["jets"].arrays(library="ak")
        run = f["run"].arrays(library="np")
    fields = [k for k in arrays.fields
              if k not in ("tau21", "n_constituents") and not k.startswith("constituent_")]
    constituents = ak.zip({k.removeprefix("constituent_"): arrays[k]
                           for k in arrays.fields if k.startswith("constituent_")})
    bare = tmp_path / "no_tau21.root"
    with uproot.recreate(bare) as f:
        types = {k: arrays[k].type.content for k in fields}
        f.mktree("jets", {**types, "constituent": constituents.type.content},
                 counter_name=lambda _: "n_constituents", field_name=lambda outer, inner: f"{outer}_{inner}")
        f["jets"].extend({**{k: arrays[k] for k in fields}, "constituent": constituents})
        f["run"] = {k: v for k, v in run.items()}
    with pytest.raises(InputError, match=r"no_tau21\.root: tree 'jets' has no branch 'tau21', from which the "
                                         r"model's physics variable 'tau21' is read"):
        apply(cfg, name, bare, out / "model.keras", tmp_path / "friend2.root")
    assert not (tmp_path / "friend2.root").exists()
