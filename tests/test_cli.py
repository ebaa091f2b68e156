"""Bad input through the real command line: a clear error naming the file, tree or branch, a
non-zero exit and no output; or, for unusable values, a documented skip counted in the log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from jetimage.formats.hdf5 import read_images

from .conftest import tiny_raw_config
from .data.make_corpus import EXPECTED, make

CORPUS = Path(__file__).with_name("data") / "broken"


def test_corpus_script_reproduces_the_committed_corpus(tmp_path):
    made = {p.name for p in make(tmp_path)}
    assert made == set(EXPECTED) == {p.name for p in CORPUS.glob("*.root")}


def _images(tmp_path: Path, path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw_config()))
    out = tmp_path / "out" / "qcd.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "jetimage", "images", "--config", str(cfg), "--sample", "qcd",
         "--inputs", str(path), "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    return proc, out


@pytest.mark.parametrize("name", sorted(k for k, v in EXPECTED.items() if v[0] == "error"))
def test_broken_file_gives_a_clear_error_and_no_output(tmp_path, name):
    proc, out = _images(tmp_path, CORPUS / name)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("jetimage images: error:"), proc.stderr[-2000:]
    assert name in last and EXPECTED[name][1] in last, last
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True


def test_unusable_values_are_skipped_and_counted(tmp_path):
    proc, out = _images(tmp_path, CORPUS / "bad_values.root")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = read_images([out], columns=["event"])
    assert len(data["images"]) == EXPECTED["bad_values.root"][1]
    # jets 3, 4 (non-finite kinematics) and 5 (no constituent) are skipped
    assert data["event"].tolist() == [0, 1, 2, 6, 7]
    assert np.isfinite(data["images"]).all()
    # a file without the run summary of jetimage's own stages keeps its weights (here 1)
    np.testing.assert_array_equal(data["weights"], np.ones(5))
    assert "skipped 3 jets and 4 constituents" in proc.stderr
    totals = data["images"].sum(axis=(1, 2, 3))
    assert totals[2] == 0 and totals[4] == 0, "constituents beyond the image leave it empty"
    # a one-constituent jet gives the image of one particle: all its pT, in one pixel (ngp
    # deposit) or one pixel and its four neighbours (the moment deposit of the lorentz mode)
    import uproot

    one = uproot.open(CORPUS / "bad_values.root")["jets"]["constituent_pt"].array()[6]
    assert len(one) == 1
    assert totals[3] == pytest.approx(float(one[0]), rel=1e-5)
    assert 1 <= np.count_nonzero(data["images"][3]) <= 5


def test_a_variant_without_a_model_path_is_one_line(tmp_path):
    """``evaluate --variants disco`` (no ``=MODEL``) gave a traceback."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw_config()))
    for item in ("disco", "disco=", "=m.keras"):
        proc = subprocess.run(
            [sys.executable, "-m", "jetimage", "evaluate", "--config", str(cfg), "--inputs", "a.h5",
             "--model", "m.keras", "--metrics", str(tmp_path / "m.json"),
             "--variants", "planing=p.keras", item],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith(
            f"jetimage evaluate: error: --variants: {item!r} is not NAME=MODEL"), proc.stderr
