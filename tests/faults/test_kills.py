"""Faults: a killed stage leaves the old output or none, a killed training resumes, and
``snakemake --keep-going`` with one broken sample still produces the other samples' outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jetimage.formats.hdf5 import ImageWriter

from ..conftest import REPO, start_jetimage, tiny_raw_config, train_args, wait_for


def _generation(tmp_path: Path) -> tuple[list[str], Path]:
    raw = tiny_raw_config(n_events=20_000)
    raw["generation"]["batch_size"] = 100
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out" / "shard0.root"
    return ["generate", "--config", str(cfg), "--sample", "qcd", "--shard", "0",
            "--output", str(out)], out


@pytest.mark.parametrize("old_output", [False, True])
def test_killed_generation_leaves_the_old_output_or_none(tmp_path, old_output, generated):
    args, out = _generation(tmp_path)
    out.parent.mkdir(parents=True)
    if old_output:
        shutil.copy(generated["qcd"], out)
        before = out.read_bytes()
    proc = start_jetimage(args, tmp_path / "log")
    # the temporary file exists as soon as writing has started; let a few batches go in
    wait_for(lambda: list(out.parent.glob(".shard0.*.tmp.root")))
    wait_for(lambda: "events, " in (tmp_path / "log").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if old_output:
        assert out.read_bytes() == before
    else:
        assert not out.exists()


def test_terminated_generation_removes_its_temporary_file(tmp_path):
    args, out = _generation(tmp_path)
    proc = start_jetimage(args, tmp_path / "log")
    wait_for(lambda: list(out.parent.glob(".shard0.*.tmp.root")) if out.parent.exists() else False)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(out.parent.iterdir()) == []


def test_a_termination_turned_into_another_error_by_clean_up_code_still_exits_as_terminated(
        monkeypatch, capsys):
    # zipfile.ZipFile.close (in np.savez) raises ValueError when the SystemExit of the SIGTERM
    # handler came while it opened a member: the stage is still reported as terminated
    from jetimage import cli
    from jetimage.formats.atomic import TERMINATION

    monkeypatch.setattr(TERMINATION, "signum", None)  # reset for the later tests of this process
    def stage(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises SystemExit here
            time.sleep(5)
        finally:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it")

    name = "export"
    text, _, options = cli.STAGES[name]
    monkeypatch.setitem(cli.STAGES, name, (text, stage, options))
    old = signal.getsignal(signal.SIGTERM)
    try:
        rc = cli.main([name, "--config", "x", "--model", "x", "--output", "x"])
    finally:
        signal.signal(signal.SIGTERM, old)
    assert rc == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"jetimage {name}: terminated by SIGTERM"


def _two_prong_images(path: Path, n: int = 3000, seed: int = 5) -> None:
    """A learnable image set: two-prong (class 1) against one-prong (class 0) 25x25 jets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    eta, phi = np.meshgrid(np.arange(25) - 12.0, np.arange(25) - 12.0, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, n)
    dist = np.where(labels == 1, rng.uniform(3, 6, n), rng.uniform(0, 6, n))
    frac = np.where(labels == 1, rng.uniform(0.3, 0.5, n), rng.uniform(0.0, 0.15, n))
    x2, y2 = dist * np.cos(angle), dist * np.sin(angle)
    blob1 = np.exp(-(eta**2 + phi**2)[None] / 2.0)
    blob2 = np.exp(-((eta[None] - x2[:, None, None]) ** 2 + (phi[None] - y2[:, None, None]) ** 2) / 2.0)
    images = 250 * ((1 - frac)[:, None, None] * blob1 + frac[:, None, None] * blob2)
    images += rng.exponential(0.5, images.shape) * (rng.random(images.shape) < 0.05)
    with ImageWriter(path, (25, 25, 1), {"sample": "toy"}) as w:
        w.append(images[..., None].astype(np.float32),
                 {"labels": labels.astype(np.int8), "weights": np.ones(n)})


def test_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    images = tmp_path / "toy.h5"
    _two_prong_images(images)
    raw = tiny_raw_config()
    raw["train"].update(epochs=6, patience=20, batch_size=64)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))

    def args(name: str) -> list[str]:
        return train_args(cfg, images, tmp_path / name)

    full = start_jetimage(args("full"), tmp_path / "full.log")
    assert full.wait(timeout=600) == 0, (tmp_path / "full.log").read_text()[-3000:]

    killed = start_jetimage(args("resumed"), tmp_path / "killed.log")
    wait_for(lambda: "epoch 3/6" in (tmp_path / "killed.log").read_text(), timeout=600)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert not (tmp_path / "resumed" / "model.keras").exists()
    resumed = start_jetimage(args("resumed"), tmp_path / "resumed.log")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    text = (tmp_path / "resumed.log").read_text()
    assert "resuming from the backup" in text
    assert "epoch 1/6" not in text and "epoch 4/6" in text, "the resumed run must skip done epochs"

    h_full = json.loads((tmp_path / "full" / "history.json").read_text())
    h_res = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert len(h_full["loss"]) == len(h_res["loss"]) == 6
    # exact: the backup restores weights, optimizer, random states and the early stopping, and
    # an epoch's shuffle follows from the seed and the epoch (faults/test_resume.py kills more)
    assert h_full["val_auc"][-1] > 0.9
    assert h_res == h_full
    assert (tmp_path / "resumed" / "history.json").read_bytes() == \
        (tmp_path / "full" / "history.json").read_bytes()
    assert not (tmp_path / "resumed" / "model.backup").exists()
    # every epoch's model is kept, those written before the kill included, and each one loads
    import keras

    kept = sorted(p.name for p in (tmp_path / "resumed" / "model.checkpoints").iterdir())
    assert kept == [f"epoch_{i:03d}.keras" for i in range(1, 7)]
    keras.saving.load_model(tmp_path / "resumed" / "model.checkpoints" / "epoch_002.keras")


@pytest.mark.slow
def test_keep_going_with_a_broken_sample_builds_the_others(tmp_path):
    raw = tiny_raw_config(n_events=300, study="keepgoing")
    raw["samples"][1]["pythia"].append("NoSuch:setting = on")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
         "--cores", "2", "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode != 0
    out = tmp_path / "results" / "keepgoing"
    assert (out / "images" / "wjets.h5").exists()
    assert not (out / "images" / "qcd.h5").exists()
    assert not (out / "metrics.json").exists()
    log = (tmp_path / "logs" / "keepgoing" / "generate" / "qcd_0.log").read_text()
    assert "Pythia rejected the command 'NoSuch:setting = on'" in log
    # the stage's one-line error reaches the console (the default profile shows failed logs)
    [line] = [x for x in log.splitlines() if x.startswith("jetimage generate: error:")]
    assert line in proc.stdout + proc.stderr


def _toy_training(tmp_path: Path, epochs: int = 2) -> tuple[Path, Path]:
    images = tmp_path / "toy.h5"
    _two_prong_images(images, n=600)
    raw = tiny_raw_config()
    raw["train"].update(epochs=epochs, patience=20, batch_size=64)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg, images


def test_a_corrupt_resume_backup_is_reported_and_training_starts_afresh(tmp_path):
    cfg, images = _toy_training(tmp_path)
    backup = tmp_path / "run" / "model.backup"
    backup.mkdir(parents=True)
    # what a full disk leaves: the metadata of a later epoch, a weights file cut short
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": -1}')
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    proc = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "log").read_text()[-3000:]
    text = (tmp_path / "log").read_text()
    assert "cannot be read" in text and str(backup) in text and "starts afresh" in text
    assert "epoch 1/2" in text and "resuming" not in text
    assert (tmp_path / "run" / "model.keras").exists() and not backup.exists()


def test_a_second_training_of_the_same_model_is_refused_while_one_runs(tmp_path):
    import fcntl

    cfg, images = _toy_training(tmp_path)
    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "model.lock", "w") as lock:  # what a running training holds
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "log")
        assert proc.wait(timeout=600) == 2
    text = (tmp_path / "log").read_text()
    assert "another training of this model is running" in text and "Traceback" not in text
    assert not (tmp_path / "run" / "model.keras").exists()
