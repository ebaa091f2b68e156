"""The package's layout: the import-linter contracts hold, an upward import breaks them, and the
package docstring and docs/architecture.md name every module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jetimage

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "jetimage"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _modules() -> list[str]:
    """Dotted names of every module of the package, relative to it (``stages.train``)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.name != "__init__":
            names.append(".".join(rel.parts))
    return names


def _lint(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_layer_contracts_hold():
    result = _lint(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_layer_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "jetimage", ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "jetimage" / "formats" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom jetimage.stages import train  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "jetimage.formats is not allowed to import jetimage.stages" in result.stdout


def test_the_package_docstring_and_the_architecture_page_name_every_module():
    doc = jetimage.__doc__ or ""
    page = (REPO / "docs" / "architecture.md").read_text()
    for name in _modules():
        assert f"jetimage.{name}`" in doc, f"the package docstring does not name jetimage.{name}"
        assert f"`{name.replace('.', '/')}.py`" in page or f"`{name.replace('.', '/')}.py`," in page, (
            f"docs/architecture.md does not name {name.replace('.', '/')}.py")


def test_no_module_is_over_600_lines_but_the_compiled_kernel():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "_kernels.py":
            n = len(path.read_text().splitlines())
            assert n <= 600, f"{path.relative_to(REPO)}: {n} lines"
