"""Writing outputs: a full disk is an error naming the file, the outputs of a stage
are renamed together, and temporary files of killed processes are removed by the next writer.
The full-disk cases mount a small tmpfs (root, as in CI); the stage-by-stage checks are in
``tests/faults`` (``make test-faults``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jetimage.formats.atomic import atomic_path, atomic_paths
from jetimage.formats.errors import OutputError
from jetimage.formats.hdf5 import ImageWriter


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs, unmounted at the end."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_in_an_atomic_write_names_the_file_and_publishes_nothing(small_disk):
    out = small_disk / "metrics.json"
    with pytest.raises(OutputError, match=f"^{out}: no space left on device"):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"x" * 200_000)
    assert list(small_disk.iterdir()) == []


def test_an_image_file_that_does_not_fit_is_refused_before_hdf5_writes(small_disk):
    out = small_disk / "qcd.h5"
    with pytest.raises(OutputError, match=f"^{out}: no space left on device: writing needs about"):
        with ImageWriter(out, (25, 25, 1), {"sample": "qcd"}) as w:
            w.append(np.ones((10, 25, 25, 1), np.float32), {"labels": np.ones(10, np.int8),
                                                            "weights": np.ones(10)})
    assert list(small_disk.iterdir()) == []


def test_the_outputs_of_a_stage_are_renamed_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "metrics.json", tmp_path / "scores.npz"
    a.write_text("old")
    with pytest.raises(RuntimeError, match="second file failed"):
        with atomic_paths(a, b) as (ta, tb):
            ta.write_text("new")
            raise RuntimeError("second file failed")
    assert a.read_text() == "old" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("new")
        tb.write_text("scores")
    assert a.read_text() == "new" and b.read_text() == "scores"


def test_temporary_files_of_dead_processes_are_removed_by_the_next_writer(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    stale = tmp_path / f".m.{host}.{dead.pid}.tmp.json"
    running = tmp_path / f".m.{host}.{os.getppid()}.tmp.json"  # a live process's: kept
    other_host = tmp_path / f".m.elsewhere.{dead.pid}.tmp.json"  # cannot be checked here: kept
    for p in (stale, running, other_host):
        p.write_text("partial")
    with atomic_path(tmp_path / "m.json") as tmp:
        tmp.write_text("{}")
    assert not stale.exists() and running.exists() and other_host.exists()
    assert (tmp_path / "m.json").read_text() == "{}"
