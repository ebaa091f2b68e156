"""The image stage: ROOT jets -> HDF5 images with the jet variables beside them."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest

from jetimage.formats.hdf5 import image_attrs, read_images
from jetimage.formats.root import read_jets, read_run
from jetimage.physics.jets import delta_phi
from jetimage.stages.images import make_sample_images


def _contained(jets, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference, one particle at a time: total constituent pT per jet, and whether every
    constituent lies within ``margin`` of the leading subjet in eta and phi."""
    totals, inside = [], []
    for jet in ak.to_list(jets):
        eta0, phi0 = jet["subjet1_eta"], jet["subjet1_phi"]
        if not np.isfinite(eta0):
            eta0, phi0 = jet["jet_eta"], jet["jet_phi"]
        ok = all(abs(c["eta"] - eta0) < margin and abs(float(delta_phi(c["phi"], phi0))) < margin
                 for c in jet["constituents"])
        totals.append(sum(c["pt"] for c in jet["constituents"]))
        inside.append(ok)
    return np.array(totals), np.array(inside)


def test_images_conserve_in_window_pt_and_carry_jet_variables(generated, tiny_config, tmp_path):
    out = {}
    for name, path in generated.items():
        out[name] = tmp_path / f"{name}.h5"
        n = make_sample_images(tiny_config, name, [path], out[name])
        jets = read_jets([path])
        if tiny_config.sample(name)["truth"] == "W":
            jets = jets[jets.label == 1]
        assert n == len(jets)
        data = read_images([out[name]], columns=["jet_m", "jet_pt", "tau21", "event", "delta_r"])
        assert data["images"].shape == (n, 25, 25, 1)
        assert data["images"].dtype == np.float32
        np.testing.assert_allclose(data["jet_m"], ak.to_numpy(jets.jet_m), rtol=1e-6)
        np.testing.assert_array_equal(data["event"], ak.to_numpy(jets.event))
        expected_class = 1 if tiny_config.sample(name)["class"] == "signal" else 0
        assert np.all(data["labels"] == expected_class)
        # weights in pb: the generator weight x sigma / (sum of weights x shards) of the file
        run = read_run(path)
        pb = run["sigma_pb"] / (run["sum_weights"] * run["n_shards"])
        np.testing.assert_allclose(data["weights"], ak.to_numpy(jets.weight) * pb, rtol=1e-6)
        assert image_attrs(out[name])["sigma_pb"] == pytest.approx(run["sigma_pb"] / run["n_shards"])
        pixel_sum = data["images"].sum(axis=(1, 2, 3), dtype=np.float64)
        total, contained = _contained(jets, margin=1.0)  # the window reaches 1.25
        assert contained.sum() > 0.3 * n
        # centring moves constituents but keeps their pT: contained jets keep all of it, up to
        # soft massive hadrons, whose pseudorapidity moves more than their rapidity under the
        # boost of the lorentz mode and may leave the window (a few 10 MeV at most)
        np.testing.assert_allclose(pixel_sum[contained], total[contained], rtol=1e-3)
        assert np.all(pixel_sum <= total * (1 + 1e-6))
        # the window holds most of a trimmed R = 1.0 jet's pT
        assert np.median(pixel_sum / data["jet_pt"]) > 0.9
        # the leading subjet sits in the central pixel: it is the brightest region
        centre = data["images"][:, 11:14, 11:14, 0].sum(axis=(1, 2))
        assert np.all(centre > 0)
    attrs = image_attrs(out["qcd"])
    assert attrs["sample"] == "qcd" and attrs["images"]["n_eta"] == 25
    with h5py.File(out["qcd"]) as f:
        assert f["images"].chunks[0] <= 1024, "images must be chunked by rows for streaming"


def test_images_are_reproducible(generated, tiny_config, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    make_sample_images(tiny_config, "qcd", [generated["qcd"]], a)
    make_sample_images(tiny_config, "qcd", [generated["qcd"]], b)
    np.testing.assert_array_equal(read_images([a])["images"], read_images([b])["images"])


def test_a_shard_generated_for_another_number_of_shards_is_refused(generated, tmp_path):
    """A shard copied from a study with other n_shards (or left from before the config changed)
    would weigh its events by the wrong fraction of the cross section: one line naming it."""
    from jetimage.config import validate
    from jetimage.formats.errors import InputError

    from .conftest import tiny_raw_config

    raw = tiny_raw_config()
    qcd = next(s for s in raw["samples"] if s["name"] == "qcd")
    n = qcd["n_shards"]
    assert read_run(generated["qcd"])["n_shards"] == n
    qcd["n_shards"] = 3 * n
    out = tmp_path / "qcd.h5"
    with pytest.raises(InputError, match=rf"qcd.root: generated as one of {n} shards, but the sample has "
                                         rf"n_shards: {3 * n}; its events would weigh 3x") as err:
        make_sample_images(validate(raw), "qcd", [generated["qcd"]], out)
    assert "\n" not in str(err.value) and not out.exists()


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_shard_is_one_line_naming_the_file_through_the_command_line(tmp_path, keep):
    """A shard cut short (its ``run`` summary and directory lost) raised uproot's OSError
    traceback from the cross-section scales: now one line naming the file, exit 2, no output."""
    import subprocess
    import sys

    import yaml

    from jetimage.formats.root import JET_BRANCHES, JetTreeWriter

    from .conftest import tiny_raw_config
    from .test_resources import _many_constituent_jets

    whole, shard = tmp_path / "whole.root", tmp_path / "shard0.root"
    _many_constituent_jets(whole, [20] * 50)
    jets = read_jets([whole])
    with JetTreeWriter(whole) as writer:  # a generated shard: jets and the run summary
        writer.extend({**{k: jets[k] for k in JET_BRANCHES}, "constituents": jets.constituents})
        writer.run = {"n_generated": 50, "n_written": 50, "sum_weights": 50.0, "sigma_pb": 1.0,
                      "sigma_err_pb": 0.0, "n_shards": 2}
    blob = whole.read_bytes()
    shard.write_bytes(blob[: int(keep * len(blob))])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw_config()))
    out = tmp_path / "out" / "qcd.h5"
    proc = subprocess.run([sys.executable, "-m", "jetimage", "images", "--config", str(cfg), "--sample",
                           "qcd", "--inputs", str(shard), "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("jetimage images: error:") and str(shard) in last, last
    assert "may be truncated" in last and not out.exists()
