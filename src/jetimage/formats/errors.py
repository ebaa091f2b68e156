"""The two errors every stage reports as one line: bad input (a file, tree, branch or value named)
and an output that could not be written.
"""

from __future__ import annotations

__all__ = ["InputError", "OutputError"]


class InputError(ValueError):
    """An input file that cannot be used; the message names the file, tree or branch."""


class OutputError(RuntimeError):
    """An output that cannot be written (a full disk); the message names the file."""
