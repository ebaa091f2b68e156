"""The configuration reference (docs/configuration.md) is generated from the schema and current."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetimage.config import SCHEMA_PATH, reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _leaves(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every leaf key under ``node``, written independently of the module:
    properties as ``a.b``, list items as ``a[].b``, map entries as ``a.<...>.b``."""
    children = False
    for name, sub in node.get("properties", {}).items():
        children = True
        yield from _leaves(sub, f"{path}.{name}" if path else name)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        children = True
        yield from _leaves({"properties": items["properties"]}, path + "[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        children = True
        yield from _leaves({"properties": extra["properties"]}, path + ".<*>")
    if not children and path:
        yield path, node


def _study_leaves() -> list[tuple[str, dict[str, Any]]]:
    return list(_leaves(_schema()["$defs"]["study"], ""))


def _key_pattern(path: str) -> re.Pattern[str]:
    """The page's spelling of a key: in backticks, any placeholder name for a map entry."""
    parts = [re.escape(p) for p in path.split(".<*>")]
    return re.compile("`" + r"\.<[A-Za-z_]+>".join(parts) + "`")


def _row(path: str) -> str:
    """The table row of one key on the page."""
    page = reference.markdown()
    pattern = _key_pattern(path)
    found = [line for line in page.splitlines()
             if line.startswith("| ") and pattern.search(line.split("|")[1])]
    assert found, f"no row for {path}"
    return found[-1]


def test_the_page_is_current() -> None:
    assert PAGE.exists(), f"{PAGE} is missing: run `{reference.COMMAND}`"
    assert PAGE.read_text(encoding="utf-8") == reference.markdown(), (
        f"docs/configuration.md differs from the schema: run `{reference.COMMAND}`")


def test_every_leaf_key_of_the_study_schema_is_on_the_page() -> None:
    page = reference.markdown()
    leaves = _study_leaves()
    assert len(leaves) > 50
    missing = [path for path, _ in leaves if not _key_pattern(path).search(page)]
    assert not missing, f"keys missing from the reference: {missing}"


@pytest.mark.parametrize("kind_default", [False, True])
def test_the_page_shows_a_known_default(kind_default: bool) -> None:
    """A default (and a per-kind default where it differs), read from the schema at test time."""
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    leaves = [(p, n) for p, n in _study_leaves() if number(n.get("default"))]
    if kind_default:
        leaves = [(p, n) for p, n in leaves
                  if number(n.get("x-default-events")) and n["x-default-events"] != n["default"]]
    assert leaves
    path, node = leaves[0]
    row = _row(path)
    default_cell = row.split(" | ")[2]
    assert f"`{json.dumps(node['default'])}`" in default_cell
    if kind_default:
        assert f"events: `{json.dumps(node['x-default-events'])}`" in default_cell


@pytest.mark.parametrize("bound, symbol", [("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">")])
def test_the_page_shows_a_known_bound(bound: str, symbol: str) -> None:
    leaves = [(p, n) for p, n in _study_leaves() if bound in n]
    assert leaves, bound
    for path, node in leaves:
        assert f"{symbol} {node[bound]}" in _row(path).split(" | ")[3], path


def test_the_page_shows_the_allowed_values_of_an_enum() -> None:
    path, node = next((p, n) for p, n in _study_leaves() if "enum" in n and len(n["enum"]) > 2)
    allowed = _row(path).split(" | ")[3]
    assert all(f"`{value}`" in allowed for value in node["enum"]), (path, allowed)


def test_check_exits_1_with_one_line_on_a_stale_page(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "configuration.md"
    assert reference.main([str(page), "--check"]) == 1
    assert reference.main([str(page)]) == 0
    assert page.read_text(encoding="utf-8") == reference.markdown()
    assert reference.main([str(page), "--check"]) == 0
    page.write_text(reference.markdown() + "edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert reference.main([str(page), "--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python -m jetimage.config.reference" in err[0] and "stale" in err[0]
    assert [p.name for p in tmp_path.iterdir()] == ["configuration.md"]  # no temporary file left


def test_a_dangling_ref_is_an_error() -> None:
    schema = _schema()
    schema["properties"]["studies"]["additionalProperties"] = {"$ref": "#/$defs/nothing"}
    with pytest.raises(ValueError, match="nothing"):
        reference.markdown(schema)
