"""Property-based tests of the configuration's validation (hypothesis).

Random configurations built from the real schema (values of the right kind and in range, and junk:
other types, NaN, infinities, huge and negative numbers, missing and extra keys) either validate or
raise :class:`ConfigError` whose every line names the file and a key; never another exception.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jetimage.config import ConfigError, load, validate_studies
from jetimage.config.validation import study_schema

from .conftest import tiny_event_config, tiny_raw_config

SOURCE = "p.yaml"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: A line of an error: the file, a key (a path such as samples[0].files, or <top level>), the problem.
LINE = re.compile(r"^(  )?p\.yaml: (<top level>|[^\s:][^:]*): \S")

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e8, -1.0, 0.0, 2**64, 1e-320]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
#: Values of no particular kind, some nested.
JUNK = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=4), _SCALARS, max_size=2),
    st.dictionaries(st.integers(-2, 2) | st.floats(allow_nan=True), _SCALARS, max_size=1),
)
EXTRA_KEYS = st.text(min_size=1, max_size=8) | st.sampled_from(["__use_yte__", "colour", "n_eta "])


def _number(sub: dict[str, Any], integer: bool) -> st.SearchStrategy:
    """Numbers in the key's range, its bounds and just beyond them."""
    lo = sub.get("minimum", sub.get("exclusiveMinimum"))
    hi = sub.get("maximum", sub.get("exclusiveMaximum"))
    edges = [v for b in (lo, hi) if b is not None for v in (b, b - 1, b + 1)]
    if integer:
        inner = st.integers(min_value=None if lo is None else math.ceil(lo),
                            max_value=None if hi is None else math.floor(hi))
        return st.one_of(inner, st.sampled_from([int(e) for e in edges] or [0]))
    inner = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    return st.one_of(inner, st.sampled_from([float(e) for e in edges] or [0.0]))


def _of_type(sub: dict[str, Any], kind: str) -> st.SearchStrategy:
    if kind == "integer":
        return _number(sub, True)
    if kind == "number":
        return _number(sub, False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if "pattern" in sub:
            return st.from_regex(sub["pattern"], fullmatch=True).filter(lambda s: len(s) < 12)
        return st.text(min_size=sub.get("minLength", 0), max_size=10)
    if kind == "array":
        item = _value(sub["items"]) if isinstance(sub.get("items"), dict) else JUNK
        return st.lists(item, min_size=sub.get("minItems", 0), max_size=min(sub.get("maxItems", 3), 3))
    if kind == "object":
        return _mapping(sub)
    raise AssertionError(f"type {kind} not covered")


def _valid(sub: dict[str, Any]) -> st.SearchStrategy:
    """Values of the kind the schema asks for (not always valid: a pattern's match may be too long)."""
    if "enum" in sub:
        return st.sampled_from(sub["enum"])
    kinds = sub.get("type")
    if kinds is None:  # anyOf / free: anything
        return JUNK
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return st.one_of(*[_of_type(sub, k) for k in kinds])


def _value(sub: dict[str, Any]) -> st.SearchStrategy:
    """Mostly a value of the right kind, sometimes junk."""
    return st.one_of(st.deferred(lambda: _valid(sub)), st.deferred(lambda: _valid(sub)), JUNK)


def _mapping(sub: dict[str, Any]) -> st.SearchStrategy:
    props = sub.get("properties")
    if props is None:  # a free map (cuts, branches, particle_cuts)
        extra = sub.get("additionalProperties")
        values = _value(extra) if isinstance(extra, dict) else JUNK
        return st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=2)
    required = {k: _value(props[k]) for k in sub.get("required", [])}
    optional = {k: _value(v) for k, v in props.items() if k not in required}
    base = st.fixed_dictionaries(required, optional=optional)
    extra = st.dictionaries(EXTRA_KEYS, JUNK, max_size=1)
    return st.builds(lambda b, e, drop: {**e, **b} if not drop else {k: v for k, v in b.items() if k != drop},
                     base, st.one_of(st.just({}), st.just({}), extra),
                     st.one_of(st.none(), st.none(), st.sampled_from(sorted(props))))


STUDIES = _mapping(study_schema())


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid study of either kind with a few keys replaced, removed or added: deep keys and the
    cross-checks are reached with the rest of the configuration valid."""
    raw = copy.deepcopy(draw(st.sampled_from([tiny_raw_config(), tiny_event_config()])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_leaves(raw)[1:]))
        node = raw
        for key in path[:-1]:
            node = node[key]
        action = draw(st.sampled_from(["junk", "junk", "drop", "extra"]))
        if action == "junk":
            node[path[-1]] = draw(JUNK)
        elif action == "drop" and isinstance(node, dict):
            del node[path[-1]]
        elif isinstance(node, dict):
            node[draw(EXTRA_KEYS)] = draw(JUNK)
    return raw


def _check(raw: Any) -> None:
    """Validate ``raw`` (flat, and as one study under ``studies``): a result or a ConfigError whose
    lines each name the file and a key."""
    forms = [raw]
    if isinstance(raw, dict):
        forms.append({"studies": {"s": raw}})
    for form in forms:
        try:
            validate_studies(form, source=SOURCE)
            event("valid")
        except ConfigError as err:
            event("refused")
            lines = str(err).splitlines()
            if lines[0] == "invalid configuration":
                lines = lines[1:]
            assert lines, str(err)
            bad = [line for line in lines if not LINE.match(line)]
            assert not bad, f"lines that name no file and key: {bad}"


@SETTINGS
@given(STUDIES)
def test_configurations_built_from_the_schema_validate_or_name_a_key(raw):
    _check(raw)


@SETTINGS
@given(_mutated())
def test_valid_configurations_with_random_edits_validate_or_name_a_key(raw):
    _check(raw)


@SETTINGS
@given(st.one_of(JUNK, st.dictionaries(EXTRA_KEYS, JUNK, max_size=3)))
def test_anything_at_all_is_a_config_error_naming_a_key(raw):
    _check(raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_a_yaml_file_gives_the_same_verdict_as_its_mapping(raw):
    """What ``load`` (the stages) says of the file is what validation (the workflow) says of the
    mapping, naming the file."""
    try:
        validate_studies(raw, source=SOURCE)
        expected = None
    except ConfigError as err:
        expected = str(err)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, SOURCE)
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        try:
            load(path)
            got = None
        except ConfigError as err:
            got = str(err).replace(str(path), SOURCE)
    # the same verdict naming the same keys (YAML writes keys sorted: a message may list them otherwise)
    assert _keys(got) == _keys(expected)


def _keys(message: str | None) -> set[str] | None:
    return None if message is None else {m.group(2) for m in map(LINE.match, message.splitlines()) if m}
