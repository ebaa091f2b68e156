"""Shared fixtures: a tiny configuration and small real Pythia samples generated once per session."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from jetimage import config as config_mod

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def tiny_raw_config(n_events: int = 400, study: str = "tiny") -> dict:
    """The repo's config.yaml shrunk to a few hundred events per sample and one epoch."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw = copy.deepcopy(raw)
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


@pytest.fixture(scope="session")
def generated(tiny_config, tmp_path_factory) -> dict[str, Path]:
    """One real shard per sample (Pythia + FastJet), written to ROOT files."""
    from jetimage.generate import generate

    out = tmp_path_factory.mktemp("generated")
    paths = {}
    for name in tiny_config.sample_names:
        paths[name] = out / f"{name}.root"
        generate(tiny_config, name, 0, paths[name])
    return paths
