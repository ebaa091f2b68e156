"""Memory bounded in bytes (constituents per chunk, the Fisher discriminant's pixel limit) and
compressed image files (issue 12, points 8 and 9)."""

from __future__ import annotations

import copy
import json

import awkward as ak
import h5py
import numpy as np
import pytest

from jetimage import config, diagnostics, io
from jetimage.images import make_sample_images


def _many_constituent_jets(path, counts: list[int], seed: int = 0) -> None:
    """A ``jets`` tree whose jets hold ``counts`` constituents each (real writer, real tree)."""
    rng = np.random.default_rng(seed)
    n, total = len(counts), int(sum(counts))
    flat = {"pt": rng.uniform(0.5, 5.0, total), "eta": rng.normal(0.0, 0.3, total),
            "phi": rng.normal(0.0, 0.3, total), "charge": rng.integers(-1, 2, total),
            "pdgid": np.full(total, 211)}
    flat["e"] = flat["pt"] * np.cosh(flat["eta"])
    rows = {name: np.zeros(n) for name in io.JET_BRANCHES}
    rows.update(jet_pt=np.full(n, 275.0), event=np.arange(n), weight=np.ones(n), label=np.zeros(n),
                subjet1_pt=np.full(n, 200.0), subjet2_pt=np.full(n, 50.0), subjet2_eta=np.full(n, 0.3),
                n_subjets=np.full(n, 2))
    rows["constituents"] = ak.unflatten(ak.zip(flat), np.asarray(counts))
    with io.JetTreeWriter(path) as writer:
        writer.extend(rows)


def test_entry_ranges_bound_entries_and_items():
    counts = np.array([5, 1, 1, 7, 2, 2, 2, 9, 0, 1])
    ranges = io.entry_ranges(counts, max_entries=3, max_items=8)
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
    sizes = [int(ak.sum(ak.num(c.constituents))) for c in io.iterate_jets([path], step_size=100,
                                                                          max_items=8000)]
    assert max(sizes) <= 8000 and sum(sizes) == sum(counts)
    # today's chunks (jets only) hold every constituent of the file at once
    assert [int(ak.sum(ak.num(c.constituents))) for c in io.iterate_jets([path], step_size=100)] == [sum(counts)]


def test_one_jet_over_the_constituent_bound_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "fat.root"
    _many_constituent_jets(path, [10, 6000, 10])
    with pytest.raises(io.InputError, match=r"entry 1 holds 6000 .*images\.chunk_constituents = 5000"):
        list(io.iterate_jets([path], max_items=5000))


def test_images_are_identical_chunked_by_jets_or_by_constituents(generated, tiny_config, tmp_path):
    cfg = copy.deepcopy(tiny_config)
    name, path = "qcd", generated["qcd"]
    counts = ak.to_numpy(ak.num(io.read_jets([path]).constituents))
    out = {}
    for label, bound in (("jets", 10**9), ("constituents", int(3 * counts.max()))):
        cfg["images"]["chunk_constituents"] = bound
        out[label] = tmp_path / f"{label}.h5"
        make_sample_images(cfg, name, [path], out[label])
    assert len(io.entry_ranges(counts, cfg["images"]["chunk_size"], int(3 * counts.max()))) > len(
        io.entry_ranges(counts, cfg["images"]["chunk_size"]))
    with h5py.File(out["jets"], "r") as a, h5py.File(out["constituents"], "r") as b:
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key][...], b[key][...], err_msg=key)


def test_the_image_mass_study_streams_chunks_with_the_same_result(tmp_path):
    cfg = config.load(config.__file__.replace("config.py", "../../config.yaml"), "jets")
    path = tmp_path / "qcd.root"
    _many_constituent_jets(path, [40, 60, 2000, 50, 80, 3000, 40] * 6, seed=1)
    sig = tmp_path / "w.root"
    _many_constituent_jets(sig, [30, 2500, 60, 45, 1500, 90] * 7, seed=2)
    inputs = {"qcd": [str(path)], "wjets": [str(sig)]}
    for s in cfg["samples"]:
        s["truth"] = "none"
    jets, labels, weights = diagnostics.read_study_jets(cfg, inputs)
    whole, _ = diagnostics.mass_study(jets, labels, weights, cfg["images"], 0.5, 40)
    cfg["images"]["chunk_constituents"] = 3000
    streamed, masses, y = diagnostics.streamed_study(cfg, inputs, efficiency=0.5, bins=40)
    assert json.dumps(streamed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert len(y) == len(jets) and len(masses["lorentz"]["flip"]) == len(jets)
