"""Applying a trained tagger: friend trees aligned with their input, the model's input definition,
ONNX export. Real Pythia samples, a real (tiny) Keras model, real ROOT files."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from jetimage.config import ConfigError, validate
from jetimage.formats.hdf5 import read_columns
from jetimage.formats.root import read_jets
from jetimage.stages.apply import FRIEND_TREE, apply
from jetimage.stages.evaluate import evaluate
from jetimage.stages.export import export_onnx, onnx_scores
from jetimage.stages.images import make_sample_images
from jetimage.stages.ingest import ingest, plan_chunks
from jetimage.stages.train import train
from jetimage.training.data import dataset_split, iterate_rows
from jetimage.training.definition import read_definition

from .conftest import SHARED, tiny_raw_config

# trains and applies real models through the command line: not in make test-fast
pytestmark = pytest.mark.slow

DELPHES = SHARED / "data" / "delphes_ttbar_10events.root"


def _trained(cfg, generated, out) -> tuple[list, Path]:
    """Images of every generated sample, a one-epoch model and evaluate's scores, in ``out``."""
    images = [out / f"{name}.h5" for name in cfg.sample_names]
    for name, h5 in zip(cfg.sample_names, images, strict=True):
        make_sample_images(cfg, name, [generated[name]], h5)
    model = out / "model.keras"
    train(cfg, images, model, out / "history.json")
    evaluate(cfg, images, model, out / "metrics.json", out / "scores.npz")
    return images, model


@pytest.fixture(scope="module")
def study(tiny_config, generated, tmp_path_factory):
    """Images, a one-epoch model, evaluate's scores, and the friend tree of every generated shard."""
    out = tmp_path_factory.mktemp("apply")
    images, model = _trained(tiny_config, generated, out)
    friends = {}
    for name in tiny_config.sample_names:
        friends[name] = out / "apply" / f"{name}.root"
        apply(tiny_config, name, generated[name], model, friends[name])
    return {"out": out, "images": images, "model": model, "friends": friends}


def test_friend_tree_lines_up_with_every_entry_of_the_input(study, generated):
    for name, friend in study["friends"].items():
        jets = read_jets([generated[name]])
        with uproot.open(friend) as f:
            t = f[FRIEND_TREE]
            assert t.num_entries == len(jets)
            cols = t.arrays(library="np")
        # the jet variables jetimage computed sit beside the score, entry by entry
        np.testing.assert_array_equal(cols["jet_pt"], ak.to_numpy(jets.jet_pt))
        np.testing.assert_array_equal(cols["event"], ak.to_numpy(jets.event))
        assert cols["passed"].dtype == bool and cols["passed"].all()
        assert np.all((cols["score"] >= 0) & (cols["score"] <= 1))


def test_scores_applied_to_the_test_split_equal_evaluate_scores(study, generated):
    with np.load(study["out"] / "scores.npz") as s:
        score, files, entries = s["score_cnn"], s["index_file"], s["index_entry"]
        samples = s["index_sample"]
    assert len(score) > 20 and set(samples) == set(study["friends"])
    n_matched = 0
    for name, friend in study["friends"].items():
        mine = files == str(generated[name])
        applied = uproot.open(friend)[FRIEND_TREE]["score"].array(library="np")
        np.testing.assert_allclose(applied[entries[mine]], score[mine], rtol=0, atol=1e-6)
        n_matched += int(mine.sum())
    assert n_matched == len(score)


def test_the_model_carries_its_inputs_and_apply_refuses_other_images(study, generated, tmp_path):
    definition = read_definition(study["model"])
    assert definition["images"]["pixel_eta"] == 0.1 and definition["input_shape"] == [25, 25, 1]
    assert definition["train"]["standardize"] is True
    raw = tiny_raw_config()
    raw["images"]["pixel_eta"] = 0.2
    other = validate(raw)
    with pytest.raises(ConfigError, match=r"images\.pixel_eta: the model was trained with 0\.1, these "
                                          r"inputs have 0\.2") as err:
        apply(other, other.sample_names[0], generated[other.sample_names[0]], study["model"],
              tmp_path / "x.root")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.root").exists()


def test_evaluate_refuses_images_made_otherwise_than_the_models_naming_the_file(study, generated,
                                                                               tmp_path):
    raw = tiny_raw_config()
    raw["images"]["pixel_eta"] = 0.2
    other = validate(raw)
    images = [tmp_path / f"{name}.h5" for name in other.sample_names]
    for name, h5 in zip(other.sample_names, images, strict=True):
        make_sample_images(other, name, [generated[name]], h5)
    with pytest.raises(ConfigError) as err:
        evaluate(other, images, study["model"], tmp_path / "metrics.json", tmp_path / "scores.npz")
    assert str(err.value).startswith(f"{images[0]}: images.pixel_eta: the model was trained with 0.1, "
                                     "these inputs have 0.2")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "scores.npz").exists()


def test_onnx_runtime_reproduces_the_keras_scores_on_the_test_split(study, tiny_config):
    onnx_path = study["out"] / "model.onnx"
    export_onnx(study["model"], onnx_path)
    labels = read_columns(study["images"], ["labels"])["labels"]
    test = dataset_split(tiny_config, len(labels))["test"]
    images = np.concatenate([im for _, im in iterate_rows(study["images"], test)])
    with np.load(study["out"] / "scores.npz") as s:
        keras_scores = s["score_cnn"]
    onnx = onnx_scores(onnx_path, images)
    assert len(onnx) == len(keras_scores) == len(test)
    np.testing.assert_allclose(onnx, keras_scores, rtol=0, atol=1e-5)
    assert np.ptp(onnx) > 0  # a constant output would hide a broken export


def _per_jet_file(src, out, drop: str = "event"):
    """The generated jets tree rewritten as a user's per-jet file without its ``drop`` branch."""
    with uproot.open(src) as f:
        arrays = f["jets"].arrays(library="ak")
    scalars = {k: ak.to_numpy(arrays[k]) for k in arrays.fields
               if not k.startswith("constituent_") and k not in (drop, "n_constituents")}
    jagged = {k: arrays[k] for k in arrays.fields if k.startswith("constituent_")}
    with uproot.recreate(out) as f:
        f["jets"] = {**scalars, **jagged}  # one counter per jagged branch
    return out


def test_a_read_per_jet_sample_gets_an_entry_for_every_jet_the_cuts_drop(study, generated, tmp_path):
    name = "qcd" if "qcd" in generated else sorted(generated)[-1]
    user = _per_jet_file(generated[name], tmp_path / "user.root")
    raw = tiny_raw_config()
    cls = next(s["class"] for s in raw["samples"] if s["name"] == name)
    raw["samples"] = [{"name": "mine", "class": cls, "files": [str(user)],
                       "cuts": {"jet_pt": {"min": 265}}}]
    raw["apply"] = {"model": str(study["model"])}
    cfg = validate(raw)  # one sample of one class: an apply-only study
    (path, start, stop), = plan_chunks(cfg.sample("mine"))
    ingest(cfg, "mine", path, start, stop, tmp_path / "part0.root")
    apply(cfg, "mine", tmp_path / "part0.root", study["model"], tmp_path / "friend.root", start, stop)
    cols = uproot.open(tmp_path / "friend.root")[FRIEND_TREE].arrays(library="np")
    pt = uproot.open(user)["jets"]["jet_pt"].array(library="np")
    assert len(cols["score"]) == len(pt)
    assert np.array_equal(cols["passed"], pt >= 265) and 0 < cols["passed"].sum() < len(pt)
    assert np.isnan(cols["score"][~cols["passed"]]).all()
    generated_scores = uproot.open(study["friends"][name])[FRIEND_TREE]["score"].array(library="np")
    np.testing.assert_allclose(cols["score"][cols["passed"]], generated_scores[cols["passed"]], atol=1e-6)


def test_a_per_jet_sample_with_an_event_number_branch_is_aligned_by_entry(study, generated, tmp_path):
    """The file's ``event`` branch holds event numbers (not entries): ingest records each row's
    input entry, by which the friend tree lines up; jets below the cut keep their entry, not passed."""
    name = sorted(generated)[0]
    raw = tiny_raw_config()
    raw["samples"] = [{"name": "mine", "class": "signal", "files": [str(generated[name])],
                       "cuts": {"jet_pt": {"min": 265}}}]
    raw["apply"] = {"model": str(study["model"])}
    cfg = validate(raw)
    (path, start, stop), = plan_chunks(cfg.sample("mine"))
    ingest(cfg, "mine", path, start, stop, tmp_path / "part0.root")
    apply(cfg, "mine", tmp_path / "part0.root", study["model"], tmp_path / "friend.root", start, stop)
    source = read_jets([generated[name]])
    assert not np.array_equal(ak.to_numpy(source.event), np.arange(len(source)))  # event numbers
    friend = uproot.open(tmp_path / "friend.root")[FRIEND_TREE].arrays(library="np")
    assert len(friend["score"]) == len(source)
    passed = ak.to_numpy(source.jet_pt) >= 265
    np.testing.assert_array_equal(friend["passed"].astype(bool), passed)
    np.testing.assert_allclose(friend["jet_pt"][passed], ak.to_numpy(source.jet_pt)[passed])
    assert np.isfinite(friend["score"][passed]).all() and np.isnan(friend["score"][~passed]).all()


@pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} is absent")
def test_a_delphes_sample_gets_jagged_jet_scores_per_event(study, tmp_path):
    raw = tiny_raw_config()
    raw["samples"] = [{"name": "ttbar", "class": "background", "files": [str(DELPHES)],
                       "preset": "delphes", "chunk_entries": 4}]
    raw["jets"].update(pt_min=100.0, pt_max=2000.0, eta_max=2.5)
    raw["apply"] = {"model": str(study["model"])}
    cfg = validate(raw)
    path, start, stop = plan_chunks(cfg.sample("ttbar"))[1]
    ingest(cfg, "ttbar", path, start, stop, tmp_path / "part1.root")
    apply(cfg, "ttbar", tmp_path / "part1.root", study["model"], tmp_path / "friend.root", start, stop)
    jets = read_jets([tmp_path / "part1.root"])
    t = uproot.open(tmp_path / "friend.root")[FRIEND_TREE]
    assert t.num_entries == stop - start == 4
    cols = t.arrays(library="ak")
    expected = np.bincount(ak.to_numpy(jets.event) - start, minlength=4)
    np.testing.assert_array_equal(ak.to_numpy(cols.n_jets), expected)
    assert expected.sum() > 0
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(cols.jet_pt)), ak.to_numpy(jets.jet_pt))
    assert np.isfinite(ak.to_numpy(ak.flatten(cols.jet_score))).all()


def test_command_line_writes_the_friend_tree_and_names_a_missing_model(study, generated, tmp_path):
    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(copy.deepcopy(tiny_raw_config())))
    name = sorted(generated)[0]
    base = [sys.executable, "-m", "jetimage", "apply", "--config", str(config), "--sample", name,
            "--input", str(generated[name]), "--output", str(tmp_path / "f.root")]
    bad = subprocess.run([*base, "--model", str(tmp_path / "none.keras")], capture_output=True, text=True)
    assert bad.returncode == 2 and "none.keras: no such model file" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = subprocess.run([*base, "--model", str(study["model"])], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert uproot.open(tmp_path / "f.root")[FRIEND_TREE].num_entries == len(read_jets([generated[name]]))


def test_a_study_of_one_class_needs_apply_model():
    raw = tiny_raw_config()
    raw["samples"] = raw["samples"][:1]
    with pytest.raises(ConfigError, match="need at least one signal and one background"):
        validate(raw)
    raw["apply"] = {"model": "elsewhere/model.keras", "samples": ["nope"]}
    with pytest.raises(ConfigError, match=r"apply\.samples: no sample named 'nope'"):
        validate(raw)


@pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} is absent")
def test_workflow_applies_another_studys_model_to_a_one_class_sample(study, tmp_path):
    import yaml

    from .conftest import REPO

    raw = tiny_raw_config(study="score")
    raw["samples"] = [{"name": "ttbar", "class": "background", "files": [str(DELPHES)],
                       "preset": "delphes", "chunk_entries": 5}]
    raw["jets"].update(pt_min=100.0, pt_max=2000.0, eta_max=2.5)
    raw["apply"] = {"model": str(study["model"])}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    run = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                          "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    friends = [tmp_path / "results" / "score" / "apply" / "ttbar" / f"part{i}.root" for i in (0, 1)]
    n = [uproot.open(p)[FRIEND_TREE].num_entries for p in friends]
    assert n == [5, 5]  # the two chunks' friends chained line up with the file's 10 entries
    assert not (tmp_path / "results" / "score" / "metrics.json").exists()  # nothing trained


def test_an_event_classifier_scores_one_entry_per_event(event_config, generated_events, tmp_path):
    from .conftest import tiny_event_config

    _, model = _trained(event_config, generated_events, tmp_path)
    with np.load(tmp_path / "scores.npz") as s:
        score, files, entries = s["score_cnn"], s["index_file"], s["index_entry"]
    for name in event_config.sample_names:
        apply(event_config, name, generated_events[name], model, tmp_path / f"{name}.friend.root")
        cols = uproot.open(tmp_path / f"{name}.friend.root")[FRIEND_TREE].arrays(library="np")
        events = uproot.open(generated_events[name])["events"]["event"].array(library="np")
        np.testing.assert_array_equal(cols["event"], events)
        mine = files == str(generated_events[name])
        np.testing.assert_allclose(cols["score"][entries[mine]], score[mine], rtol=0, atol=1e-6)
    if not DELPHES.exists():
        return
    # a Delphes file read in an event study: the events the skim drops keep their entry
    raw = tiny_event_config(study="score_events")
    raw["samples"] = [{"name": "ttbar", "class": "background", "files": [str(DELPHES)], "preset": "delphes"}]
    raw["events"]["skim"] = True
    raw["apply"] = {"model": str(model)}
    for selection, n_kept in (({}, 0), ({"fatjet_pt_min": 100.0, "n_min": 1, "lead_pt_min": 150.0}, 3)):
        raw["events"]["selection"] = selection  # the default skim keeps none of these ttbar events
        cfg = validate(raw)
        (path, start, stop), = plan_chunks(cfg.sample("ttbar"))
        ingest(cfg, "ttbar", path, start, stop, tmp_path / "part0.root")
        apply(cfg, "ttbar", tmp_path / "part0.root", model, tmp_path / "ttbar.friend.root", start, stop)
        cols = uproot.open(tmp_path / "ttbar.friend.root")[FRIEND_TREE].arrays(library="np")
        kept = uproot.open(tmp_path / "part0.root")["events"]["event"].array(library="np")
        assert len(cols["score"]) == stop - start == 10 and len(kept) == cols["passed"].sum() == n_kept
        assert np.array_equal(np.flatnonzero(cols["passed"]), kept - start)
        assert np.isnan(cols["score"][~cols["passed"]]).all()
        assert np.isfinite(cols["score"][cols["passed"]]).all()
        assert cols["n_fatjets"].dtype == np.int32  # the same branch types whatever passed


def entry_counts(pattern: list[int], n_jets: int) -> np.ndarray:
    """Jets per entry, ``pattern`` repeated, summing to ``n_jets`` (the last entry cut short)."""
    counts = np.resize(pattern, n_jets)
    counts = counts[: np.searchsorted(np.cumsum(counts), n_jets) + 1]
    counts[-1] -= counts.sum() - n_jets
    return counts


def test_nested_jets_get_one_score_per_jet_of_each_entry(study, generated, tmp_path):
    """Events holding jets (the nested layout): the friend tree has, per input entry, one score per
    jet of the entry in the window, in the entry's order, beside the jet pT read from the file."""
    name = sorted(generated)[0]
    source = read_jets([generated[name]])
    counts = entry_counts([2, 0, 1, 3], len(source))
    c = source.constituents
    with uproot.recreate(tmp_path / "nested.root") as f:
        f["events"] = {f"constituent_{k}": ak.unflatten(c[k], counts) for k in ("pt", "eta", "phi", "e")}
    raw = tiny_raw_config()
    raw["samples"] = [{"name": "nested", "class": "signal", "files": [str(tmp_path / "nested.root")],
                       "preset": "nested"}]
    raw["apply"] = {"model": str(study["model"])}
    cfg = validate(raw)
    (path, start, stop), = plan_chunks(cfg.sample("nested"))
    ingest(cfg, "nested", path, start, stop, tmp_path / "part0.root")
    apply(cfg, "nested", tmp_path / "part0.root", study["model"], tmp_path / "friend.root", start, stop)
    friend = uproot.open(tmp_path / "friend.root")[FRIEND_TREE].arrays(library="ak")
    assert len(friend) == len(counts)
    np.testing.assert_array_equal(ak.to_numpy(friend.n_jets), counts)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(friend.jet_pt)), ak.to_numpy(source.jet_pt), rtol=1e-6)
    assert np.isfinite(ak.to_numpy(ak.flatten(friend.jet_score))).all()


def test_an_rntuple_input_is_scored_and_its_friend_joined_with_awkward(study, generated, tmp_path):
    """A user's RNTuple (nested layout, read in two chunks) is ingested and scored; an RNTuple has
    no AddFriend, so the friend TTrees are joined entry by entry with uproot and ``ak.zip`` as
    docs/jets.md shows."""
    name = sorted(generated)[0]
    source = read_jets([generated[name]])
    counts = entry_counts([1, 2, 0, 3], len(source))
    c = source.constituents
    user = tmp_path / "mydata.root"
    with uproot.recreate(user) as f:
        f["events"] = {**{f"constituent_{k}": ak.unflatten(c[k], counts) for k in ("pt", "eta", "phi", "e")},
                       "run_number": np.arange(len(counts), dtype=np.int64)}
    with uproot.open(user) as f:
        assert f.classname_of("events") == "ROOT::RNTuple"  # not a TTree: no AddFriend
    raw = tiny_raw_config()
    raw["samples"] = [{"name": "nested", "class": "signal", "files": [str(user)], "preset": "nested",
                       "chunk_entries": (len(counts) + 1) // 2}]
    raw["apply"] = {"model": str(study["model"])}
    cfg = validate(raw)
    chunks = plan_chunks(cfg.sample("nested"))
    assert len(chunks) == 2
    for i, (path, start, stop) in enumerate(chunks):
        ingest(cfg, "nested", path, start, stop, tmp_path / f"part{i}.root")
        apply(cfg, "nested", tmp_path / f"part{i}.root", study["model"], tmp_path / f"friend{i}.root",
              start, stop)
    # the join of docs/jets.md: the user's RNTuple and the friend trees (chunks in file order)
    events = uproot.open(f"{user}:events").arrays()
    scores = uproot.concatenate([f"{tmp_path / f'friend{i}.root'}:{FRIEND_TREE}" for i in range(2)])
    joined = ak.zip({"data": events, "jetimage": scores}, depth_limit=1)
    assert len(joined) == len(events) == len(counts)
    np.testing.assert_array_equal(ak.to_numpy(joined.data.run_number), np.arange(len(counts)))
    np.testing.assert_array_equal(ak.to_numpy(joined.jetimage.n_jets), ak.to_numpy(ak.num(
        joined.data.constituent_pt)))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(joined.jetimage.jet_pt)), ak.to_numpy(source.jet_pt),
                               rtol=1e-6)
    assert np.isfinite(ak.to_numpy(ak.flatten(joined.jetimage.jet_score))).all()


def _apply_cli(config: Path, sample: str, tree: Path, model: Path, output: Path, *extra: str
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jetimage", "apply", "--config", str(config), "--sample",
                           sample, "--input", str(tree), "--model", str(model), "--output", str(output),
                           *extra], capture_output=True, text=True, timeout=300)


def test_apply_never_writes_onto_an_input_nor_replaces_a_file_it_did_not_write(generated, tmp_path):
    """``apply --input mydata.root --output mydata.root`` replaced the user's file (exit 0)."""
    import os
    import shutil

    import yaml

    from jetimage.formats.errors import InputError

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(copy.deepcopy(tiny_raw_config())))
    name = sorted(generated)[0]
    mine = tmp_path / "mydata.root"
    shutil.copy(generated[name], mine)
    before = mine.read_bytes()
    proc = _apply_cli(config, name, mine, tmp_path / "model.keras", mine)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"jetimage apply: error: {mine}: is the input {mine}: apply writes the friend tree to a "
                    "file of its own (never onto an input); give another --output"), last
    os.link(mine, tmp_path / "link.root")  # another name of the same file
    with pytest.raises(InputError, match=r"link\.root: is the input .*mydata\.root"):
        apply(validate(tiny_raw_config()), name, mine, tmp_path / "model.keras", tmp_path / "link.root")
    with pytest.raises(InputError, match=r"link\.root: is the input"):  # --force never writes onto an input
        apply(validate(tiny_raw_config()), name, mine, tmp_path / "model.keras", tmp_path / "link.root",
              force=True)
    other = tmp_path / "other.root"  # an existing ROOT file jetimage did not write
    shutil.copy(generated[name], other)
    proc = _apply_cli(config, name, mine, tmp_path / "model.keras", other)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"jetimage apply: error: {other}: exists and is not a friend file written by jetimage apply (a ROOT "
        "file holding only the tree 'jetimage'): not replaced; give another --output, or --force to "
        "replace it")
    assert mine.read_bytes() == before and other.read_bytes() == before


def test_apply_replaces_its_own_friend_file_and_others_with_force(study, generated, tmp_path):
    import shutil

    cfg = validate(tiny_raw_config())
    name = sorted(generated)[0]
    friend = tmp_path / "friend.root"
    shutil.copy(study["friends"][name], friend)  # written by jetimage apply: replaced without --force
    assert apply(cfg, name, generated[name], study["model"], friend) == len(read_jets([generated[name]]))
    text = tmp_path / "notes.txt"
    text.write_text("not a friend file")
    with pytest.raises(Exception, match="not a friend file written by jetimage apply"):
        apply(cfg, name, generated[name], study["model"], text)
    assert text.read_text() == "not a friend file"
    apply(cfg, name, generated[name], study["model"], text, force=True)
    assert uproot.open(text).keys(cycle=False) == [FRIEND_TREE]


def test_apply_refuses_a_range_other_than_the_chunks_naming_the_file_and_its_entries(generated, tmp_path):
    """``--start 0 --stop 200`` on a chunk ingested from 102 entries wrote a misaligned 200-entry friend."""
    from jetimage.formats.errors import InputError

    name = sorted(generated)[0]
    raw = tiny_raw_config()
    raw["samples"] = [{"name": "mine", "class": "signal", "files": [str(generated[name])]}]
    raw["apply"] = {"model": str(tmp_path / "model.keras")}
    cfg = validate(raw)
    (path, start, stop), = plan_chunks(cfg.sample("mine"))
    ingest(cfg, "mine", path, start, stop, tmp_path / "part0.root")
    n = stop - start
    with pytest.raises(InputError, match=rf"part0\.root: ingested from {n} entries of the user's tree, but "
                                         rf"--start 0 --stop {n + 98} spans {n + 98}"):
        apply(cfg, "mine", tmp_path / "part0.root", tmp_path / "model.keras", tmp_path / "f.root", 0, n + 98)
    with pytest.raises(InputError, match=r"--start 5 --stop 2 is no range of entries"):
        apply(cfg, "mine", tmp_path / "part0.root", tmp_path / "model.keras", tmp_path / "f.root", 5, 2)
    assert not (tmp_path / "f.root").exists()
