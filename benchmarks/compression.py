"""Size of the HDF5 image files and read throughput of the training stream, per compression.

Copies the first ``--rows`` images (and labels, weights) of each given image file into new files
written by :class:`jetimage.io.ImageWriter` with each compression setting (none, lzf, gzip at
levels 1 and 4, always after the shuffle filter), then streams a random 60 % of the rows (a
training split) through :class:`jetimage.train.ImageStream` with the trainer's block reads,
twice (the better pass counts), as ``jetimage train`` does, without the model: the images/s the
input pipeline can deliver. Compare with the images/s the model consumes
(``benchmarks/training.py``): compression costs training nothing while the stream stays faster.

Usage::

    python benchmarks/compression.py FILE.h5 [FILE.h5 ...] [--rows 20000] [--block-rows 1024]
                                     [--shuffle-blocks 16] [--batch-size 128] [--dir DIR]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jetimage.formats.hdf5 import ImageWriter  # noqa: E402
from jetimage.training.data import ImageStream  # noqa: E402

SETTINGS = {"none": ("none", 0), "lzf": ("lzf", 0), "gzip1": ("gzip", 1), "gzip4": ("gzip", 4)}


def copy_rows(src: Path, dst: Path, rows: int, compression: str, level: int) -> tuple[int, float]:
    """Write the first ``rows`` images of ``src`` to ``dst``; (rows written, seconds)."""
    with h5py.File(src, "r") as f:
        n = min(rows, f["images"].shape[0])
        images, labels, weights = f["images"][:n], f["labels"][:n], f["weights"][:n]
    start = time.perf_counter()
    with ImageWriter(dst, images.shape[1:], {"sample": src.stem}, compression=compression, level=level) as w:
        for a in range(0, n, 5000):
            w.append(images[a:a + 5000], {"labels": labels[a:a + 5000], "weights": weights[a:a + 5000]})
    return n, time.perf_counter() - start


def stream_rate(path: Path, args: argparse.Namespace) -> float:
    """Images/s of one epoch of the training stream over a random 60 % of the rows (best of two)."""
    with h5py.File(path, "r") as f:
        n = f["images"].shape[0]
    rows = np.sort(np.random.default_rng(1).choice(n, int(0.6 * n), replace=False))
    best = 0.0
    for epoch in range(2):
        stream = ImageStream.create([path], rows, np.zeros(n), np.ones(n), args.batch_size,
                                    args.block_rows, args.shuffle_blocks, seed=7)
        stream.set_epoch(epoch)
        start = time.perf_counter()
        for i in range(len(stream)):
            stream[i]
        best = max(best, len(rows) / (time.perf_counter() - start))
        stream.close()
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--block-rows", type=int, default=1024)
    parser.add_argument("--shuffle-blocks", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="jetimage-compression-"))
    result: dict = {"when": time.strftime("%Y-%m-%d"), "files": {}}
    print(f"{'file':>16} {'shape':>14} {'setting':>7} {'MiB':>8} {'ratio':>6} {'write s':>8}"
          f" {'images/s':>10}")
    for src in args.files:
        rows: dict = {}
        for name, (compression, level) in SETTINGS.items():
            dst = directory / f"{src.stem}_{name}.h5"
            n, seconds = copy_rows(src, dst, args.rows, compression, level)
            with h5py.File(dst, "r") as f:
                shape, chunks = f["images"].shape, f["images"].chunks
            size = dst.stat().st_size
            rows[name] = {"mib": round(size / 2**20, 2), "write_s": round(seconds, 2),
                          "images_per_s": round(stream_rate(dst, args)), "chunks": list(chunks)}
            rows[name]["ratio"] = round(rows["none"]["mib"] / rows[name]["mib"], 2)
            dst.unlink()
            r = rows[name]
            print(f"{src.stem:>16} {str(shape[1:]):>14} {name:>7} {r['mib']:>8.1f} {r['ratio']:>6.2f} "
                  f"{r['write_s']:>8.2f} {r['images_per_s']:>10}")
        result["files"][src.stem] = {"rows": n, "shape": list(shape[1:]), **rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
