"""Load and validate the workflow configuration.

The configuration is a YAML file checked against the JSON Schema in
``workflow/schemas/config.schema.yaml``; absent keys get the schema's defaults. Errors name the
file and the offending key, e.g. ``config.yaml: samples[1].class: 'sig' is not one of ...``.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

#: The JSON Schema of the configuration, shipped with the workflow.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that does not satisfy the schema or the cross-key rules."""


class Config(dict):
    """A validated configuration: a plain ``dict`` with defaults filled in, plus helpers."""

    source: str = "<dict>"

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


def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys with :class:`numpy.random.SeedSequence`."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _fill_defaults(instance: Any, schema: dict[str, Any]) -> None:
    """Insert the schema's defaults into ``instance`` in place (objects and arrays of objects)."""
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"])


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def validate(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a configuration mapping and return it with defaults filled in.

    Parameters
    ----------
    raw
        The configuration as read from YAML. It is not modified.
    source
        Name of the file it came from, used in error messages.

    Raises
    ------
    ConfigError
        With one message naming the file and every offending key.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(raw).__name__}")
    schema = _schema()
    cfg = copy.deepcopy(raw)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(e.path)
    )
    if errors:
        lines = [f"{source}: {_path(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines))
    _fill_defaults(cfg, schema)
    problems = list(_cross_checks(cfg))
    if problems:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(f"{source}: {p}" for p in problems))
    out = Config(cfg)
    out.source = source
    return out


def _cross_checks(cfg: dict[str, Any]) -> Iterator[str]:
    names = [s["name"] for s in cfg["samples"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield f"samples: duplicate sample name {name!r}"
    classes = {s["class"] for s in cfg["samples"]}
    if classes != {"signal", "background"}:
        yield f"samples: need at least one signal and one background sample, got {sorted(classes)}"
    for i, s in enumerate(cfg["samples"]):
        generated = "pythia" in s or "lhe" in s
        if generated == ("files" in s):
            yield (f"samples[{i}]: sample {s['name']!r} needs either pythia or lhe (generate it) "
                   "or files (read it)")
        if "lhe" in s and not Path(s["lhe"]).is_file():
            yield f"samples[{i}].lhe: {s['lhe']}: no such file"
        if generated and s["n_shards"] > s["n_events"]:
            yield f"samples[{i}].n_shards: {s['n_shards']} shards for {s['n_events']} events"
        s.setdefault("seed", zlib.crc32(s["name"].encode()))
    jets = cfg["jets"]
    if jets["pt_max"] <= jets["pt_min"]:
        yield f"jets.pt_max: {jets['pt_max']} must be above jets.pt_min {jets['pt_min']}"
    split = cfg["train"]["split"]
    if abs(sum(split.values()) - 1.0) > 1e-6:
        yield f"train.split: fractions must sum to 1, got {sum(split.values()):g}"


def load(path: str | Path) -> Config:
    """Read a YAML configuration file (safe loader) and validate it.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or fails validation; the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration: {err.strerror}") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return validate(raw, source=str(path))
