"""The configuration reference page, generated from the schema.

Every key of the configuration, as a dotted path relative to its section (``train.learning_rate``,
``samples[].branches.<field>``), with its type, default (and the per-kind default where it differs),
allowed values and description, grouped by top-level section: one Markdown page,
``docs/configuration.md``. The schema (:data:`jetimage.config.SCHEMA_PATH`) is the only source;
the page is regenerated, never edited by hand::

    python -m jetimage.config.reference docs/configuration.md          # write the page
    python -m jetimage.config.reference --check docs/configuration.md  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from jetimage.config import SCHEMA_PATH

__all__ = ["COMMAND", "Row", "load_schema", "main", "markdown", "rows"]

#: The command that writes the page (named by the staleness check and the tests).
COMMAND = "python -m jetimage.config.reference docs/configuration.md"

#: One table row: dotted key, type, default, allowed values, description (Markdown cells).
Row = tuple[str, str, str, str, str]

_KIND_PREFIX = "x-default-"
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def load_schema(path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Read the configuration's JSON Schema.

    Parameters
    ----------
    path
        The schema file (YAML); by default the one shipped in the package.

    Returns
    -------
    dict
        The schema as loaded by :func:`yaml.safe_load`.
    """
    with open(path) as f:
        return yaml.safe_load(f)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (local JSON pointers only) until a schema without one is reached.

    Raises
    ------
    ValueError
        For a reference that is not local or points to nothing.
    """
    seen: set[str] = set()
    while "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            raise ValueError(f"schema: unsupported or circular $ref {ref!r}")
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ValueError(f"schema: $ref {ref!r} points to nothing")
            target = target[part]
        node = target
    return node


def _text(text: str) -> str:
    """Schema text as one Markdown table cell: one line, HTML and table syntax escaped."""
    text = " ".join(str(text).split())
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("*", "\\*")):
        text = text.replace(raw, escaped)
    return text


def _code(value: Any) -> str:
    """A value as inline code (JSON spelling: ``null``, ``true``, ``[0.3, 0.5]``)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|") + "`"


def _type(node: dict[str, Any], root: dict[str, Any]) -> str:
    """The type of a schema node in words (``integer or null``, ``list of number``, ``map``)."""
    if "enum" in node and "type" not in node:
        names = dict.fromkeys(_JSON_TYPES[type(v)] for v in node["enum"])
        return " or ".join(names)
    types = node.get("type")
    if types is None:
        return "any"
    words = []
    for name in [types] if isinstance(types, str) else types:
        if name == "array" and isinstance(node.get("items"), dict):
            items = _resolve(node["items"], root)
            inner = "object" if "properties" in items else _type(items, root)
            words.append(f"list of {inner}")
        elif name == "object" and "properties" not in node and "additionalProperties" in node:
            words.append("map")
        else:
            words.append(name)
    return " or ".join(words)


def _default(node: dict[str, Any]) -> str:
    """The default, and every per-kind default that differs from it."""
    parts = []
    if "default" in node:
        parts.append(_code(node["default"]))
    for key in sorted(node):
        if key.startswith(_KIND_PREFIX) and node[key] != node.get("default"):
            parts.append(f"{key[len(_KIND_PREFIX):]}: {_code(node[key])}")
    return "; ".join(parts)


def _bounds(node: dict[str, Any], root: dict[str, Any]) -> list[str]:
    """The constraints of one node in words (range, enum, pattern, lengths)."""
    out = []
    for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                        ("exclusiveMaximum", "<")):
        if key in node:
            out.append(f"{symbol} {node[key]}")
    if "enum" in node:
        out.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    if "pattern" in node:
        out.append("matches " + _code(node["pattern"]))
    if "minLength" in node:
        out.append("non-empty" if node["minLength"] == 1 else f"at least {node['minLength']} characters")
    lo, hi = node.get("minItems"), node.get("maxItems")
    if lo is not None and lo == hi:
        out.append(f"exactly {lo} items")
    else:
        if lo is not None:
            out.append(f"at least {lo} item{'s' if lo != 1 else ''}")
        if hi is not None:
            out.append(f"at most {hi} items")
    if node.get("uniqueItems"):
        out.append("no repeats")
    if "minProperties" in node:
        n = node["minProperties"]
        out.append(f"at least {n} entr{'ies' if n != 1 else 'y'}")
    items = node.get("items")
    if isinstance(items, dict):
        items = _resolve(items, root)
        if "properties" not in items and (inner := _bounds(items, root)):
            out.append("each " + ", ".join(inner))
    names = node.get("propertyNames")
    if isinstance(names, dict):
        alternatives = names.get("anyOf", [names])
        words = [", ".join(_bounds(_resolve(a, root), root)) for a in alternatives]
        out.append("keys: " + "; or ".join(w for w in words if w))
    return out


def _allowed(node: dict[str, Any], root: dict[str, Any], required: bool) -> str:
    out = (["required"] if required else []) + _bounds(node, root)
    return "; ".join(out)


def rows(node: dict[str, Any], root: dict[str, Any], prefix: str = "",
         required: bool = False) -> Iterator[Row]:
    """The table rows of a schema node and of every key below it.

    Parameters
    ----------
    node
        A schema node (``$ref`` is followed).
    root
        The whole schema, against which ``$ref`` is resolved.
    prefix
        The dotted path of ``node``; ``""`` yields only the rows of its properties.
    required
        Whether the node's parent requires it.

    Yields
    ------
    Row
        ``(key, type, default, allowed, description)``, the node first, then its keys in schema
        order: properties as ``a.b``, list items as ``a[].b``, map entries as ``a.<field>``.
    """
    node = _resolve(node, root)
    if prefix:
        key = "`" + prefix + "`"
        yield (key, _type(node, root), _default(node), _allowed(node, root, required),
               _text(node.get("description", "")))
    yield from _children(node, root, prefix)


def _children(node: dict[str, Any], root: dict[str, Any], prefix: str) -> Iterator[Row]:
    dot = prefix + "." if prefix else ""
    needed = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        yield from rows(sub, root, dot + name, name in needed)
    items = node.get("items")
    if isinstance(items, dict):
        items = _resolve(items, root)
        if "properties" in items:
            yield from _children(items, root, prefix + "[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and prefix:
        extra = _resolve(extra, root)
        placeholder = "<name>" if prefix == "studies" else "<field>"
        if extra is root.get("$defs", {}).get("study"):
            yield (f"`{dot}{placeholder}`", "object", "", "",
                   "One study: every key of the sections below.")
        elif "properties" in extra:
            yield from _children(extra, root, dot + placeholder)
        else:
            yield (f"`{dot}{placeholder}`", _type(extra, root), _default(extra),
                   _allowed(extra, root, False), _text(extra.get("description", "")))


def _table(body: list[Row]) -> list[str]:
    lines = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell for cell in row) + " |" for row in body]
    return lines


def markdown(schema: dict[str, Any] | None = None) -> str:
    """The configuration reference as one Markdown page.

    Parameters
    ----------
    schema
        The configuration's JSON Schema; by default :func:`load_schema` of the shipped one.

    Returns
    -------
    str
        The page: the top-level keys, then one table per section of a study (its scalar keys,
        ``generation``, ``jets``, ``events``, ``samples``, ``images``, ``train``, ``evaluate``,
        ``apply``), ending with a newline.
    """
    root = load_schema() if schema is None else schema
    study = _resolve(root["$defs"]["study"], root)
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from src/jetimage/config/schema.yaml by " + COMMAND + ": do not edit. -->",
        "",
        _text(root.get("description", "")),
        "",
        "Keys are dotted paths relative to their section: `train.learning_rate` is `learning_rate` under "
        "`train:`; `samples[].name` is the `name` of every entry of the `samples` list; `<field>` stands "
        "for a key you choose. A study's keys sit at the top level of a one-study configuration or under "
        "`studies.<name>`. Where the default of a study of kind `events` differs from that of kind "
        "`jets`, both are given (`events: ...`).",
        "",
        "## Top level",
        "",
        *_table([row for name in ("seed", "generation", "studies") if name in root.get("properties", {})
                 for row in rows(root["properties"][name], root, name, name in root.get("required", []))]),
    ]
    properties = study.get("properties", {})
    needed = set(study.get("required", []))
    scalars = [name for name, sub in properties.items() if not _is_section(_resolve(sub, root))]
    lines += ["", "## Study", "", _text(study.get("description", "")), "",
              *_table([row for name in scalars for row in rows(properties[name], root, name,
                                                                name in needed)])]
    for name, sub in properties.items():
        if name in scalars:
            continue
        sub = _resolve(sub, root)
        body = list(rows(sub, root, name, name in needed))
        body[0] = (*body[0][:4], "This section (described above).")
        lines += ["", f"## {name}", "", _text(sub.get("description", "")), "", *_table(body)]
    return "\n".join(lines) + "\n"


def _is_section(node: dict[str, Any]) -> bool:
    """Whether a study key gets a section of its own (an object, or a list of objects)."""
    items = node.get("items")
    return "properties" in node or (isinstance(items, dict) and "properties" in items)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference page, or check that it is current.

    Parameters
    ----------
    argv
        Command-line arguments (default ``sys.argv[1:]``): the page's path, and ``--check`` to
        compare instead of writing.

    Returns
    -------
    int
        0 when the page was written or is current; 1 when ``--check`` finds it stale or missing
        (with one line on stderr naming the command that regenerates it).
    """
    parser = argparse.ArgumentParser(prog="python -m jetimage.config.reference",
                                     description="Write the configuration reference from the schema.")
    parser.add_argument("path", type=Path, help="the Markdown page, e.g. docs/configuration.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the schema")
    args = parser.parse_args(argv)
    text = markdown()
    if args.check:
        try:
            current = args.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            state = "missing" if current is None else "stale"
            command = f"python -m jetimage.config.reference {args.path}"
            print(f"{args.path}: {state} (the schema changed): run `{command}`", file=sys.stderr)
            return 1
        return 0
    _write_atomically(args.path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
