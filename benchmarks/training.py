"""Training throughput with images streamed from HDF5, and the share of step time spent waiting
for input.

Writes a synthetic two-class set of 25 x 25 jet images (two files, chunked by rows as the image
stage writes them), then trains the configured model for a few epochs twice: once streaming
from disk with :class:`jetimage.train.ImageStream` (as ``jetimage train`` does) and once from
arrays already in memory, with the same batches. The input-wait fraction is
``1 - t_memory / t_stream`` per epoch (the first epoch, which compiles, is left out): the extra
time that reading, slicing and shuffling blocks costs the training loop.

Usage::

    python benchmarks/training.py [--n 20000] [--model convnet] [--batch-size 128] [--epochs 3]
                                  [--workers 2] [--dir /tmp/bench]

Prints images/s (streamed and in memory) and the input-wait fraction; target: under 10%.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def write_images(path: Path, n: int, label: int, seed: int) -> None:
    """``n`` synthetic 25 x 25 one- or two-prong images with class ``label``."""
    from jetimage.formats.hdf5 import ImageWriter

    rng = np.random.default_rng(seed)
    eta, phi = np.meshgrid(np.arange(25) - 12.0, np.arange(25) - 12.0, indexing="ij")
    with ImageWriter(path, (25, 25, 1), {"sample": f"bench{label}"}) as w:
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            angle = rng.uniform(0, 2 * np.pi, m)
            dist = rng.uniform(3, 6, m)
            frac = rng.uniform(0.3, 0.5, m) if label else rng.uniform(0.0, 0.15, m)
            x2, y2 = dist * np.cos(angle), dist * np.sin(angle)
            img = (1 - frac)[:, None, None] * np.exp(-(eta**2 + phi**2)[None] / 2.0)
            img = img + frac[:, None, None] * np.exp(
                -((eta[None] - x2[:, None, None]) ** 2 + (phi[None] - y2[:, None, None]) ** 2) / 2.0)
            w.append((250 * img)[..., None].astype(np.float32),
                     {"labels": np.full(m, label, np.int8), "weights": np.ones(m)})


class EpochTimer:
    """Keras callback recording the wall time of each epoch (s)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.t0)

        return Timer()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000, help="images per class")
    p.add_argument("--model", default="convnet")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=1024)
    p.add_argument("--shuffle-blocks", type=int, default=16)
    p.add_argument("--dir", default=None, help="where to write the images (default: a temporary folder)")
    args = p.parse_args()

    import keras

    from jetimage.formats.hdf5 import read_columns
    from jetimage.models import zoo as models
    from jetimage.stages.train import accelerators
    from jetimage.training.data import ImageStream, balanced_weights

    keras.utils.set_random_seed(1)
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="jetimage-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    paths = [tmp / "signal.h5", tmp / "background.h5"]
    for label, path in zip((1, 0), paths, strict=True):
        if not path.exists():
            write_images(path, args.n, label, seed=label)
    cols = read_columns(paths, ["labels", "weights"])
    labels = cols["labels"].astype(np.float32)
    weights = balanced_weights(labels, cols["weights"])
    rows = np.arange(len(labels))
    stream = ImageStream.create(paths, rows, labels, weights, args.batch_size, args.block_rows,
                                args.shuffle_blocks, shuffle=True, seed=1, workers=args.workers)
    sample = np.concatenate([stream[i][0] for i in range(min(len(stream), 40))])

    def fit(data, **kw):
        model = models.build(args.model, (25, 25, 1), normalization=models.standardizer(sample))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                      weighted_metrics=["accuracy"])
        timer = EpochTimer()
        model.fit(data, epochs=args.epochs, callbacks=[timer], verbose=0, **kw)
        return np.array(timer.times[1:] if len(timer.times) > 1 else timer.times)

    t_stream = fit(stream)
    stream.close()
    # the same number of images from memory (one read of everything, shuffled by Keras)
    from jetimage.formats.hdf5 import read_images

    data = read_images(paths)
    t_mem = fit(data["images"], y=labels, sample_weight=weights, batch_size=args.batch_size,
                shuffle=True)
    n = len(labels)
    per_stream, per_mem = float(np.median(t_stream)), float(np.median(t_mem))
    wait = max(0.0, 1.0 - per_mem / per_stream)
    print(f"backend {keras.backend.backend()}, {accelerators()} GPU(s), {os.cpu_count()} CPUs visible, "
          f"model {args.model}, batch {args.batch_size}, {n} images, workers {args.workers}")
    print(f"streamed from HDF5: {n / per_stream:10.0f} images/s  ({per_stream:.2f} s/epoch)")
    print(f"from memory       : {n / per_mem:10.0f} images/s  ({per_mem:.2f} s/epoch)")
    print(f"input-wait fraction of step time: {100 * wait:.1f}% (target < 10%)")


if __name__ == "__main__":
    main()
