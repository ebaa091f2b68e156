"""Atomic outputs: every writer writes to a temporary file beside the target and renames it when
complete, so a killed job leaves either the previous output or none, never a truncated file that
looks whole. A SIGTERM is turned into one clean exit (:class:`Termination`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jetimage.formats.errors import OutputError

__all__ = ["SPACE_MARGIN", "TERMINATION", "Termination", "atomic_path", "atomic_paths", "close_and_publish",
           "ensure_space", "no_space", "remove_stale_temporaries"]


#: Free space kept beyond what a write is known to need (HDF5 metadata, filesystem blocks).
SPACE_MARGIN = 2**20


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space(err: BaseException | None) -> bool:
    """Whether ``err`` (or an exception it was raised from) is a full disk or quota."""
    while err is not None:
        if isinstance(err, OSError) and (err.errno in _NO_SPACE or "No space left" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def ensure_space(path: str | Path, nbytes: int) -> None:
    """Raise :class:`OutputError` naming ``path`` unless its folder has ``nbytes`` (plus
    :data:`SPACE_MARGIN`) free: HDF5 can crash (segfault) when the disk fills while it writes."""
    st = os.statvfs(Path(path).parent)
    free = st.f_bavail * st.f_frsize
    if free < nbytes + SPACE_MARGIN:
        raise OutputError(f"{path}: no space left on device: writing needs about "
                          f"{(nbytes + SPACE_MARGIN) / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free")


def _temporary(path: Path) -> tuple[Path, str, str]:
    """The temporary name of ``path`` for this process: ``.<stem>.<host>.<pid>.tmp<suffix>``."""
    prefix, suffix = f".{path.stem}.", f".tmp{path.suffix}"  # keep the suffix
    return path.with_name(f"{prefix}{socket.gethostname()}.{os.getpid()}{suffix}"), prefix, suffix


def _remove_stale(path: Path, prefix: str, suffix: str) -> None:
    """Delete temporary files of ``path`` left by killed processes of this host."""
    host = socket.gethostname()
    for old in path.parent.glob(glob.escape(prefix) + "*" + glob.escape(suffix)):
        owner, _, pid = old.name[len(prefix):-len(suffix)].rpartition(".")
        if owner != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            old.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete every temporary file in ``directory`` (:func:`atomic_path`'s names) left by a killed
    process of this host, whatever its target: a resumed stage may never rewrite the target whose
    write was killed (an epoch's checkpoint before the backup it resumes from). Returns them."""
    host, removed = socket.gethostname(), []
    for old in Path(directory).glob(".*.tmp*"):
        head = old.name[:old.name.rfind(".tmp")]
        owner, _, pid = head.rpartition(".")
        if not pid.isdigit() or not owner.endswith("." + host):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            old.unlink(missing_ok=True)
            removed.append(old)
        except PermissionError:  # alive, another user's
            pass
    return removed


class Termination:
    """A signal handler that ends a stage with ``SystemExit(128 + signum)``, which unwinds the
    stack so that atomic writers delete their temporary files.

    It raises once (a second signal must not interrupt the clean-up of the first), and not
    inside :meth:`deferred` blocks (renames and clean-ups): there it raises at the block's end.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0
        self._pending = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self._depth:
                self._pending = True
            else:
                raise SystemExit(128 + signum)

    def install(self, signum: int = signal.SIGTERM) -> None:
        """Handle ``signum`` from now on, as a process that has not been signalled yet."""
        self.signum, self._depth, self._pending = None, 0, False
        signal.signal(signum, self)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            assert self.signum is not None  # _pending is set only by a signal
            raise SystemExit(128 + self.signum)


#: The handler that ``jetimage`` installs for SIGTERM.
TERMINATION = Termination()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Temporary files of ``path`` left by killed processes are deleted first. A full disk met
    in the block is raised as :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, prefix, suffix = _temporary(path)
    _remove_stale(path, prefix, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if no_space(err):
            raise OutputError(f"{path}: no space left on device while writing it "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
        raise
    finally:
        with TERMINATION.deferred():
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several outputs of one stage: all are renamed only if the block
    succeeds, so a failure leaves every earlier output as it was; a SIGTERM meanwhile
    (:data:`TERMINATION`) waits for the last rename."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]
        with TERMINATION.deferred():
            stack.close()


def close_and_publish(handle: Any, atomic: Any, finish: Any, exc_type, exc, tb) -> None:
    """End a writer of a file opened on an :func:`atomic_path` (``atomic``, entered): call
    ``finish`` (None after a failed block), close ``handle``, and rename the file only if all of
    that succeeded; a failure while finishing (a full disk at the last flush) publishes nothing."""
    try:
        if finish is not None:
            finish()
        handle.close()
    except BaseException as err:
        with contextlib.suppress(Exception):
            handle.close()
        atomic.__exit__(type(err), err, err.__traceback__)
        raise
    atomic.__exit__(exc_type, exc, tb)
