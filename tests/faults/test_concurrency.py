"""Concurrency: while a tiny workflow trains, a dry run with another configuration,
a refused second run, ``--unlock`` and a run of another study's targets with a configuration that
changes the running study change nothing the running jobs read; the finished metrics equal those
of an undisturbed run with the same seed, and the changed configuration then reruns the study.
Long: ``JETIMAGE_FAULTS=1`` (``make test-faults``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil  # a dependency of Snakemake
import pytest
import yaml

from ..conftest import REPO, tiny_raw_config, wait_for

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not os.environ.get("JETIMAGE_FAULTS"),
                       reason="long fault-injection checks: JETIMAGE_FAULTS=1 (make test-faults)"),
]

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _config(workdir: Path) -> dict:
    raw = tiny_raw_config(n_events=300, study="conc")
    raw["train"].update(epochs=12, patience=50)
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw))
    return raw


def _snakemake(workdir: Path, config: Path, *args: str) -> list[str]:
    """The workflow up to the metrics (the figures add nothing here)."""
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(config), "--cores", "2", *args, "results/conc/metrics.json"]


def _with_another_study(changed: dict) -> dict:
    """``studies: {conc: <changed>, b: <a small study of its own>}``, seed and generation shared."""
    conc = json.loads(json.dumps(changed))
    shared = {"seed": conc.pop("seed"), "generation": conc.pop("generation")}
    conc.pop("study")
    small = json.loads(json.dumps(conc))
    for sample in small["samples"]:
        sample["n_events"], sample["n_shards"] = 40, 1
    return {**shared, "studies": {"conc": conc, "b": small}}


@contextlib.contextmanager
def suspended_training(workdir: Path) -> Iterator[None]:
    """Hold the training jobs running in ``workdir`` (SIGSTOP, then SIGCONT): the other invocations
    then meet a running training however fast this machine trains."""
    jobs = [p for p in psutil.process_iter(["cmdline", "cwd"])
            if p.info["cwd"] == str(workdir) and "train" in (p.info["cmdline"] or [])]
    assert jobs, f"no training process in {workdir}"
    for p in jobs:
        p.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for p in jobs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGCONT)


def test_invocations_while_training_change_nothing_and_metrics_match_an_undisturbed_run(tmp_path):
    quiet, busy = tmp_path / "undisturbed", tmp_path / "disturbed"
    raw = _config(quiet)
    _config(busy)
    other = json.loads(json.dumps(raw))
    other["train"]["split"] = {"train": 0.2, "validation": 0.2, "test": 0.6}
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(_with_another_study(other)))
    other.update(seed=99)
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))

    proc = subprocess.Popen(_snakemake(busy, busy / "config.yaml"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    train_log = busy / "logs" / "conc" / "train.log"
    wait_for(lambda: train_log.exists() and "training convnet" in train_log.read_text(), timeout=900)
    read = {p: p.read_bytes() for p in (busy / "results" / "conc").glob("**/*") if p.is_file()
            and (p.suffix in (".root", ".h5") or p.parent.name == "configs")}
    assert any(p.parent.name == "configs" for p in read) and any(p.suffix == ".h5" for p in read)
    with suspended_training(busy):
        second = [("--dry-run",), (), ("--unlock",)]
        results = {}
        for args in second:
            results[args] = subprocess.run(_snakemake(busy, tmp_path / "other.yaml", *args),
                                           capture_output=True, text=True, timeout=600)
            assert {p: p.read_bytes() for p in read} == read, f"{args} changed what the jobs read"
        # a run of study b only, with a config that also changes conc: not locked out (other outputs);
        # its start-up writes its own snapshots and nothing the running conc jobs read
        other_run = subprocess.run(
            [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(busy), "--configfile",
             str(tmp_path / "both.yaml"), "--cores", "1", "results/b/samples/wjets/shard0.root"],
            capture_output=True, text=True, timeout=600)
        assert other_run.returncode == 0, other_run.stderr[-3000:]
        assert {p: p.read_bytes() for p in read} == read, "another study's run changed what the jobs read"
        assert len(list((busy / "results" / "conc" / "configs").glob("*.json"))) == 2  # its own and A's
        assert "saved" not in train_log.read_text(), "the training ended before it was held"
    assert results[("--dry-run",)].returncode == 0, results[("--dry-run",)].stderr[-2000:]
    refused = results[()]
    assert refused.returncode != 0 and "lock" in (refused.stdout + refused.stderr).lower()
    assert results[("--unlock",)].returncode == 0
    assert proc.wait(timeout=1800) == 0

    undisturbed = subprocess.run(_snakemake(quiet, quiet / "config.yaml"), capture_output=True, text=True,
                                 timeout=1800)
    assert undisturbed.returncode == 0, undisturbed.stderr[-3000:]
    metrics = [json.loads((d / "results" / "conc" / "metrics.json").read_text()) for d in (quiet, busy)]
    assert metrics[0]["n_test"] == metrics[1]["n_test"]
    assert metrics[0] == metrics[1]
    # the changed configuration of conc makes its training and evaluation rerun
    rerun = subprocess.run(_snakemake(busy, tmp_path / "both.yaml", "--dry-run"), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "rule train:" in rerun.stdout and "rule evaluate:" in rerun.stdout, rerun.stdout[-2000:]
