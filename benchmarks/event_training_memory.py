"""Peak memory of the event trainer at 1x and 10x the number of events: flat, because it streams.

A study of kind ``events`` trains with the one trainer of :mod:`jetimage.train`, which reads
the images from HDF5 in blocks (:class:`jetimage.train.ImageStream`): only labels and weights
are held for every event. This benchmark writes two files of whole-event images (64 x 64 x 3
float32, 48 KiB each, as in ``config/events.yaml``), N and 10 N events, and trains the event
study's CNN for one epoch on each, each in its own subprocess (``jetimage train``), with a
shuffle buffer of 64 x 4 images that the 1x file already fills. The trainer holds at most two
such groups of images and the activations of one batch, so its peak should not grow with the
number of events. Peak RSS is
the child's ``ru_maxrss`` (``os.wait4``). For contrast it prints the size of the image file,
i.e. what loading the images into memory would take.

Usage::

    python benchmarks/event_training_memory.py [--events N] [--factor K] [--dir DIR]

Prints a table and, last, one JSON line with the peak RSS of each run in MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jetimage.formats.hdf5 import ImageWriter  # noqa: E402

SHAPE = (64, 64, 3)


def write_images(path: Path, n: int, seed: int = 0, block: int = 2000) -> None:
    """``n`` sparse event-like images (a few hundred deposits each), written block by block."""
    rng = np.random.default_rng(seed)
    with ImageWriter(path, SHAPE, {"sample": path.stem}, chunk_rows=256) as w:
        for start in range(0, n, block):
            m = min(block, n - start)
            labels = rng.integers(0, 2, m)
            images = np.zeros((m, *SHAPE), np.float32)
            rows = np.repeat(np.arange(m), 300)
            a, b = rng.integers(0, 64, len(rows)), rng.integers(0, 64, len(rows))
            c = rng.integers(0, 3, len(rows))
            np.add.at(images, (rows, a, b, c), rng.exponential(5.0, len(rows)) * (1 + labels[rows]))
            w.append(images, {"labels": labels.astype(np.int8), "weights": np.ones(m)})


def config(path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "events.yaml").read_text())
    # a shuffle buffer (block_rows x shuffle_blocks images) that the 1x file already fills
    raw["train"].update(epochs=1, tensorboard=False, standardize_sample=2000, block_rows=64,
                        shuffle_blocks=4)
    path.write_text(yaml.safe_dump(raw))
    return path


def train_peak(cfg: Path, images: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one ``jetimage train`` run."""
    cmd = [sys.executable, "-m", "jetimage", "train", "--config", str(cfg), "--inputs", str(images),
           "--model", str(out / "model.keras"), "--history", str(out / "history.json")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out / "train.log", "w"))
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"training failed: see {out / 'train.log'}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500, help="events in the 1x file")
    parser.add_argument("--factor", type=int, default=10, help="size of the large file in units of 1x")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args(argv)
    scratch = args.dir or Path(tempfile.mkdtemp(prefix="jetimage-evmem-"))
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = config(scratch / "config.yaml")
    result = {}
    print(f"{'events':>8} {'file MiB':>9} {'train s':>8} {'peak RSS MiB':>13}")
    for k in (1, args.factor):
        n = args.events * k
        images = scratch / f"events_{n}.h5"
        if not images.exists():
            write_images(images, n)
        out = scratch / f"run_{n}"
        out.mkdir(exist_ok=True)
        seconds, peak = train_peak(cfg, images, out)
        size = images.stat().st_size / 2**20
        print(f"{n:>8} {size:>9.0f} {seconds:>8.0f} {peak:>13.0f}")
        result[f"{k}x"] = {"events": n, "file_mib": round(size), "seconds": round(seconds, 1),
                           "peak_rss_mib": round(peak, 1)}
    peaks = result[f"{args.factor}x"]["peak_rss_mib"], result["1x"]["peak_rss_mib"]
    result[f"ratio_{args.factor}x_over_1x"] = round(peaks[0] / peaks[1], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
