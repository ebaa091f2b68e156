"""Configuration: one study or several, kind-dependent defaults, and errors that name the key."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from jetimage.config import ConfigError, load, load_studies, validate, validate_studies

from .conftest import REPO, tiny_event_config, tiny_raw_config


def test_repo_config_is_valid_and_defaults_are_filled():
    studies = load_studies(REPO / "config.yaml")
    assert list(studies) == ["jets", "events"]
    cfg = load(REPO / "config.yaml", "jets")
    assert cfg.kind == "jets" and cfg["study"] == "jets"
    assert cfg.sample_names == ["wjets", "qcd"]
    assert cfg["images"]["n_eta"] == 25 and cfg["images"]["pixel_eta"] == 0.1
    assert cfg["jets"]["pt_min"] == 250.0 and cfg["jets"]["pt_max"] == 300.0
    assert cfg["seed"] == 20151118 and cfg["generation"]["batch_size"] == 250
    ev = load(REPO / "config.yaml", "events")
    raw = yaml.safe_load((REPO / "config.yaml").read_text())["studies"]["events"]
    assert ev.kind == "events" and ev["study"] == "events"
    assert ev.sample_names == [s["name"] for s in raw["samples"]] and ev.sample_names[0] == "gluino"
    assert [s["class"] for s in ev["samples"]][1:] == ["background"] * (len(raw["samples"]) - 1)
    assert ev["seed"] == 20151118, "the shared seed reaches every study"
    assert ev["generation"]["batch_size"] == raw["generation"]["batch_size"] != 250, \
        "a study's own generation replaces the shared one"
    assert ev["images"]["n_eta"] == raw["images"]["n_eta"]
    assert ev["images"]["channels"] == ["em", "had", "charged_count"]
    assert ev["train"]["model"] == "bhimji" and ev["train"]["transform"] == "log1p"
    assert ev["events"]["selection"]["n_min"] == 3
    minimal = {"samples": [
        {"name": "a", "class": "signal", "pythia": ["HardQCD:all = on"]},
        {"name": "b", "class": "background", "pythia": ["HardQCD:all = on"]},
    ]}
    filled = validate(minimal)
    assert filled.kind == "jets" and filled["study"] == "jets"
    assert filled["train"]["split"] == {"train": 0.6, "validation": 0.2, "test": 0.2}
    assert filled.sample("a")["n_shards"] == 1
    assert "seed" not in minimal["samples"][0], "validate must not modify its input"


def _minimal(kind: str | None = None, **sections) -> dict:
    raw = {"samples": [
        {"name": "a", "class": "signal", "pythia": ["HardQCD:all = on"]},
        {"name": "b", "class": "background", "pythia": ["HardQCD:all = on"]},
    ], **sections}
    if kind is not None:
        raw["kind"] = kind
    return raw


def test_the_kind_sets_the_defaults():
    jets, events = validate(_minimal()), validate(_minimal("events"))
    assert jets["images"]["n_eta"] == jets["images"]["n_phi"] == 25
    assert jets["images"]["intensity"] == "pt" and jets["images"]["channels"] == ["total"]
    assert jets["train"]["model"] == "convnet" and jets["train"]["transform"] == "none"
    assert jets["train"]["standardize"] is True and jets["evaluate"]["bootstrap"] == 100
    assert jets["generation"]["batch_size"] == 250
    assert events["study"] == "events", "a study of kind events writes to results/events/ by default"
    assert events["images"]["n_eta"] == events["images"]["n_phi"] == 64
    assert events["images"]["intensity"] == "e"
    assert events["images"]["channels"] == ["em", "had", "charged_count"]
    assert events["train"]["model"] == "bhimji" and events["train"]["transform"] == "log1p"
    assert events["train"]["standardize"] is False and events["train"]["epochs"] == 10
    assert events["train"]["split"] == {"train": 0.5, "validation": 0.15, "test": 0.35}
    assert events["evaluate"]["bootstrap"] == 300 and events["generation"]["batch_size"] == 500
    # keys without a kind-specific default are shared, and explicit values win over the kind's
    assert events["images"]["eta_max"] == jets["images"]["eta_max"] == 2.5
    assert events["events"]["selection"]["lead_pt_min"] == 440.0
    mine = validate(_minimal("events", images={"n_eta": 20}, train={"model": "convnet"}))
    assert mine["images"]["n_eta"] == 20 and mine["images"]["n_phi"] == 64
    assert mine["train"]["model"] == "convnet"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["samples"][0].update(truth="W"), "samples[0].truth: 'W' labels jets"),
        (lambda c: c["samples"][1].update(cuts={"jet_pt": {"min": 300}}), "samples[1].cuts"),
        (lambda c: c["samples"][1].update(files=["x.root"]) or c["samples"][1].pop("pythia"),
         "samples[1].preset: a study of kind events"),
        (lambda c: c.update(kind="photons"), "kind"),
    ],
)
def test_bad_event_study_names_the_key(edit, key):
    raw = tiny_event_config()
    edit(raw)
    with pytest.raises(ConfigError, match="bad.yaml: " + re.escape(key)):
        validate(raw, source="bad.yaml")


def _two_studies() -> dict:
    jets, events = tiny_raw_config(), tiny_event_config()
    shared = {"seed": jets.pop("seed"), "generation": jets.pop("generation")}
    events.pop("seed")
    jets.pop("study"), events.pop("study")
    return {**shared, "studies": {"small": jets, "ev": events}}


def test_several_studies_validate_each_with_the_shared_keys():
    raw = _two_studies()
    raw["seed"] = 7
    before = copy.deepcopy(raw)
    studies = validate_studies(raw, source="two.yaml")
    assert raw == before, "validate_studies must not modify its input"
    assert list(studies) == ["small", "ev"]
    small, ev = studies["small"], studies["ev"]
    assert (small["study"], small.kind, ev["study"], ev.kind) == ("small", "jets", "ev", "events")
    assert small["seed"] == ev["seed"] == 7
    assert small["generation"] == {**raw["generation"], "sqrt_s": 13000.0}
    assert ev["generation"]["batch_size"] == 100, "the event study keeps its own generation"
    assert small["images"]["n_eta"] == 25 and ev["images"]["n_eta"] == 16
    assert small.results("metrics.json") == "results/small/metrics.json"
    assert validate(raw, study="ev") == ev
    with pytest.raises(ConfigError, match=r"two.yaml: studies: .*several studies \['ev', 'small'\]"):
        validate(raw, source="two.yaml")
    with pytest.raises(ConfigError, match=r"no study named 'nope'"):
        validate(raw, source="two.yaml", study="nope")
    # a single-study file is a study of that name too
    assert validate(tiny_raw_config(), study="tiny")["study"] == "tiny"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda r: r["studies"]["ev"]["images"].update(n_eta=0), "studies.ev.images.n_eta"),
        (lambda r: r["studies"]["small"].update(colour="blue"), "studies.small: Additional properties"),
        (lambda r: r["studies"]["ev"]["samples"][0].update(truth="W"), "studies.ev.samples[0].truth"),
        (lambda r: r["studies"]["small"]["train"]["split"].update(test=0.5), "studies.small.train.split"),
        (lambda r: r["studies"]["small"]["samples"][0].update({"class": "background"}),
         "studies.small.samples: need at least one signal"),
        (lambda r: r["studies"].update({"../up": r["studies"]["ev"]}), "studies: '../up' does not match"),
        (lambda r: r.update(kind="jets"), "<top level>: Additional properties"),
        (lambda r: r.update(studies={}), "studies: {} should be non-empty"),
    ],
)
def test_errors_in_several_studies_name_the_study(edit, key):
    raw = _two_studies()
    edit(raw)
    with pytest.raises(ConfigError, match="two.yaml: " + re.escape(key)):
        validate_studies(raw, source="two.yaml")


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


def _base(kind: str) -> dict:
    """A tiny study of ``kind`` with every optional section present (a jet study with the
    events section and its selection too)."""
    if kind == "events":
        return tiny_event_config()
    raw = tiny_raw_config()
    raw["events"] = yaml.safe_load((REPO / "config" / "events.yaml").read_text())["events"]
    return raw


def _set(raw: dict, path: tuple, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    for key, after in zip(path[:-1], path[1:], strict=True):
        if isinstance(key, str) and key not in node:
            node[key] = [] if isinstance(after, int) else {}
        elif isinstance(key, int) and key >= len(node):  # a list empty by default (train.variants)
            node.append({})
        node = node[key]
    node[path[-1]] = value
    return raw


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _cases(what: str):
    """Every key of the study schema with a bad value, in a flat jet study and in an event study
    given under ``studies`` (whose errors are prefixed ``studies.<name>.``)."""
    from jetimage.config.validation import study_schema

    for path, sub in _leaves(study_schema()):
        value = _wrong_type(sub) if what == "type" else _out_of_range(sub)
        if value is object or value is None:
            continue
        for form in ("jets", "events"):
            yield pytest.param(form, path, value, id=f"{form}:{_fmt(path)}={value!r}")


def _check_named(form: str, path: tuple, value) -> None:
    raw = _set(_base(form), path, value)
    where = _fmt(path)
    if form == "events":
        raw = {"studies": {"ev": raw}}
        where = f"studies.ev.{where}"
    with pytest.raises(ConfigError) as err:
        validate(raw, source="c.yaml")
    assert f"c.yaml: {where}:" in str(err.value)


def test_the_walk_covers_the_keys_of_both_kinds():
    cases = {p.values[1] for p in _cases("type")}
    assert {("kind",), ("events", "selection", "n_min"), ("images", "channels"), ("train", "transform"),
            ("samples", 0, "forbid_final"), ("jets", "R"), ("evaluate", "bootstrap")} <= cases


@pytest.mark.parametrize(("form", "path", "value"), list(_cases("type")))
def test_every_key_with_a_wrong_type_is_named(form, path, value):
    _check_named(form, path, value)


@pytest.mark.parametrize(("form", "path", "value"), list(_cases("range")))
def test_every_key_out_of_range_is_named(form, path, value):
    _check_named(form, path, value)
