"""Snapshots of a study's validated configuration, named by their content.

Every job of the workflow reads the snapshot that its own invocation validated,
``results/<study>/configs/<digest>.json`` (every default filled in). A snapshot is written once and
never changed: another invocation with another configuration writes another file, so nothing it
does (a run of other targets, a dry run, ``--unlock``) can change what a running job reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DIGEST_CHARS", "snapshot_path", "snapshot_text", "write_snapshot"]

#: Hexadecimal characters of the SHA-256 digest that name a snapshot (64 bits: no collision among
#: the configurations of one study).
DIGEST_CHARS = 16


def snapshot_text(cfg: Mapping[str, Any]) -> str:
    """The canonical JSON of a study's configuration (sorted keys), which names its snapshot."""
    return json.dumps(dict(cfg), indent=1, sort_keys=True) + "\n"


def snapshot_path(study: str, cfg: Mapping[str, Any], results: str | Path = "results") -> str:
    """``<results>/<study>/configs/<digest>.json``: the path of the snapshot of ``cfg``."""
    digest = hashlib.sha256(snapshot_text(cfg).encode()).hexdigest()[:DIGEST_CHARS]
    return str(Path(results, study, "configs", f"{digest}.json"))


def write_snapshot(cfg: Mapping[str, Any], path: str | Path) -> bool:
    """Write the snapshot of ``cfg`` at ``path`` unless it is there already.

    The file is written beside its target and renamed, so a reader never sees part of it, and an
    existing snapshot is never rewritten (its name is its content). Returns whether it was written.
    """
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(snapshot_text(cfg))
    os.replace(tmp, path)
    return True
