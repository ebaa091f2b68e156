"""Configuration: one study or several, kind-dependent defaults, and errors that name the key."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

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
    with pytest.raises(ConfigError, match="bad.yaml: line 2: not valid YAML"):
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


def _above(sub: dict):
    """A value just above the key's maximum (every count has one), else None."""
    if "maximum" in sub:
        return sub["maximum"] + 1
    return sub.get("exclusiveMaximum")


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
        value = {"type": _wrong_type, "range": _out_of_range, "above": _above}[what](sub)
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


# --- Values JSON Schema lets through, YAML that jetimage refuses, bounds, input files ------------------

_TINY_YAML = """\
samples:
  - {name: a, class: signal, pythia: ["HardQCD:all = on"]}
  - {name: b, class: background, pythia: ["HardQCD:all = on"]}
"""


def _write(tmp_path, text: str, name: str = "user.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("section", "key"), [
    ("train: {learning_rate: .nan}", "train.learning_rate"),
    ("images: {pixel_eta: .inf}", "images.pixel_eta"),
    ("jets: {pt_min: -.inf}", "jets.pt_min"),
    ("jets: {R: .NaN}", "jets.R"),
    ("train: {split: {train: .nan, validation: 0.2, test: 0.2}}", "train.split.train"),
    ("evaluate: {efficiencies: [0.3, .nan]}", "evaluate.efficiencies[1]"),
])
def test_non_finite_numbers_are_refused_naming_the_file_and_the_key(tmp_path, section, key):
    # they passed every `minimum` (a comparison with NaN is false) and each job then failed
    path = _write(tmp_path, _TINY_YAML + section + "\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert f"{path}: {key}: " in str(err.value) and "not a finite number" in str(err.value)
    raw = yaml.safe_load(path.read_text())  # the workflow validates Snakemake's mapping
    with pytest.raises(ConfigError, match=re.escape(f"config.yaml: {key}: ")):
        validate_studies(raw, source="config.yaml")
    with pytest.raises(ConfigError, match=re.escape(f"two.yaml: studies.s.{key}: ")):
        validate_studies({"studies": {"s": raw}}, source="two.yaml")


def test_a_key_given_twice_is_refused_naming_the_file_the_key_and_the_line(tmp_path):
    path = _write(tmp_path, _TINY_YAML + "train:\n  epochs: 3\n  batch_size: 64\n  epochs: 30\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == (f"{path}: line 7: key 'epochs' given twice in one mapping (first on line 5): "
                              "keep one")
    # a merge key may be overridden on purpose: not a duplicate
    merged = _write(tmp_path, "base: &b {n_eta: 20, n_phi: 20}\n", "merged.yaml")
    from jetimage.config.validation import _read

    assert _read(merged) == {"base": {"n_eta": 20, "n_phi": 20}}
    merged.write_text("base: &b {n_eta: 20, n_phi: 20}\nimages:\n  <<: *b\n  n_eta: 30\n")
    assert _read(merged)["images"] == {"n_eta": 30, "n_phi": 20}


def test_the_workflow_rereads_its_config_files_safely(tmp_path):
    """Snakemake's loader keeps the last of two equal keys and drops __use_yte__: validate_studies
    reads the files again (``files``, Snakemake's ``workflow.configfiles``)."""
    good = _write(tmp_path, _TINY_YAML, "good.yaml")
    raw = yaml.safe_load(good.read_text())
    assert list(validate_studies(raw, source=str(good), files=[good])) == ["jets"]
    twice = _write(tmp_path, _TINY_YAML + "seed: 1\nseed: 2\n", "twice.yaml")
    with pytest.raises(ConfigError, match=re.escape(f"{twice}: line 5: key 'seed' given twice")):
        validate_studies(raw, source=str(twice), files=[good, twice])
    yte = _write(tmp_path, "__use_yte__: true\n" + _TINY_YAML, "yte.yaml")
    with pytest.raises(ConfigError, match=re.escape(f"{yte}: __use_yte__: YTE templates execute code")):
        validate_studies(raw, source=str(yte), files=[yte])


@pytest.mark.parametrize("where", ["top", "study"])
def test_the_yte_switch_is_refused(tmp_path, where):
    text = ("__use_yte__: true\n" + _TINY_YAML if where == "top" else
            "studies:\n  s:\n    __use_yte__: true\n" + "".join("    " + line + "\n"
                                                             for line in _TINY_YAML.splitlines()))
    path = _write(tmp_path, text)
    message = f"{path}: __use_yte__: YTE templates execute code and are not accepted by jetimage: " \
              "remove the key and write plain values"
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == message
    with pytest.raises(ConfigError) as err:
        validate_studies(yaml.safe_load(text), source=str(path))
    assert str(err.value) == message


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system", "!custom"])
def test_a_tag_is_refused_by_name_on_the_command_line(tmp_path, tag):
    path = _write(tmp_path, _TINY_YAML + f"seed: {tag} ['true']\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: line 4: tag {tag} is refused: ")
    assert "mixed whitespace" not in str(err.value) and "\n" not in str(err.value)
    if tag == "!custom":
        return
    proc = subprocess.run([sys.executable, "-m", "jetimage", "generate", "--config", str(path), "--sample",
                           "a", "--shard", "0", "--output", str(tmp_path / "out.root")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"jetimage generate: error: {err.value}"
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.root").exists()


def _counts(schema: dict, path: str = ""):
    """Every integer (count) of the schema, with its path, samples and variants via their items."""
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        types = sub.get("type")
        if types == "integer" or (isinstance(types, list) and "integer" in types):
            yield here, sub
        yield from _counts(sub, here)
        if isinstance(sub.get("items"), dict):
            yield from _counts(sub["items"], f"{here}[]")


def test_every_count_has_a_maximum_with_its_reason():
    from jetimage.config.validation import _root_schema, study_schema

    counts = [*_counts(_root_schema()), *_counts(study_schema())]
    assert {"samples[].n_shards", "samples[].n_events", "train.epochs", "images.n_eta",
            "evaluate.bootstrap", "images.chunk_size"} <= {p for p, _ in counts}
    unbounded = [p for p, sub in counts if "maximum" not in sub]
    assert not unbounded, f"counts without a maximum: {unbounded}"
    learning_rates = [study_schema()["properties"]["train"]["properties"]["learning_rate"],
                      study_schema()["properties"]["train"]["properties"]["variants"]["items"]["properties"]
                      ["learning_rate"]]
    assert all(lr["maximum"] == 10 and lr["exclusiveMinimum"] == 0 for lr in learning_rates)
    said = {p: " ".join(sub.get("description", "").split()).lower() for p, sub in counts}
    undocumented = [p for p, sub in counts if "at most" not in said[p]
                    and sub.get("maximum") != 9]  # compression_level: gzip's own range
    assert not undocumented, f"counts whose description gives no reason for the maximum: {undocumented}"


@pytest.mark.parametrize(("edit", "key"), [
    (lambda c: c["samples"][0].update(n_shards=1_000_000, n_events=10_000_000), "samples[0].n_shards"),
    (lambda c: c["train"].update(learning_rate=1e8), "train.learning_rate"),
    (lambda c: c["train"].update(epochs=10**9), "train.epochs"),
    (lambda c: c["images"].update(n_eta=100_000), "images.n_eta"),
    (lambda c: c["evaluate"].update(bootstrap=10**7), "evaluate.bootstrap"),
    (lambda c: c.update(seed=2**64), "seed"),
])
def test_huge_values_are_refused_naming_the_key(edit, key):
    raw = tiny_raw_config()
    edit(raw)
    with pytest.raises(ConfigError, match=re.escape(f"bad.yaml: {key}: ") + ".* is greater than the maximum"):
        validate(raw, source="bad.yaml")


def test_learning_rate_written_1e8_is_refused_with_the_yaml_reason(tmp_path):
    path = _write(tmp_path, _TINY_YAML + "train: {learning_rate: 1e8}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: train.learning_rate: '1e8' is not of type "
                                                    "'number' (YAML 1.1 reads an exponent without a dot")):
        load(path)
    path.write_text(_TINY_YAML + "train: {learning_rate: 1.0e+8}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: train.learning_rate: 100000000.0 is greater")):
        load(path)


@pytest.mark.parametrize(("n", "ok"), [(0, True), (1, False), (2, True)])
def test_one_bootstrap_replica_is_refused(n, ok):
    # metrics.py: the standard deviation of one replica is NaN, so the errors were null with n_bootstrap 1
    raw = tiny_raw_config()
    raw["evaluate"]["bootstrap"] = n
    if ok:
        assert validate(raw)["evaluate"]["bootstrap"] == n
        return
    with pytest.raises(ConfigError, match=r"bad.yaml: evaluate.bootstrap: 1 replica gives no uncertainty"):
        validate(raw, source="bad.yaml")


def _read_sample(raw: dict, i: int, files: list[str]) -> None:
    raw["samples"][i].pop("pythia", None)
    raw["samples"][i].update(files=files)


def test_the_same_input_file_twice_is_refused_naming_the_sample_and_the_file(tmp_path):
    for name in ("a.root", "b.root"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "link.root").symlink_to(tmp_path / "a.root")
    a, b, link = (str(tmp_path / n) for n in ("a.root", "b.root", "link.root"))
    raw = tiny_raw_config()
    _read_sample(raw, 0, [a])
    _read_sample(raw, 1, [b])
    validate(raw)
    cases = [
        ([a, str(tmp_path / "a*.root")], [b], f"samples[0].files: {a}: read twice in its files"),
        ([a], [b, link], f"samples[1].files: {link}: read also by samples[0] ('wjets')"),
        ([a], [str(tmp_path / "*.root")], f"samples[1].files: {a}: read also by samples[0] ('wjets')"),
    ]
    for first, second, message in cases:
        bad = copy.deepcopy(raw)
        _read_sample(bad, 0, first)
        _read_sample(bad, 1, second)
        with pytest.raises(ConfigError) as err:
            validate(bad, source="c.yaml")
        assert f"c.yaml: {message}; a file belongs to one sample once" in str(err.value)


def test_a_directory_and_a_name_that_is_not_utf8_are_named(tmp_path):
    from jetimage.stages.ingest import check_sample

    (tmp_path / "data").mkdir()
    assert list(check_sample({"files": [str(tmp_path / "data")]}, "samples[1]")) == [
        f"samples[1].files: {tmp_path / 'data'}: a directory, not a file: give its files, "
        f"e.g. {tmp_path / 'data' / '*.root'}"]
    raw_name = os.fsencode(tmp_path) + b"/caf\xe9.root"  # Latin-1: not UTF-8
    with open(raw_name, "wb"):
        pass
    for files in ([os.fsdecode(raw_name)], [str(tmp_path / "*.root")]):
        problems = list(check_sample({"files": files}, "samples[0]"))
        assert problems == [f"samples[0].files: {tmp_path}/caf\\xe9.root: the file name is not valid UTF-8: "
                            "rename the file (or link it) to a UTF-8 name"]
        problems[0].encode("utf-8")  # printable


@pytest.mark.slow
@pytest.mark.parametrize("case", ["nan", "directory", "twice"])
def test_the_workflow_refuses_at_start_up_naming_the_users_file(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.root").write_bytes(b"")
    raw = tiny_raw_config(study="bad")
    expected = {"nan": "train.learning_rate: nan is not a finite number",
                "directory": f"samples[1].files: {data}: a directory, not a file",
                "twice": f"samples[1].files: {data / 'a.root'}: read also by samples[0]"}[case]
    if case == "nan":
        raw["train"]["learning_rate"] = float("nan")
    else:
        _read_sample(raw, 0, [str(data / "a.root")])
        _read_sample(raw, 1, [str(data)] if case == "directory" else [str(data / "*.root")])
        if case == "directory":
            _read_sample(raw, 0, [str(REPO / "tests" / "data" / "nested_vecvec.root")])
            raw["samples"][0]["preset"] = "nested"
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(config), "--dry-run"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert expected in out, out[-3000:]
    if case != "directory":  # a configuration error names the user's file, not a snapshot
        assert f"{config}: {expected}" in out, out[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("form", "path", "value"), list(_cases("above")))
def test_every_key_above_its_maximum_is_named(form, path, value):
    _check_named(form, path, value)
