"""Load and validate the configuration: one schema, shipped inside the package.

A configuration holds one study (its keys at the top level) or several under ``studies``
(name -> study, with ``seed`` and ``generation`` shared). A study has a *kind*, ``jets`` or
``events``: what one example is. Every stage takes the :class:`Config` of one study, a plain
``dict`` with every default filled in. Defaults that depend on the kind are written in the
schema as ``x-default-<kind>`` beside ``default``. Errors name the file and the offending key,
e.g. ``config.yaml: samples[1].class: 'sig' is not one of ...``.
"""

from __future__ import annotations

import copy
import functools
import glob
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import numpy as np
import yaml

__all__ = ["Config", "ConfigError", "EXAMPLE_VARIABLES", "Kind", "PIXEL_MODELS", "SCHEMA_PATH", "SafeLoader",
           "YTE_KEY", "derive_seed", "load", "load_studies", "readable", "validate", "validate_studies"]

#: The JSON Schema of the configuration (package data, so an installed wheel validates too).
SCHEMA_PATH = Path(str(resources.files("jetimage.config") / "schema.yaml"))
#: What one example of a study is.
Kind = Literal["jets", "events"]
#: The key by which Snakemake's YTE templating runs Python found in a configuration's values.
YTE_KEY = "__use_yte__"


class ConfigError(ValueError):
    """A configuration that does not satisfy the schema or the cross-key rules."""


class _YAMLProblem(yaml.YAMLError):
    """A YAML document that jetimage refuses although PyYAML could read it (a tag, a duplicate key)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only, no Python objects) that also refuses a key given twice
    in one mapping, where PyYAML keeps the last value silently, and names any tag it refuses."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first:
                    raise _YAMLProblem(line, f"key {key!r} given twice in one mapping (first on line "
                                             f"{first[key]}): keep one")
                first[key] = line
            except TypeError:  # an unhashable key: PyYAML's own error below names it
                break
        return super().construct_mapping(node, deep=deep)

    def refuse_tag(self, node: yaml.Node) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _YAMLProblem(node.start_mark.line + 1,
                           f"tag {tag} is refused: tags build Python objects (!!python/... runs code) and "
                           f"jetimage reads configurations with the safe loader: remove the tag")


SafeLoader.add_constructor(None, SafeLoader.refuse_tag)


def readable(name: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 (``surrogateescape``) shown as
    ``\\xff``, other unencodable characters escaped."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return ascii(name)[1:-1]


class Config(dict):
    """The validated configuration of one study: a ``dict`` with defaults filled in, plus helpers."""

    source: str = "<dict>"

    @property
    def kind(self) -> Kind:
        return self["kind"]

    def sample(self, name: str) -> dict[str, Any]:
        """The sample called ``name``."""
        for sample in self["samples"]:
            if sample["name"] == name:
                return sample
        raise ConfigError(f"{self.source}: samples: no sample named {name!r}")

    @property
    def sample_names(self) -> list[str]:
        return [s["name"] for s in self["samples"]]

    def shard_seed(self, sample: str, shard: int) -> int:
        """Pythia seed of one generation shard, in Pythia's range [1, 900000000]."""
        return derive_seed(self["seed"], self.sample(sample)["seed"], shard) % 900_000_000 + 1

    def results(self, *parts: str) -> str:
        """A path under ``results/<study>/``."""
        return str(Path("results", self["study"], *parts))


#: |eta| acceptance of the trackers of ATLAS and CMS (Run 2-3): charged particles beyond it have no
#: track, so no known vertex.
TRACKER_ETA = 2.5


#: The physics variables of an example per kind (HDF5 columns beside the images, branches of the
#: study's tree) that a model (``train.variables``) or the two-stage tagger can take.
EXAMPLE_VARIABLES: dict[str, tuple[str, ...]] = {
    "jets": ("jet_pt", "jet_eta", "jet_m", "tau21", "delta_r", "n_subjets"),
    "events": ("n_fatjets", "mj", "lead_pt", "deta12"),
}


def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys with :class:`numpy.random.SeedSequence`."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


@functools.cache
def _parsed_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.load(f, Loader=SafeLoader)  # noqa: S506 (a subclass of yaml.SafeLoader)


def _root_schema() -> dict[str, Any]:
    # parsed once per process (it took 0.15 s, twice per validation); a copy, so no caller changes it
    return copy.deepcopy(_parsed_schema())


def study_schema() -> dict[str, Any]:
    """The schema of one study."""
    return _root_schema()["$defs"]["study"]


def _fill_defaults(instance: Any, schema: dict[str, Any], kind: str) -> None:
    """Insert the schema's defaults (those of ``kind`` first) into ``instance``, in place."""
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            default = sub.get(f"x-default-{kind}", sub.get("default"))
            if key not in instance and (f"x-default-{kind}" in sub or "default" in sub):
                instance[key] = copy.deepcopy(default)
            if key in instance:
                _fill_defaults(instance[key], sub, kind)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], kind)


def _path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    out = prefix
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _key(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = key if key.isprintable() else repr(key)  # a newline in a key must not break the line
    return f"{path}.{key}" if path else key


def _value_problems(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key, problem) of every value JSON Schema lets through but no stage can use: a non-finite
    number (a ``minimum`` holds for NaN) and a mapping key that is not text (``pattern`` ignores it)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path or "<top level>", f"{value} is not a finite number: give a finite value"
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                yield path or "<top level>", f"key {k!r} is not text: quote it or remove it"
            else:
                yield from _value_problems(v, _key(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _value_problems(v, _key(path, i))


def _type_hint(error: jsonschema.ValidationError) -> str:
    """YAML 1.1 (PyYAML, Snakemake) reads ``1e8`` as text: say so where a number was expected."""
    if error.validator != "type" or not isinstance(error.instance, str) \
            or not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", error.instance.strip()):
        return ""
    return (" (YAML 1.1 reads an exponent without a dot and a sign, such as 1e8 or 1.0e8, as text: "
            "write 1.0e+8)")


def _schema_errors(schema: dict[str, Any], instance: Any, source: str, prefix: str = "") -> list[str]:
    bad = sorted(_value_problems(instance, prefix))
    if any(p.startswith("key ") for _, p in bad):  # JSON Schema needs text keys
        return [f"{source}: {where}: {p}" for where, p in bad]
    shown = {where for where, _ in bad}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance),
                    key=lambda e: [str(p) for p in e.path])
    return [f"{source}: {where}: {p}" for where, p in bad] + [
        f"{source}: {_path(e, prefix)}: {e.message}{_type_hint(e)}" for e in errors
        if _path(e, prefix) not in shown]


def _study(raw: dict[str, Any], source: str, prefix: str = "") -> Config:
    """Validate one study and fill its defaults."""
    cfg = copy.deepcopy(raw)
    errors = _schema_errors(study_schema(), cfg, source, prefix)
    if errors:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(errors))
    _fill_defaults(cfg, study_schema(), cfg.get("kind", "jets"))
    if cfg["images"].get("boost_energy", 0) is None:  # the middle of the jet pT window
        cfg["images"]["boost_energy"] = 0.5 * (cfg["jets"]["pt_min"] + cfg["jets"]["pt_max"])
    if isinstance(cfg["train"]["augment"], bool):  # older configurations: true meant flips and rotations
        cfg["train"]["augment"] = "rotations" if cfg["train"]["augment"] else "none"
    problems = list(_cross_checks(cfg))
    if problems:
        where = f"{source}: {prefix}." if prefix else f"{source}: "
        raise ConfigError("invalid configuration\n  " + "\n  ".join(where + p for p in problems))
    out = Config(cfg)
    out.source = source
    return out


def _refuse_yte(raw: Any, source: str) -> None:
    """Refuse Snakemake's YTE switch: its templates run Python found in the configuration's values."""
    if not isinstance(raw, dict):
        return
    bodies = [raw] + (list(raw["studies"].values()) if isinstance(raw.get("studies"), dict) else [])
    if any(isinstance(b, dict) and YTE_KEY in b for b in bodies):
        raise ConfigError(f"{source}: {YTE_KEY}: YTE templates execute code and are not accepted by "
                          f"jetimage: remove the key and write plain values")


def validate_studies(raw: dict[str, Any], source: str = "<dict>",
                     files: Sequence[str | Path] = ()) -> dict[str, Config]:
    """Validate a configuration mapping: every study by name, with defaults filled in.

    Parameters
    ----------
    raw
        The configuration as read from YAML: one study at the top level, or ``studies``. It is
        not modified.
    source
        Name of the file it came from, used in error messages.
    files
        The files ``raw`` was read from by another loader (Snakemake's ``workflow.configfiles``):
        each is read again with :class:`SafeLoader`, so that a key given twice, a tag and
        ``__use_yte__`` (which that loader drops) are refused too.

    Raises
    ------
    ConfigError
        With one message naming the file and every offending key.
    """
    for path in files:
        _refuse_yte(_read(path), str(path))
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ConfigError(f"{source}: <top level>: the configuration must be a mapping (key: value lines, "
                          f"at least samples), got {got}")
    _refuse_yte(raw, source)
    if "studies" not in raw:
        study = _study(raw, source)
        return {study["study"]: study}
    errors = _schema_errors(_root_schema(), raw, source)
    if errors:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(errors))
    shared: dict[str, Any] = {k: raw[k] for k in ("seed", "generation") if k in raw}
    return {name: _study({**shared, **body, "study": name}, source, f"studies.{name}")
            for name, body in raw["studies"].items()}


def validate(raw: dict[str, Any], source: str = "<dict>", study: str | None = None) -> Config:
    """The validated :class:`Config` of one study (``study``, or the only one)."""
    studies = validate_studies(raw, source)
    if study is None and len(studies) == 1:
        return next(iter(studies.values()))
    if study is None:
        raise ConfigError(f"{source}: studies: the configuration holds several studies "
                          f"{sorted(studies)}; name one (--study)")
    if study not in studies:
        raise ConfigError(f"{source}: studies: no study named {study!r}; have {sorted(studies)}")
    return studies[study]


def _files(patterns: list[str]) -> list[str]:
    """A sample's ``files`` with glob patterns expanded, in order (as the ingest stage reads them)."""
    return [m for p in patterns for m in (sorted(glob.glob(p)) if glob.has_magic(p) else [p])]


def _same_files(samples: list[dict[str, Any]]) -> Iterator[str]:
    """A file read twice, by one sample or by two, compared by resolved path (globs expanded): its
    jets would be counted twice, or land in both classes."""
    owner: dict[Path, int] = {}
    for i, s in enumerate(samples):
        for name in _files(s.get("files") or []):
            try:
                key = Path(name).resolve()
            except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL: check_sample names it
                continue
            if key not in owner:
                owner[key] = i
                continue
            j = owner[key]
            again = "twice in its files" if j == i else f"also by samples[{j}] ({samples[j]['name']!r})"
            yield (f"samples[{i}].files: {readable(name)}: read {again}; a file belongs to one sample once "
                   f"(remove the repeated entry or narrow the glob)")


def _cross_checks(cfg: dict[str, Any]) -> Iterator[str]:
    names = [s["name"] for s in cfg["samples"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield f"samples: duplicate sample name {name!r}"
    classes = {s["class"] for s in cfg["samples"]}
    applies_only = bool(cfg.get("apply", {}).get("model"))  # a study that only applies a model
    if classes != {"signal", "background"} and not applies_only:
        yield f"samples: need at least one signal and one background sample, got {sorted(classes)}"
    for i, s in enumerate(cfg["samples"]):
        yield from _sample_checks(s, f"samples[{i}]", cfg["kind"])
    for name in (cfg.get("apply") or {}).get("samples") or []:
        if name not in names:
            yield f"apply.samples: no sample named {name!r}; have {names}"
    jets = cfg["jets"]
    if jets["pt_max"] <= jets["pt_min"]:
        yield f"jets.pt_max: {jets['pt_max']} must be above jets.pt_min {jets['pt_min']}"
    if any("pileup" in s for s in cfg["samples"]) and jets["eta_max"] + jets["R"] > TRACKER_ETA:
        yield (f"jets.eta_max: {jets['eta_max']:g} + jets.R {jets['R']:g} reaches beyond the tracker "
               f"(|eta| < {TRACKER_ETA:g}), where no track tells pileup from the leading vertex: with "
               f"pileup, keep jets.eta_max <= {TRACKER_ETA - jets['R']:g}")
    if cfg["images"]["normalize"] == "boost" and cfg["images"]["mode"] != "lorentz":
        yield "images.normalize: boost needs images.mode: lorentz (it boosts the constituents)"
    yield from _variant_checks(cfg)
    yield from _task_checks(cfg)
    split = cfg["train"]["split"]
    if abs(sum(split.values()) - 1.0) > 1e-6:
        yield f"train.split: fractions must sum to 1, got {sum(split.values()):g}"
    if cfg["evaluate"]["bootstrap"] == 1:  # metrics.py: the spread of one replica is NaN, a null error
        yield ("evaluate.bootstrap: 1 replica gives no uncertainty (a standard deviation needs 2): use 0 for "
               "none or at least 2 (default 100)")
    yield from _same_files(cfg["samples"])


def _variant_checks(cfg: dict[str, Any]) -> Iterator[str]:
    """The variants' names and methods, and every list of example variables against the kind's."""
    variants = cfg["train"]["variants"]
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        yield f"train.variants: duplicate names in {names}"
    for i, v in enumerate(variants):
        if v.get("method", "none") != "none" and cfg["kind"] != "jets":
            yield (f"train.variants[{i}].method: {v['method']} decorrelates from the jet mass: kind jets "
                   "only (method none trains the nominal CNN with its own variables)")
    kind, have = cfg["kind"], EXAMPLE_VARIABLES[cfg["kind"]]
    lists = [("train.variables", cfg["train"]["variables"]),
             ("evaluate.two_stage", cfg["evaluate"]["two_stage"]),
             *((f"train.variants[{i}].variables", v.get("variables") or []) for i, v in enumerate(variants))]
    for key, names in lists:
        for name in names:
            if name not in have:
                yield f"{key}: {name!r} is no variable of kind {kind}; have {list(have)}"


#: The models whose output is an image (``train.task: images``): ``jetimage.models.zoo.PIXEL_ZOO``,
#: named here because the configuration is checked without importing Keras.
PIXEL_MODELS = ("unet",)


def _task_checks(cfg: dict[str, Any]) -> Iterator[str]:
    """The model against the task; for task images, the channels it sees and learns, and the keys that
    only a tagger has."""
    t = cfg["train"]
    if t["task"] == "labels" and t["model"] in PIXEL_MODELS:
        yield (f"train.model: {t['model']} gives an image per example, not a label: it trains with "
               "train.task: images (pileup removal)")
    if t["task"] != "images":
        if t["samples"] is not None:
            yield "train.samples: only a pixel model (train.task images) trains on a part of the samples"
        return
    names = [s["name"] for s in cfg["samples"]]
    for name in t["samples"] or []:
        if name not in names:
            yield f"train.samples: no sample named {name!r}; have {names}"
    if t["model"] not in PIXEL_MODELS:
        yield (f"train.model: {t['model']} gives a label per example; train.task images needs a model whose "
               f"output is an image: {' or '.join(PIXEL_MODELS)}")
    channels = cfg["images"]["channels"]
    for key, names in (("train.inputs", t["inputs"]), ("train.target", [t["target"]])):
        for name in names:
            if name not in channels:
                yield f"{key}: channel {name!r} is not among images.channels {channels}: add it there"
    if "neutral" not in channels:
        yield (f"images.channels: train.task images needs the channel 'neutral' (the target is the fraction "
               f"{t['target']} / neutral of each pixel), have {channels}: add it")
    if t["target"] in t["inputs"]:
        yield (f"train.inputs: channel {t['target']!r} is the target (train.target): the network would see "
               "what it learns; remove it")
    if t["variables"]:
        yield "train.variables: a pixel model (train.task images) takes the images alone: remove them"
    if t["variants"]:
        yield ("train.variants: variants (decorrelated or with variables) are taggers, train.task labels; "
               "remove them")
    if t["augment"] != "none":
        yield (f"train.augment: {t['augment']} transforms the input images, not the target image: use none "
               "with train.task images")


def _sample_checks(s: dict[str, Any], where: str, kind: str) -> Iterator[str]:
    generated = "pythia" in s or "lhe" in s
    if generated == ("files" in s):
        yield f"{where}: sample {s['name']!r} needs either pythia or lhe (generate it) or files (read it)"
    if "pythia" in s and not s["pythia"] and "lhe" not in s:
        yield f"{where}.pythia: no process: give Pythia commands (e.g. HardQCD:all = on) or an lhe file"
    if "lhe" in s and not Path(s["lhe"]).is_file():
        yield f"{where}.lhe: {s['lhe']}: no such file"
    if generated and s["n_shards"] > s["n_events"]:
        yield f"{where}.n_shards: {s['n_shards']} shards for {s['n_events']} events"
    if kind == "events" and s["truth"] != "none":
        yield f"{where}.truth: {s['truth']!r} labels jets; a study of kind events labels events by class"
    if kind == "events" and "files" in s and s["preset"] not in ("particles", "delphes"):
        yield (f"{where}.preset: a study of kind events reads whole events: use preset particles or "
               f"delphes (the {s['preset']} preset holds jets)")
    if "files" in s and s["preset"] in ("jetimage", "nested"):
        for key in ("constituents_from", "particle_cuts", "truth_from"):
            if s.get(key):
                yield (f"{where}.{key}: the {s['preset']} preset reads jets, not particle collections "
                       f"(use preset particles or delphes)")
    if "pileup" in s and (kind != "jets" or not generated):
        yield (f"{where}.pileup: pileup is overlaid on generated jets (kind jets, with pythia or lhe); "
               "a file's pileup is in its particles")
    if kind == "events" and s["cuts"]:
        yield f"{where}.cuts: cuts select jets; a study of kind events selects events with events.selection"
    if "slha" in s:
        try:
            slha_path(s["slha"])
        except ConfigError as err:
            yield f"{where}.slha: {err}"
    s.setdefault("seed", zlib.crc32(s["name"].encode()))


def slha_path(name: str) -> Path:
    """An SLHA file: a path, or the name of a file shipped in ``jetimage/data``."""
    if Path(name).is_file():
        return Path(name).resolve()
    shipped = Path(str(resources.files("jetimage") / "data" / name))
    if not shipped.is_file():
        raise ConfigError(f"{name!r} is neither a file nor shipped in jetimage/data")
    return shipped


def _read(path: str | Path) -> Any:
    """The YAML (or JSON) document of ``path``, read with :class:`SafeLoader`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: byte {err.start} is not UTF-8: save the configuration as UTF-8") from err
    try:
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 (SafeLoader is yaml.SafeLoader's subclass)
    except _YAMLProblem as err:
        raise ConfigError(f"{path}: {err}") from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}not valid YAML: {err.context + ', ' if err.context else ''}"
                          f"{err.problem}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err


def load_studies(path: str | Path) -> dict[str, Config]:
    """Read a YAML configuration file (:class:`SafeLoader`) and validate every study.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or fails validation; the message names the file.
    """
    return validate_studies(_read(path), source=str(path))


def load(path: str | Path, study: str | None = None) -> Config:
    """Read a YAML configuration file and return the :class:`Config` of one study."""
    return validate(_read(path), source=str(path), study=study)
