"""Configuration: schema defaults, and errors that name the offending key."""

from __future__ import annotations

import copy

import pytest
import yaml

from jetimage.config import ConfigError, load, validate

from .conftest import REPO, tiny_raw_config


def test_repo_config_is_valid_and_defaults_are_filled():
    cfg = load(REPO / "config.yaml")
    assert cfg.sample_names == ["wjets", "qcd"]
    assert cfg["images"]["n_eta"] == 25 and cfg["images"]["pixel_eta"] == 0.1
    assert cfg["jets"]["pt_min"] == 250.0 and cfg["jets"]["pt_max"] == 300.0
    minimal = {"samples": [
        {"name": "a", "class": "signal", "pythia": ["HardQCD:all = on"]},
        {"name": "b", "class": "background", "pythia": ["HardQCD:all = on"]},
    ]}
    filled = validate(minimal)
    assert filled["train"]["split"] == {"train": 0.6, "validation": 0.2, "test": 0.2}
    assert filled.sample("a")["n_shards"] == 1
    assert "seed" not in minimal["samples"][0], "validate must not modify its input"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["jets"].update(R="big"), "jets.R"),
        (lambda c: c["images"].update(n_eta=0), "images.n_eta"),
        (lambda c: c["images"].update(centre="middle"), "images.centre"),
        (lambda c: c.update(colour="blue"), "colour"),
        (lambda c: c["samples"][0].update(name="../escape"), "samples[0].name"),
        (lambda c: c["samples"][1].update(name="/abs/path"), "samples[1].name"),
        (lambda c: c["samples"][1].update(name=c["samples"][0]["name"]), "duplicate sample name"),
        (lambda c: c["samples"][0].update({"class": "sig"}), "samples[0].class"),
        (lambda c: c["jets"].update(pt_max=100.0), "jets.pt_max"),
        (lambda c: c["train"]["split"].update(test=0.5), "train.split"),
        (lambda c: c["samples"][0].pop("pythia"), r"samples[0]: sample 'wjets' needs exactly one"),
        (lambda c: c["samples"][0].update(files=["x.root"]), "samples[0]: sample 'wjets' needs"),
        (lambda c: c["samples"][0].update(preset="lhco"), "samples[0].preset"),
    ],
)
def test_bad_config_names_the_key(edit, key):
    raw = copy.deepcopy(tiny_raw_config())
    edit(raw)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate(raw, source="bad.yaml")


def test_load_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("samples: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="unsafe.yaml"):
        load(unsafe)


def test_shard_seeds_are_distinct_and_stable():
    cfg = validate(tiny_raw_config())
    seeds = {(s, i): cfg.shard_seed(s, i) for s in cfg.sample_names for i in range(2)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(1 <= v <= 900_000_000 for v in seeds.values())
    again = validate(yaml.safe_load(yaml.safe_dump(tiny_raw_config())))
    assert all(again.shard_seed(s, i) == v for (s, i), v in seeds.items())
