"""The TTree writer of both layouts: a failure while finishing publishes nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

import jetimage.formats.atomic
from jetimage.formats.atomic import Termination, atomic_paths, remove_stale_temporaries
from jetimage.formats.root import EVENTS, RUN_BRANCHES, TreeWriter, iterate_tree, read_run


def _events(n: int, with_fatjets: bool = True) -> dict:
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 5, n)
    particles = ak.unflatten(ak.zip({k: rng.uniform(1, 2, counts.sum()) for k in ("pt", "eta", "phi", "e")}
                                    | {"charge": np.zeros(counts.sum(), np.int32),
                                       "pdgid": np.full(counts.sum(), 22, np.int32)}), counts)
    rows = {"event": np.arange(n), "weight": np.ones(n), "pthat": np.full(n, 500.0), "particles": particles}
    if with_fatjets:
        jets = ak.zip({k: np.ones(n) for k in ("pt", "eta", "phi", "m")})
        rows["fatjets"] = ak.unflatten(jets, np.ones(n, int))
    return rows


def test_events_layout_round_trip_with_the_run_summary(tmp_path):
    path = tmp_path / "events.root"
    with TreeWriter(path, EVENTS, basket_size=7) as w:
        for _ in range(3):
            w.extend(_events(5))
        w.run = dict.fromkeys(RUN_BRANCHES, 1.0) | {"n_generated": 20.0, "n_written": 15.0}
    with uproot.open(path) as f:
        assert f.classname_of("events") == "TTree" and f["events"].num_entries == 15
        assert {"n_particles", "particle_pdgid", "n_fatjets", "fatjet_m"} <= set(f["events"].keys())
    assert read_run(path)["n_generated"] == 20.0
    back = ak.concatenate(list(iterate_tree([path], EVENTS)))
    assert len(back) == 15 and ak.all(back.particles.pdgid == 22)


@pytest.mark.parametrize("old_output", [False, True])
def test_a_failure_while_finishing_publishes_nothing(tmp_path, old_output):
    path = tmp_path / "shard0.root"
    if old_output:
        path.write_bytes(b"the earlier output")
    # every row is still buffered when the block ends, so the failure comes in the final flush
    with pytest.raises(KeyError, match="fatjets"), TreeWriter(path, EVENTS) as w:
        w.extend(_events(5, with_fatjets=False))
    assert (path.read_bytes() == b"the earlier output") if old_output else not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if old_output else [])


def test_rows_are_read_block_by_block_across_files(tmp_path):
    from jetimage.formats.hdf5 import ImageWriter
    from jetimage.training.data import iterate_rows

    paths = []
    for i, n in enumerate((23, 17)):
        paths.append(tmp_path / f"f{i}.h5")
        with ImageWriter(paths[-1], (2, 2, 1), {"sample": f"f{i}"}) as w:
            rows = np.arange(n) + 23 * i
            w.append(np.broadcast_to(rows[:, None, None, None], (n, 2, 2, 1)).astype(np.float32),
                     {"labels": np.zeros(n, np.int8), "weights": np.ones(n)})
    wanted = np.array([0, 3, 4, 9, 10, 11, 22, 23, 30, 39])
    got_rows, got = zip(*iterate_rows(paths, wanted, block=3), strict=True)
    np.testing.assert_array_equal(np.concatenate(got_rows), wanted)
    np.testing.assert_array_equal(np.concatenate(got)[:, 0, 0, 0], wanted)  # each image holds its row


def test_contiguous_reads_cut_at_gaps_and_bound_the_span():
    from jetimage.formats.hdf5 import READ_SPAN_BYTES, contiguous_reads

    rows = np.array([0, 1, 2, 10, 11, 500, 501, 502, 503, 2000])
    reads = contiguous_reads(rows, row_bytes=READ_SPAN_BYTES // 100, max_gap=20)  # spans of < 100 rows
    assert reads == [(0, 5), (5, 9), (9, 10)]
    dense = np.arange(0, 1000, 3)
    reads = contiguous_reads(dense, row_bytes=READ_SPAN_BYTES // 100, max_gap=20)
    assert [a for a, _ in reads][:3] == [0, 34, 68] and reads[-1][1] == len(dense)
    assert all(dense[b - 1] - dense[a] < 100 for a, b in reads)


def test_a_sigterm_while_several_outputs_are_renamed_waits_for_the_last_rename(tmp_path, monkeypatch):
    # the handler is called during the first rename: both files are published, then it exits
    termination = Termination()
    monkeypatch.setattr(jetimage.formats.atomic, "TERMINATION", termination)
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        termination(signal.SIGTERM, None)

    monkeypatch.setattr(os, "replace", replace)
    paths = [tmp_path / "metrics.json", tmp_path / "scores.npz"]
    with pytest.raises(SystemExit) as exit_, atomic_paths(*paths) as tmps:
        for tmp in tmps:
            tmp.write_text("new")
    assert exit_.value.code == 128 + signal.SIGTERM
    assert [p.read_text() for p in paths] == ["new", "new"]
    assert sorted(tmp_path.iterdir()) == sorted(paths)


def test_a_sigterm_while_outputs_are_written_publishes_none_and_a_second_one_is_ignored(tmp_path):
    termination = Termination()
    with pytest.raises(SystemExit) as exit_:
        with contextlib.ExitStack() as stack:
            stack.callback(termination, signal.SIGINT, None)  # after the first: no SystemExit(130)
            tmps = stack.enter_context(atomic_paths(tmp_path / "a.json", tmp_path / "b.json"))
            tmps[0].write_text("new")
            termination(signal.SIGTERM, None)
    assert exit_.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_dead_processes_are_removed_whatever_their_target(tmp_path):
    """A resumed training never rewrites the checkpoint whose write was killed: the folder is swept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = socket.gethostname()
    stale = tmp_path / f".epoch_001.{host}.{dead}.tmp.keras"
    alive = tmp_path / f".epoch_002.{host}.{os.getpid()}.tmp.keras"
    foreign = tmp_path / f".epoch_003.not-{host}.{dead}.tmp.keras"
    kept = tmp_path / "epoch_001.keras"
    for p in (stale, alive, foreign, kept):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, foreign, kept))
