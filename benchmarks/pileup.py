"""Cost of pileup: generation of one hard event with its overlay, and the image stage, with and
without pileup, side by side in one run.

The same W events (the same seed) are generated without pileup and at ``--mu`` (default 140) with
the jets of ``config/pileup.yaml`` (R = 1.0 ungroomed, |eta| < 1.5); the pool's generation is
included, as in a shard. Then the image stage (``make_sample_images``: reading, cleaning, the
compiled kernel, the HDF5 writer) images both samples' jets with the study's four vertex channels.
Times are wall seconds of this process (the image stage: best of 3, after a warm-up call that
compiles the kernel); the generation also reports its peak resident memory.

Usage::

    python benchmarks/pileup.py [--events N] [--mu MU] [--pool N]

The last line printed is one JSON object with ``ms_per_event`` (without, with), ``generation_ratio``,
``jets_per_s`` (without, with) and ``images_ratio``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jetimage import config  # noqa: E402
from jetimage.stages.generate import generate  # noqa: E402
from jetimage.stages.images import make_sample_images  # noqa: E402


def study(n_events: int, mu: float, pool: int) -> config.Config:
    """config/pileup.yaml with three samples: its W sample without pileup and at ``mu`` (the same
    hard events), and one QCD sample for the image stage's second class."""
    raw = yaml.safe_load((ROOT / "config" / "pileup.yaml").read_text())
    w, qcd = ({k: v for k, v in raw["samples"][i].items() if k != "pileup"} for i in (0, 4))
    w.update(n_events=n_events, n_shards=1)
    raw["samples"] = [{**w, "name": "bare"}, {**w, "name": "piled", "pileup": {"mu": mu, "pool_size": pool}},
                      {**qcd, "n_shards": 1}]
    return config.validate(raw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=400)
    p.add_argument("--mu", type=float, default=140.0)
    p.add_argument("--pool", type=int, default=1000)
    args = p.parse_args()
    cfg = study(args.events, args.mu, args.pool)
    out: dict[str, object] = {"mu": args.mu, "events": args.events, "pool": args.pool}
    with tempfile.TemporaryDirectory() as tmp:
        times, jets, n_jets = {}, {}, {}
        for name in ("bare", "piled"):
            t = time.perf_counter()
            generate(cfg, name, 0, Path(tmp) / f"{name}.root")
            times[name] = time.perf_counter() - t
            print(f"{name}: generation {times[name]:.1f} s", flush=True)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # a first call compiles the kernel
        make_sample_images(cfg, "bare", [Path(tmp) / "bare.root"], Path(tmp) / "warm.h5")
        for name in ("bare", "piled"):
            best = np.inf
            for _ in range(3):
                t = time.perf_counter()
                root, h5 = Path(tmp) / f"{name}.root", Path(tmp) / f"{name}.h5"
                n_jets[name] = make_sample_images(cfg, name, [root], h5)
                best = min(best, time.perf_counter() - t)
            jets[name] = n_jets[name] / best
            print(f"{name}: {n_jets[name]} jets imaged at {jets[name]:.0f} jets/s (best of 3)", flush=True)
    out["ms_per_event"] = [1e3 * times[k] / args.events for k in ("bare", "piled")]
    out["generation_ratio"] = times["piled"] / times["bare"]
    out["jets_per_s"] = [jets["bare"], jets["piled"]]
    out["images_ratio"] = jets["bare"] / jets["piled"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
