"""Faults: a training killed (SIGKILL) at several epochs resumes, through the command line, to the
model of an undisturbed run, bit for bit on CPU; a resume backup made from other inputs or
settings (the split, the seed, the model, the image file) is discarded with one warning line.

Long (a few minutes on 2 cores), so only run with ``JETIMAGE_FAULTS=1`` (``make test-faults``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from ..conftest import start_jetimage, tiny_raw_config, train_args, wait_for
from .test_kills import _two_prong_images

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not os.environ.get("JETIMAGE_FAULTS"),
                       reason="long fault-injection checks: JETIMAGE_FAULTS=1 (make test-faults)"),
]


def _config(path: Path, **train) -> Path:
    raw = tiny_raw_config()
    raw["train"].update({"batch_size": 64, **train})
    path.write_text(yaml.safe_dump(raw))
    return path


def _kill_after(args: list[str], log: Path, epoch: int, epochs: int) -> None:
    """Start ``jetimage train`` and SIGKILL it as soon as it logs the end of ``epoch`` (its
    backup is written before that line; the next one needs a whole epoch)."""
    proc = start_jetimage(args, log)
    wait_for(lambda: f"epoch {epoch}/{epochs}" in log.read_text() or proc.poll() is not None, timeout=600)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    from jetimage.training.loading import register_custom_objects

    register_custom_objects()
    return keras.saving.load_model(path, compile=False).get_weights()


def test_training_killed_at_three_epochs_resumes_to_the_undisturbed_model(tmp_path):
    images = tmp_path / "toy.h5"
    _two_prong_images(images, n=800)
    # a high learning rate, augmentation (random states) and a short patience: the early
    # stopping ends the run before train.epochs and restores an earlier epoch's weights
    epochs = 10
    cfg = _config(tmp_path / "config.yaml", epochs=epochs, patience=3, learning_rate=0.01, augment=True)
    full = start_jetimage(train_args(cfg, images, tmp_path / "full"), tmp_path / "full.log")
    assert full.wait(timeout=600) == 0, (tmp_path / "full.log").read_text()[-3000:]
    reference = json.loads((tmp_path / "full" / "history.json").read_text())
    n = len(reference["loss"])
    best = int(np.argmin(reference["val_loss"])) + 1
    # early, then one and two epochs after the best one: the early stopping's wait count and
    # best weights must survive the kill (a restarted count trained on and kept a worse epoch)
    kills = sorted({min(k, n - 1) for k in (2, best + 1, best + 2)})
    while len(kills) < 3:  # the best epoch near the end: the latest epochs not yet chosen
        kills = sorted({*kills, max(set(range(1, n)) - set(kills))})
    assert len(kills) == 3, (kills, reference["val_loss"])

    args = train_args(cfg, images, tmp_path / "resumed")
    for i, epoch in enumerate(kills):  # a chain: each run resumes the killed one before it
        _kill_after(args, tmp_path / f"killed{i}.log", epoch, epochs)
        assert not (tmp_path / "resumed" / "model.keras").exists()
    resumed = start_jetimage(args, tmp_path / "resumed.log")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    for i in range(1, len(kills)):  # every run after a kill resumed where it stopped
        assert f"after epoch {kills[i - 1]}" in (tmp_path / f"killed{i}.log").read_text()
    text = (tmp_path / "resumed.log").read_text()
    assert f"after epoch {kills[-1]}" in text and "epoch 1/" not in text

    # the same history byte for byte and the same weights, bit for bit
    assert (tmp_path / "resumed" / "history.json").read_bytes() == \
        (tmp_path / "full" / "history.json").read_bytes()
    for a, b in zip(_weights(tmp_path / "full" / "model.keras"),
                    _weights(tmp_path / "resumed" / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "resumed" / "model.backup").exists()


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A folder with an image file, a configuration and a training killed after epoch 1 of 3."""
    where = tmp_path_factory.mktemp("killed")
    _two_prong_images(where / "toy.h5", n=600)
    cfg = _config(where / "config.yaml", epochs=3)
    _kill_after(train_args(cfg, where / "toy.h5", where / "run"), where / "killed.log", 1, 3)
    assert (where / "run" / "model.backup" / "state.npz").exists()
    return where


def _other_split(raw: dict) -> None:
    raw["train"]["split"] = {"train": 0.5, "validation": 0.2, "test": 0.3}


def _other_seed(raw: dict) -> None:
    raw["seed"] += 1


def _other_model(raw: dict) -> None:
    raw["train"]["model"] = "maxout"


#: case -> (change of the configuration, of the image file; what the warning names, None: resumes)
CASES = {
    "split": (_other_split, False, "train.split: "),  # B: a test split with rows trained on
    "seed": (_other_seed, False, "seed: "),
    "model": (_other_model, False, 'train.model: "convnet" then, "maxout" now'),  # C: was a traceback
    "images": (None, True, "inputs[0] toy.h5: content: "),  # the images rule rerun on other events
    "moved": (None, False, None),  # the same inputs and settings in another folder: resumes
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_backup_made_from_other_inputs_or_settings_is_discarded_with_one_line(killed_run, tmp_path, case):
    change, images_changed, named = CASES[case]
    study = tmp_path / "study"
    shutil.copytree(killed_run, study)
    raw = yaml.safe_load((study / "config.yaml").read_text())
    if change is not None:
        change(raw)
    (study / "config.yaml").write_text(yaml.safe_dump(raw))
    if images_changed:
        _two_prong_images(study / "toy.h5", n=600, seed=6)
    args = train_args(study / "config.yaml", study / "toy.h5", study / "run")
    proc = start_jetimage(args, tmp_path / "log")
    proc.wait(timeout=600)
    text = (tmp_path / "log").read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    backup = study / "run" / "model.backup"
    lines = [line for line in text.splitlines() if "resume backup" in line]
    if named is None:
        assert lines == [] and "resuming from the backup" in text and "after epoch 1" in text
        assert "epoch 1/3" not in text
    else:
        assert len(lines) == 1, lines
        assert f"WARNING: the resume backup {backup} was made from other inputs or settings " \
            f"({named}" in lines[0]
        assert lines[0].endswith(": training starts afresh")
        assert "epoch 1/3" in text and "resuming" not in text
    assert (study / "run" / "model.keras").exists() and not backup.exists()
    assert len(json.loads((study / "run" / "history.json").read_text())["loss"]) == 3
