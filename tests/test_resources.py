"""Memory bounded in bytes (constituents per chunk, the Fisher discriminant's pixel limit) and
compressed image files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from jetimage import config
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import CHUNK_BYTES, ImageWriter, chunk_rows_for, read_images
from jetimage.formats.root import (
    JET_BRANCHES,
    JETS,
    JetTreeWriter,
    TreeWriter,
    entry_ranges,
    iterate_jets,
    read_jets,
)
from jetimage.stages import image_mass
from jetimage.stages.images import make_sample_images
from tests.test_evaluate import toy_model  # noqa: F401  (the fixture: a small trained model)


def _many_constituent_jets(path, counts: list[int], seed: int = 0) -> None:
    """A ``jets`` tree whose jets hold ``counts`` constituents each (real writer, real tree)."""
    rng = np.random.default_rng(seed)
    n, total = len(counts), int(sum(counts))
    flat = {"pt": rng.uniform(0.5, 5.0, total), "eta": rng.normal(0.0, 0.3, total),
            "phi": rng.normal(0.0, 0.3, total), "charge": rng.integers(-1, 2, total),
            "pdgid": np.full(total, 211)}
    flat["e"] = flat["pt"] * np.cosh(flat["eta"])
    rows = {name: np.zeros(n) for name in JET_BRANCHES}
    rows.update(jet_pt=np.full(n, 275.0), event=np.arange(n), weight=np.ones(n), label=np.zeros(n),
                subjet1_pt=np.full(n, 200.0), subjet2_pt=np.full(n, 50.0), subjet2_eta=np.full(n, 0.3),
                n_subjets=np.full(n, 2))
    rows["constituents"] = ak.unflatten(ak.zip(flat), np.asarray(counts))
    with JetTreeWriter(path) as writer:
        writer.extend(rows)


def test_entry_ranges_bound_entries_and_items():
    counts = np.array([5, 1, 1, 7, 2, 2, 2, 9, 0, 1])
    ranges = entry_ranges(counts, max_entries=3, max_items=8)
    assert ranges[0] == (0, 3) and ranges[-1][1] == len(counts)
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(ranges, ranges[1:], strict=False))
    for a, b in ranges:
        assert b - a <= 3
        assert counts[a:b].sum() <= 8 or b - a == 1  # 9 items: one entry alone
    assert (7, 8) in ranges


def test_chunks_of_many_constituent_jets_are_bounded_in_constituents(tmp_path):
    path = tmp_path / "fat.root"
    counts = [5000, 3000, 10, 4000, 4000, 20, 30, 5000]
    _many_constituent_jets(path, counts)
    sizes = [int(ak.sum(ak.num(c.constituents))) for c in iterate_jets([path], step_size=100,
                                                                          max_items=8000)]
    assert max(sizes) <= 8000 and sum(sizes) == sum(counts)
    # today's chunks (jets only) hold every constituent of the file at once
    whole = [int(ak.sum(ak.num(c.constituents))) for c in iterate_jets([path], step_size=100)]
    assert whole == [sum(counts)]


def test_one_jet_over_the_constituent_bound_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "fat.root"
    _many_constituent_jets(path, [10, 6000, 10])
    with pytest.raises(InputError, match=r"entry 1 holds 6000 .*images\.chunk_constituents = 5000"):
        list(iterate_jets([path], max_items=5000))


def test_images_are_identical_chunked_by_jets_or_by_constituents(generated, tiny_config, tmp_path):
    cfg = copy.deepcopy(tiny_config)
    name, path = "qcd", generated["qcd"]
    counts = ak.to_numpy(ak.num(read_jets([path]).constituents))
    out = {}
    for label, bound in (("jets", 10**9), ("constituents", int(3 * counts.max()))):
        cfg["images"]["chunk_constituents"] = bound
        out[label] = tmp_path / f"{label}.h5"
        make_sample_images(cfg, name, [path], out[label])
    assert len(entry_ranges(counts, cfg["images"]["chunk_size"], int(3 * counts.max()))) > len(
        entry_ranges(counts, cfg["images"]["chunk_size"]))
    with h5py.File(out["jets"], "r") as a, h5py.File(out["constituents"], "r") as b:
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key][...], b[key][...], err_msg=key)


def test_the_image_mass_study_streams_chunks_with_the_same_result(tmp_path):
    cfg = config.load(Path(__file__).resolve().parents[1] / "config.yaml", "jets")
    path = tmp_path / "qcd.root"
    _many_constituent_jets(path, [40, 60, 2000, 50, 80, 3000, 40] * 6, seed=1)
    sig = tmp_path / "w.root"
    _many_constituent_jets(sig, [30, 2500, 60, 45, 1500, 90] * 7, seed=2)
    inputs = {"qcd": [str(path)], "wjets": [str(sig)]}
    for s in cfg["samples"]:
        s["truth"] = "none"
    jets, labels, weights = image_mass.read_study_jets(cfg, inputs)
    whole, _ = image_mass.mass_study(jets, labels, weights, cfg["images"], 0.5, 40)
    cfg["images"]["chunk_constituents"] = 3000
    streamed, masses, y = image_mass.streamed_study(cfg, inputs, efficiency=0.5, bins=40)
    assert json.dumps(streamed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert len(y) == len(jets) and len(masses["lorentz"]["flip"]) == len(jets)


def _toy_files(tmp_path, n: int = 800):
    from tests.test_evaluate import _toy_study

    return _toy_study(tmp_path, n=n)


def test_streamed_fisher_scores_equal_scikit_learns(tmp_path):
    from jetimage.evaluation.fisher import fisher_discriminant, fit_fisher
    from jetimage.training.data import file_rows

    paths = _toy_files(tmp_path)
    data = read_images(paths)
    rows = np.sort(np.random.default_rng(3).choice(sum(file_rows(paths)), 1100, replace=False))
    y = data["labels"][rows].astype(int)
    reference = fisher_discriminant(data["images"][rows], y)
    streamed = fit_fisher(paths, rows, y, 81, block_bytes=8 * 81 * 37)  # pieces of 37 images
    flat = data["images"].reshape(len(data["images"]), -1).astype(np.float64)
    np.testing.assert_allclose(streamed.decision_function(flat), reference.decision_function(flat),
                               rtol=1e-7, atol=1e-7 * np.abs(reference.decision_function(flat)).max())


def test_streamed_fisher_memory_does_not_grow_with_the_jets(tmp_path):
    import tracemalloc

    from jetimage.evaluation.fisher import fit_fisher

    rng = np.random.default_rng(0)
    n = 40_000  # 26 MB of float64 pixels: what the in-memory fit held, twice over
    path = tmp_path / "many.h5"
    with ImageWriter(path, (9, 9, 1), {"sample": "many"}) as w:
        w.append(rng.exponential(1.0, (n, 9, 9, 1)).astype(np.float32),
                 {"labels": (np.arange(n) % 2).astype(np.int8), "weights": np.ones(n)})
    rows = np.arange(n)
    tracemalloc.start()
    fit_fisher([path], rows, rows % 2, 81, block_bytes=2**20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20, peak / 2**20


@pytest.mark.parametrize("setting", [{"fisher": False}, {"fisher": "auto", "fisher_max_pixels": 80}])
def test_a_skipped_fisher_is_null_with_a_warning_and_the_roc_plot_draws_without_it(
        toy_model, tmp_path, caplog, setting):  # noqa: F811
    import logging

    from jetimage.stages.evaluate import evaluate
    from jetimage.stages.plots import draw
    from tests.test_evaluate import _toy_config

    model_dir, paths = toy_model
    cfg = _toy_config(**setting)
    with caplog.at_level(logging.INFO, logger="jetimage"):
        metrics = evaluate(cfg, paths, model_dir / "model.keras", tmp_path / "metrics.json",
                           tmp_path / "scores.npz")
    assert metrics["fisher"] is None
    assert json.loads((tmp_path / "metrics.json").read_text())["fisher"] is None
    assert metrics["cnn"]["auc"] > 0.75 and metrics["mass_tau21"]["auc"] > 0.75
    key = "evaluate.fisher is false" if setting["fisher"] is False else "evaluate.fisher_max_pixels = 80"
    assert key in caplog.text
    assert "score_fisher" not in np.load(tmp_path / "scores.npz")
    out = draw(cfg, dict(np.load(tmp_path / "scores.npz")), None, tmp_path / "plots", ["roc"])
    assert all(p.stat().st_size > 0 for p in out)


def test_fisher_true_or_within_the_limit_is_computed(toy_model, tmp_path):  # noqa: F811
    from jetimage.stages.evaluate import evaluate
    from tests.test_evaluate import _toy_config

    model_dir, paths = toy_model
    for setting in ({"fisher": True, "fisher_max_pixels": 10}, {"fisher": "auto", "fisher_max_pixels": 81}):
        metrics = evaluate(_toy_config(**setting), paths, model_dir / "model.keras", tmp_path / "m.json")
        assert metrics["fisher"]["auc"] > 0.75


def test_chunk_rows_are_whole_rows_of_at_most_a_mebibyte_tiling_the_blocks():
    assert chunk_rows_for(25 * 25 * 4) == 256 and chunk_rows_for(64 * 64 * 3 * 4) == 16
    assert chunk_rows_for(200 * 200 * 4) == 4 and chunk_rows_for(4 * 2**20) == 1
    assert chunk_rows_for(1) == 1024
    for row_bytes in (1, 100, 2500, 49152, 160000):
        rows = chunk_rows_for(row_bytes)
        assert 1024 % rows == 0 and 256 % min(rows, 256) == 0
        assert rows * row_bytes <= max(CHUNK_BYTES, row_bytes)


def test_image_files_are_compressed_by_default_and_hold_the_same_values(generated, tiny_config, tmp_path):
    cfg = copy.deepcopy(tiny_config)
    assert cfg["images"]["compression"] == "gzip" and cfg["images"]["compression_level"] == 1
    out = {}
    for setting in ("gzip", "lzf", "none"):
        cfg["images"]["compression"] = setting
        out[setting] = tmp_path / f"{setting}.h5"
        make_sample_images(cfg, "qcd", [generated["qcd"]], out[setting])
    with h5py.File(out["gzip"], "r") as f:
        ds = f["images"]
        assert ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle
        assert ds.chunks == (256, 25, 25, 1)
    with h5py.File(out["none"], "r") as f:
        assert f["images"].compression is None
    assert out["gzip"].stat().st_size < 0.5 * out["none"].stat().st_size
    raw = read_images([out["none"]], columns=["jet_m", "event"])
    for setting in ("gzip", "lzf"):
        data = read_images([out[setting]], columns=["jet_m", "event"])
        for key, values in raw.items():
            np.testing.assert_array_equal(data[key], values, err_msg=f"{setting} {key}")


def test_the_training_stream_reads_the_same_batches_from_compressed_files(tmp_path):
    from jetimage.training.data import ImageStream

    rng = np.random.default_rng(5)
    n = 3000
    images = (rng.exponential(1.0, (n, 25, 25, 1)) * (rng.random((n, 25, 25, 1)) < 0.05)).astype(np.float32)
    paths = {}
    for setting in ("none", "gzip"):
        paths[setting] = tmp_path / f"{setting}.h5"
        with ImageWriter(paths[setting], (25, 25, 1), {}, compression=setting, level=1) as w:
            w.append(images, {"labels": np.zeros(n, np.int8), "weights": np.ones(n)})
    rows = np.sort(rng.choice(n, 1800, replace=False))
    batches = {}
    for setting, path in paths.items():
        stream = ImageStream.create([path], rows, np.zeros(n), np.ones(n), 128, 256, 4, seed=3)
        batches[setting] = [stream[i][0] for i in range(len(stream))]
        stream.close()
    for a, b in zip(batches["none"], batches["gzip"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_unknown_compression_is_a_config_error_naming_the_key():
    from tests.conftest import tiny_raw_config

    raw = tiny_raw_config()
    raw["images"]["compression"] = "zstd"
    with pytest.raises(config.ConfigError, match="images.compression"):
        config.validate(raw)


def test_rule_memory_follows_the_bounds_and_the_fisher_switch():
    from jetimage.evaluation.fisher import fisher_bytes
    from jetimage.resources import FLOOR_MB, rule_mem_mb
    from tests.conftest import tiny_raw_config

    raw = tiny_raw_config()
    base = config.validate(raw)
    for rule, floor in FLOOR_MB.items():
        assert rule_mem_mb(base, rule) >= floor
    raw["images"].update(n_eta=200, n_phi=200)
    big = config.validate(copy.deepcopy(raw))
    assert big["evaluate"]["fisher"] == "auto"  # 40,000 pixels > fisher_max_pixels: skipped, no term
    assert rule_mem_mb(big, "evaluate") < fisher_bytes(40_000) / 1e6
    raw["evaluate"]["fisher"] = True
    forced = config.validate(copy.deepcopy(raw))
    assert rule_mem_mb(forced, "evaluate") > fisher_bytes(40_000) / 1e6 > 35e3
    raw["images"]["chunk_constituents"] = 50_000_000
    many = config.validate(copy.deepcopy(raw))
    assert rule_mem_mb(many, "images") > rule_mem_mb(big, "images") + 5000
    assert rule_mem_mb(many, "image_mass") > rule_mem_mb(big, "image_mass") + 10000


def test_ingest_reads_steps_bounded_in_bytes_and_buffers_bounded_in_constituents(tmp_path, monkeypatch):
    """An ingest job reads about READ_BYTES of branches per step (fewer entries when each holds
    thousands of constituents) and its writer flushes by constituents; the output is the input."""
    import uproot

    from jetimage.config import validate
    from jetimage.formats import readers
    from jetimage.stages import ingest

    from .conftest import tiny_raw_config

    heavy, light = tmp_path / "heavy.root", tmp_path / "light.root"
    _many_constituent_jets(heavy, [2000] * 20)
    _many_constituent_jets(light, [20] * 20)
    steps = {}
    for path in (heavy, light):
        t = uproot.open(path)["jets"]
        plan, problems = readers.resolve(t, {"preset": "jetimage"})
        assert not problems
        steps[path.stem] = ingest.read_step(t, plan, 100_000, budget=200_000)
    assert 1 <= steps["heavy"] <= 3 and steps["light"] >= 20  # ~96 kB against ~1 kB per entry
    writer = TreeWriter(tmp_path / "w.root", JETS, max_items=5000)
    source = read_jets([heavy])
    with writer:
        for i in range(len(source)):
            writer.extend({**{k: source[k][i:i + 1] for k in JET_BRANCHES},
                           "constituents": source.constituents[i:i + 1]})
            assert writer._items < 5000  # flushed as soon as 5000 constituents are buffered
        assert writer.n_written >= 18
    raw = tiny_raw_config()
    raw["samples"][1] = {"name": "mine", "class": "background", "files": [str(heavy)]}
    monkeypatch.setattr(ingest, "READ_BYTES", 200_000)
    ingest.ingest(validate(raw), "mine", str(heavy), 0, 20, tmp_path / "out.root")
    out = read_jets([tmp_path / "out.root"])
    assert len(out) == 20 and ak.all(out.constituents.pt == source.constituents.pt)


#: The child of the peak-memory tests: one rule's work on ``path``, then its peak resident memory.
_RULE_CHILD = """
import sys, uproot, yaml
from jetimage import config
raw = yaml.safe_load(open({config!r}))
study = {{"seed": raw["seed"], **raw["studies"]["jets"], "study": "jets"}}
study["images"].update({images!r})
for s in study["samples"]:
    s["truth"] = "none"
if {rule!r} == "ingest":  # the whole file as one job of a user's sample
    from jetimage.stages import ingest
    study["samples"][1] = {{"name": "mine", "class": "background", "files": [{path!r}]}}
    n = uproot.open({path!r})["jets"].num_entries
    ingest.ingest(config.validate(study), "mine", {path!r}, 0, n, {out!r} + ".root")
elif {rule!r} == "images":
    from jetimage.stages.images import make_sample_images
    make_sample_images(config.validate(study), "qcd", [{path!r}], {out!r})
else:
    from jetimage.stages import image_mass
    image_mass.streamed_study(config.validate(study), {{"qcd": [{path!r}], "wjets": [{path!r}]}})
with open("/proc/self/status") as f:  # the peak of this process alone (RUSAGE_CHILDREN: all children)
    print([int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0] * 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["images", "image_mass", "ingest"])
def test_a_rules_peak_memory_on_many_constituent_jets_stays_below_its_mem_mb(tmp_path, rule):
    """The peak resident memory of a rule's job, in a fresh process, stays below ``MARGIN x`` its
    estimate (the rule's ``mem_mb`` before the floor), with chunks of 100,000 constituents of jets of
    4,000 each written in one basket of 1,000,000: the chunk reads one branch's baskets at a time
    (all branches at once held 1.3 GiB for chunks of 2,000,000 in baskets of 6,000,000)."""
    import subprocess
    import sys

    from jetimage.resources import FLOOR_MB, estimate_mb, rule_mem_mb

    path = tmp_path / "fat.root"
    _many_constituent_jets(path, [4000] * 250)  # one extend: one basket of 1,000,000 per branch
    images = {"chunk_size": 500, "chunk_constituents": 100_000}
    repo = Path(__file__).resolve().parents[1]
    code = _RULE_CHILD.format(config=str(repo / "config.yaml"), images=images, rule=rule, path=str(path),
                              out=str(tmp_path / "out.h5"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak_mb = int(proc.stdout.split()[-1]) / 1e6
    cfg = config.load(repo / "config.yaml", "jets")
    cfg["images"].update(images)
    assert peak_mb < estimate_mb(cfg, rule) <= rule_mem_mb(cfg, rule), (peak_mb, estimate_mb(cfg, rule))
    assert rule_mem_mb(cfg, rule) == max(FLOOR_MB[rule], estimate_mb(cfg, rule))


@pytest.mark.slow
def test_a_chunk_read_holds_one_branchs_baskets_not_every_branchs(tmp_path):
    """uproot decompresses every basket a read touches; reading a chunk of 50,000 constituents from
    baskets of 1,000,000 held those of all six constituent branches (~70 MB), now one at a time."""
    import tracemalloc

    path = tmp_path / "fat.root"
    _many_constituent_jets(path, [5000] * 200)  # one basket of 1,000,000 constituents per branch
    tracemalloc.start()
    n = sum(len(c) for c in iterate_jets([path], step_size=1000, max_items=50_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 200
    one_branch = 1_000_000 * 8 * 2  # a float64 basket, decompressed and (at most) compressed
    assert peak < 1.5 * one_branch, peak / 1e6
