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
        (lambda c: c["samples"][0].pop("pythia"), r"samples[0]: sample 'wjets' needs either"),
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


def _leaves(schema: dict, path: tuple = ()):
    """Every property of the schema with a path into the configuration (samples via item 0)."""
    for key, sub in schema.get("properties", {}).items():
        here = (*path, key)
        if sub.get("type") == "object" and "properties" in sub:
            yield here, sub
            yield from _leaves(sub, here)
        elif sub.get("type") == "array" and isinstance(sub.get("items"), dict) \
                and "properties" in sub["items"]:
            yield here, sub
            yield from _leaves(sub["items"], (*here, 0))
        else:
            yield here, sub


def _wrong_type(sub: dict):
    """A value of a JSON type the key does not allow (``object`` when every type is allowed)."""
    if "enum" in sub:
        return "__no_such_choice__"
    allowed = sub.get("type")
    if allowed is None:
        return object
    allowed = {allowed} if isinstance(allowed, str) else set(allowed)
    candidates = [("seven", {"string"}), (7.5, {"number"}), ("yes", {"string"}), (7, {"integer", "number"}),
                  ({"x": 7}, {"object"}), ([7], {"array"})]
    for value, types in candidates:
        if not types & allowed:
            return value
    return object


def _out_of_range(sub: dict):
    for bound, delta in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1),
                         ("exclusiveMaximum", 0)):
        if bound in sub:
            return sub[bound] + delta
    if sub.get("type") == "array" and "minItems" in sub:
        return []
    return None


def _base() -> dict:
    """The tiny configuration with every optional section present (the event study's too)."""
    raw = tiny_raw_config()
    raw["events"] = yaml.safe_load((REPO / "config" / "events.yaml").read_text())["events"]
    return raw


def _set(raw: dict, path: tuple, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    for key in path[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return raw


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _cases(kind: str):
    from jetimage.config import _schema

    for path, sub in _leaves(_schema()):
        value = _wrong_type(sub) if kind == "type" else _out_of_range(sub)
        if value is object or value is None:
            continue
        yield pytest.param(path, value, id=f"{_fmt(path)}={value!r}")


@pytest.mark.parametrize(("path", "value"), list(_cases("type")))
def test_every_key_with_a_wrong_type_is_named(path, value):
    with pytest.raises(ConfigError) as err:
        validate(_set(_base(), path, value), source="c.yaml")
    assert f"c.yaml: {_fmt(path)}:" in str(err.value)


@pytest.mark.parametrize(("path", "value"), list(_cases("range")))
def test_every_key_out_of_range_is_named(path, value):
    with pytest.raises(ConfigError) as err:
        validate(_set(_base(), path, value), source="c.yaml")
    assert f"c.yaml: {_fmt(path)}:" in str(err.value)
