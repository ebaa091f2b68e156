"""Fault injection, stage by stage: every ``jetimage`` stage of a tiny study is killed
(SIGKILL and SIGTERM) at seeded random moments and while it writes, and run with its output
folder on a small tmpfs so that the disk fills. Each time: the earlier output or none under the
final name, a one-line error naming the file for the full disk, and the next run recovers by
itself with the result of an undisturbed run.

Long (about 10 minutes on 2 cores), so only run with ``JETIMAGE_FAULTS=1`` (``make test-faults``);
the full-disk cases need root (tmpfs mounts), as CI has.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot
import yaml

from ..conftest import tiny_raw_config

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not os.environ.get("JETIMAGE_FAULTS"),
                       reason="long fault-injection checks: JETIMAGE_FAULTS=1 (make test-faults)"),
]

#: Kills per stage: one as soon as a temporary output appears, the others at random moments.
N_RANDOM_KILLS = 2


@dataclass(frozen=True)
class Stage:
    """A stage's command line writing into a folder, and its outputs there."""

    name: str
    args: Callable[[Path, Path], list[str]]  # (study folder with the references, output folder)
    outputs: tuple[str, ...]
    compared: tuple[str, ...]  # outputs compared with the undisturbed run's (all by default)

    def paths(self, out: Path) -> list[Path]:
        return [out / o for o in self.outputs]


def _stage(name: str, args, outputs: tuple[str, ...], compared: tuple[str, ...] | None = None) -> Stage:
    return Stage(name, args, outputs, outputs if compared is None else compared)


def _inputs(ref: Path) -> list[str]:
    return [str(ref / "images" / "wjets.h5"), str(ref / "images" / "qcd.h5")]


STAGES = [
    _stage("generate", lambda ref, out: ["generate", "--config", str(ref / "config.yaml"), "--sample",
                                         "qcd", "--shard", "0", "--output", str(out / "qcd.root")],
           ("qcd.root",)),
    _stage("ingest", lambda ref, out: ["ingest", "--config", str(ref / "ingest.yaml"), "--sample", "myqcd",
                                       "--file", str(ref / "samples" / "qcd.root"), "--start", "0",
                                       "--stop", "100", "--output", str(out / "part0.root")],
           ("part0.root",)),
    _stage("images", lambda ref, out: ["images", "--config", str(ref / "config.yaml"), "--sample", "qcd",
                                       "--inputs", str(ref / "samples" / "qcd.root"),
                                       "--output", str(out / "qcd.h5")],
           ("qcd.h5",)),
    _stage("image_mass", lambda ref, out: [
        "image_mass", "--config", str(ref / "config.yaml"), "--inputs",
        f"wjets={ref / 'samples' / 'wjets.root'}", f"qcd={ref / 'samples' / 'qcd.root'}",
        "--output", str(out / "image_mass.json"), "--plot", str(out / "image_mass")],
           ("image_mass.json", "image_mass.pdf", "image_mass.png"),
           ("image_mass.json", "image_mass.png")),
    # the model archive holds time stamps: the history (every epoch's metrics) stands for it
    _stage("train", lambda ref, out: ["train", "--config", str(ref / "config.yaml"), "--inputs",
                                      *_inputs(ref), "--model", str(out / "model.keras"), "--history",
                                      str(out / "history.json")],
           ("model.keras", "history.json"), ("history.json",)),
    _stage("evaluate", lambda ref, out: ["evaluate", "--config", str(ref / "config.yaml"), "--inputs",
                                         *_inputs(ref), "--model", str(ref / "model" / "model.keras"),
                                         "--metrics", str(out / "metrics.json"),
                                         "--scores", str(out / "scores.npz")],
           ("metrics.json", "scores.npz")),
    # PDF files hold their creation date: the PNG stands for the figure
    _stage("plots", lambda ref, out: ["plots", "--config", str(ref / "config.yaml"), "--scores",
                                      str(ref / "scores.npz"), "--history",
                                      str(ref / "model" / "history.json"),
                                      "--outdir", str(out), "--figures", "roc"],
           ("roc.pdf", "roc.png"), ("roc.png",)),
]
BY_NAME = {s.name: s for s in STAGES}
#: tmpfs page size (bytes)
PAGE = 4096


def run_stage(stage: Stage, ref: Path, out: Path, timeout: float = 600) -> tuple[int, str, float]:
    """Run a stage to its end: (exit status, its log, wall seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jetimage", *stage.args(ref, out)], capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


def _array(values) -> tuple[str, tuple[int, ...], bytes]:
    """An array as comparable bytes (NaN equals NaN)."""
    a = np.ascontiguousarray(values)
    return a.dtype.str, a.shape, a.tobytes()


def content(path: Path):
    """What a file holds, free of time stamps and ids: the arrays of ROOT, HDF5 and ``.npz``
    files (and HDF5 attributes); other files (JSON, PNG) byte for byte."""
    if path.suffix == ".root":
        with uproot.open(path) as f:
            return {f"{t}/{b}": _array(ak.to_numpy(ak.flatten(f[t][b].array(), axis=None)))
                    for t in f.keys(cycle=False) for b in f[t].keys()}
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return {k: _array(f[k][...]) for k in f} | {k: str(v) for k, v in f.attrs.items()}
    if path.suffix == ".npz":
        with np.load(path) as f:
            return {k: _array(f[k]) for k in f.files}
    return path.read_bytes()


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.tmp*") if p.is_file()]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Every stage's undisturbed run of a tiny jet study, in order (each stage's inputs are the
    earlier stages' outputs); the wall time of each in ``times.json``."""
    ref = tmp_path_factory.mktemp("study")
    raw = tiny_raw_config(n_events=300, study="faults")
    for sample in raw["samples"]:
        sample["n_shards"] = 1
    (ref / "config.yaml").write_text(yaml.safe_dump(raw))
    raw["samples"][1] = {"name": "myqcd", "class": "background",
                         "files": [str(ref / "samples" / "qcd.root")], "chunk_entries": 100}
    (ref / "ingest.yaml").write_text(yaml.safe_dump(raw))
    times = {}
    for stage, out in [("generate", "samples"), ("ingest", "samples"), ("images", "images"),
                       ("image_mass", "."), ("train", "model"), ("evaluate", "."), ("plots", "plots")]:
        rc, text, times[stage] = run_stage(BY_NAME[stage], ref, ref / out)
        assert rc == 0, text[-3000:]
        if stage == "generate":  # the signal sample, for the stages that need both
            wjets = [a.replace("qcd", "wjets") for a in BY_NAME[stage].args(ref, ref / out)]
            assert subprocess.run([sys.executable, "-m", "jetimage", *wjets]).returncode == 0
        if stage == "images":
            assert run_stage(_wjets_images, ref, ref / out)[0] == 0
    (ref / "times.json").write_text(json.dumps(times))
    return ref


_wjets_images = _stage("images", lambda ref, out: ["images", "--config", str(ref / "config.yaml"),
                                                   "--sample", "wjets", "--inputs",
                                                   str(ref / "samples" / "wjets.root"),
                                                   "--output", str(out / "wjets.h5")], ("wjets.h5",))


def reference(study: Path, stage: Stage) -> dict[str, object]:
    return {o: content(_ref_out(study, stage) / o) for o in stage.compared}


def assert_recovers(stage: Stage, study: Path, out: Path) -> None:
    """The next undisturbed run succeeds, cleans the temporary files of killed runs and gives
    the undisturbed result."""
    rc, text, _ = run_stage(stage, study, out)
    assert rc == 0, text[-3000:]
    assert {o: content(out / o) for o in stage.compared} == reference(study, stage)
    assert temporaries(out) == []


def kill_moments(study: Path, stage: Stage) -> list[float | None]:
    """None (as soon as a temporary output appears), then seeded random times within the
    undisturbed run's wall time."""
    seed = yaml.safe_load((study / "config.yaml").read_text())["seed"]
    wall = json.loads((study / "times.json").read_text())[stage.name]
    rng = np.random.default_rng([seed, STAGES.index(stage)])
    return [None, *rng.uniform(0.3, 1.0, N_RANDOM_KILLS) * wall]


def kill_at(stage: Stage, study: Path, out: Path, moment: float | None, signum: int
            ) -> tuple[int | None, int]:
    """Start the stage and send ``signum`` at ``moment`` (seconds) or when a temporary file of
    its own appears: (its exit status, None if it ended before the signal; its process id)."""
    before = set(temporaries(out))
    proc = subprocess.Popen([sys.executable, "-m", "jetimage", *stage.args(study, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while proc.poll() is None:
        due = set(temporaries(out)) - before if moment is None else time.monotonic() - t0 >= moment
        if due:
            proc.send_signal(signum)
            return proc.wait(timeout=120), proc.pid
        time.sleep(0.005)
    return None, proc.pid


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_a_killed_stage_leaves_the_old_output_or_none_and_the_next_run_recovers(study, stage, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for i, moment in enumerate(kill_moments(study, stage)):
        for signum in (signal.SIGKILL, signal.SIGTERM):
            old = {p: p.read_bytes() for p in stage.paths(out) if p.exists()}
            rc, pid = kill_at(stage, study, out, moment, signum)
            # it finished before the signal, or the signal came during the interpreter's exit,
            # where Python runs no handler (exit status 0): a whole, correct output
            if rc is None or rc == 0:
                assert {o: content(out / o) for o in stage.compared} == reference(study, stage)
                continue
            assert rc in (-signum, 128 + signum), f"{stage.name}: exit status {rc} after signal {signum}"
            now = {p: p.read_bytes() for p in stage.paths(out) if p.exists()}
            if now != old and len(now) == len(stage.paths(out)):
                # the signal came after the outputs were renamed (clean-up, exit): whole and new
                assert {o: content(out / o) for o in stage.compared} == reference(study, stage)
            elif old:  # every output as it was, byte for byte
                assert now == old
            else:  # none (never some outputs of a run without the others)
                assert now == {}
            if signum == signal.SIGTERM:  # a terminated writer removes its temporary files
                assert [p for p in temporaries(out) if f".{pid}.tmp" in p.name] == []
        if i == 0:  # the later kills find an earlier, complete output in place
            assert_recovers(stage, study, out)
    assert_recovers(stage, study, out)


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only), unmounted at the end."""
    where = tmp_path / "full"
    where.mkdir()
    yield where
    subprocess.run(["umount", str(where)], check=False)


#: (stage, size of the tmpfs as a fraction of the stage's outputs): half, and nearly all of it
#: (the disk fills while a stage finishes: the last flush, the second file of a pair); the
#: training stops at its free-space check either way, so it is tried once.
FULL_DISKS = [(s, f) for s in STAGES for f in (0.5, 0.95) if not (s.name == "train" and f > 0.5)]


@pytest.mark.parametrize(("stage", "fraction"), FULL_DISKS, ids=[f"{s.name}-{f}" for s, f in FULL_DISKS])
def test_a_full_disk_is_one_line_naming_the_file_and_the_next_run_recovers(study, stage, tmpfs, fraction):
    # tmpfs counts whole pages: a fraction of the outputs' pages, at least one page short of them
    pages = sum(-(-p.stat().st_size // PAGE) for p in stage.paths(_ref_out(study, stage)))
    size = max(2, min(int(fraction * pages), pages - 1)) * PAGE
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(tmpfs)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}")
    rc, text, _ = run_stage(stage, study, tmpfs)
    last = text.strip().splitlines()[-1]
    assert rc == 2, text[-3000:]
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]
    assert last.startswith(f"jetimage {stage.name}: error: {tmpfs}/") and "no space left on device" in last
    assert [p for p in stage.paths(tmpfs) if p.exists()] == []
    subprocess.run(["mount", "-o", "remount,size=256m", str(tmpfs)], check=True)
    assert_recovers(stage, study, tmpfs)


def _ref_out(study: Path, stage: Stage) -> Path:
    return study / {"generate": "samples", "ingest": "samples", "images": "images", "image_mass": ".",
                    "train": "model", "evaluate": ".", "plots": "plots"}[stage.name]
