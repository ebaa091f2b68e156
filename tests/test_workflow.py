"""End to end: the real Snakemake workflow on a tiny configuration (a few hundred events, one epoch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from jetimage.io import read_images

from .conftest import REPO, tiny_raw_config

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    raw = tiny_raw_config(n_events=300, study="tiny")
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = _snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, raw


@pytest.mark.slow
def test_workflow_writes_every_output(workflow_run):
    workdir, raw = workflow_run
    out = workdir / "results" / "tiny"
    for sample in raw["samples"]:
        shards = sorted((out / "samples" / sample["name"]).glob("shard*.root"))
        assert len(shards) == sample["n_shards"]
        for shard in shards:
            with uproot.open(shard) as f:
                assert f.classname_of("jets") == "TTree"
                assert f["jets"].num_entries > 0
        assert (out / "images" / f"{sample['name']}.h5").stat().st_size > 0
    data = read_images(sorted((out / "images").glob("*.h5")))
    assert set(np.unique(data["labels"])) == {0, 1}
    history = json.loads((out / "model" / "history.json").read_text())
    assert len(history["loss"]) == 1 and "val_loss" in history
    assert (out / "model" / "model.keras").stat().st_size > 10_000
    metrics = json.loads((out / "metrics.json").read_text())
    text = (out / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON: null for infinite rejections
    for tagger in ("cnn", "mass", "tau21", "delta_r", "mass_tau21", "fisher", "cnn_mass"):
        assert 0.0 <= metrics[tagger]["auc"] <= 1.0
        assert set(metrics[tagger]["rejection"]) == set(metrics[tagger]["rejection_err"]) == {"0.3", "0.5"}
        assert metrics[tagger]["auc_err"] > 0
    # mass alone separates W from QCD even on a few hundred jets
    assert metrics["mass"]["auc"] > 0.7
    for name in ("roc", "cnn_vs_mass", "cnn_vs_tau21", "cnn_vs_delta_r", "mean_images",
                 "pixel_correlation", "training", "cnn_output"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "plots" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    steps = ["pixelization", "translation", "rotation", "flip", "normalization"]
    for mode in ("lorentz", "image"):
        assert list(metrics["preprocessing"][mode]) == steps
    assert (out / "plots" / "preprocessing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = list((workdir / "logs" / "tiny").rglob("*.log"))
    assert len(logs) >= 7 and all(p.stat().st_size > 0 for p in logs)
    assert list((out / "benchmarks").rglob("*.tsv"))


@pytest.mark.slow
def test_second_run_does_nothing(workflow_run):
    workdir, _ = workflow_run
    proc = _snakemake(workdir, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_bad_config_stops_the_workflow_with_the_key(tmp_path):
    raw = tiny_raw_config(study="bad")
    raw["samples"][0]["name"] = "../escape"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = _snakemake(tmp_path, "--dry-run")
    assert proc.returncode != 0
    assert "samples[0].name" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_report_and_lint(workflow_run):
    workdir, _ = workflow_run
    report = workdir / "report.html"
    proc = _snakemake(workdir, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000 and "roc.png" in text and "metrics.json" in text
    assert "cnn_vs_mass.png" in text and "pixel_correlation.png" in text
    proc = _snakemake(workdir, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
