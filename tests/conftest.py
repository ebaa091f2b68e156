"""Shared fixtures: a tiny configuration and small real Pythia samples generated once per session."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jetimage import config as config_mod

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def repo_study(name: str) -> dict:
    """One study of the repo's config.yaml as a single-study configuration (seed, generation)."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    return {"seed": raw["seed"], "generation": raw["generation"], **copy.deepcopy(raw["studies"][name]),
            "study": name}


def tiny_raw_config(n_events: int = 400, study: str = "tiny") -> dict:
    """The jet study of the repo's config.yaml shrunk to a few hundred events per sample and one epoch."""
    raw = repo_study("jets")
    raw["study"] = study
    for sample in raw["samples"]:
        sample["n_events"] = n_events
        sample["n_shards"] = 2
    raw["train"]["epochs"] = 1
    raw["images"]["chunk_size"] = 100
    return raw


@pytest.fixture(scope="session")
def tiny_config() -> config_mod.Config:
    return config_mod.validate(tiny_raw_config())


def generate_samples(cfg: config_mod.Config, out: Path) -> dict[str, Path]:
    """Shard 0 of every sample of a study, generated for real (Pythia + FastJet) into ``out``."""
    from jetimage.stages.generate import generate

    paths = {name: out / f"{name}.root" for name in cfg.sample_names}
    for name, path in paths.items():
        generate(cfg, name, 0, path)
    return paths


def start_jetimage(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m jetimage ARGS`` in the background, its output to ``log``."""
    return subprocess.Popen([sys.executable, "-m", "jetimage", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def train_args(config: Path, images: Path, out: Path) -> list[str]:
    """The ``jetimage train`` arguments writing the model and history into ``out``."""
    return ["train", "--config", str(config), "--inputs", str(images),
            "--model", str(out / "model.keras"), "--history", str(out / "history.json")]


@pytest.fixture(scope="session")
def generated(tiny_config, tmp_path_factory) -> dict[str, Path]:
    """One real shard per sample (Pythia + FastJet), written to ROOT files."""
    return generate_samples(tiny_config, tmp_path_factory.mktemp("generated"))


def tiny_event_config(study: str = "tinyev") -> dict:
    """The event study of the repo's config.yaml shrunk to a few hundred events and one epoch."""
    raw = repo_study("events")
    raw["study"] = study
    raw["events"]["skim"] = False  # keep every event: a few hundred events give few that pass
    raw["generation"]["batch_size"] = 100
    for sample, n in zip(raw["samples"], (60, 150, 100, 100), strict=True):
        sample["n_events"], sample["n_shards"] = n, 1
    raw["images"].update(n_eta=16, n_phi=16, chunk_size=100)
    raw["train"].update(epochs=1, batch_size=32, block_rows=64, shuffle_blocks=2)
    raw["evaluate"] = {"bootstrap": 20}
    return raw


@pytest.fixture(scope="session")
def event_config() -> config_mod.Config:
    return config_mod.validate(tiny_event_config())


@pytest.fixture(scope="session")
def generated_events(event_config, tmp_path_factory) -> dict[str, Path]:
    """One real shard per event sample (Pythia + FastJet fat jets), written to ROOT files."""
    return generate_samples(event_config, tmp_path_factory.mktemp("generated_events"))
