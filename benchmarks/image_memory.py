"""Peak memory of the image stage at 1x and 10x the input: it must not grow with the input.

``jetimage.images.make_sample_images`` streams its ROOT input in chunks of
``images.chunk_size`` jets (``uproot.iterate``) and appends each chunk's images to the HDF5
output, so its peak resident memory should be set by one chunk, not by the number of jets.
Each size runs in its own subprocess, which reports its peak resident memory at the end
(``VmHWM`` of ``/proc/self/status`` on Linux; ``ru_maxrss`` elsewhere, which on Linux would
also carry the peak of the parent the subprocess was forked from).

Usage::

    python benchmarks/image_memory.py [--jets DIR] [--base N] [--factor K]

The input is ``N`` generated QCD jets (default 4000, written once into ``DIR``, a temporary
directory by default) and the same jets repeated K times (default 10), both read in chunks of
``--chunk`` jets (default 2000). Prints a table and, last, one JSON line with the peak RSS of
each size in MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHILD = """
import resource, sys, time
sys.path.insert(0, {src!r})
from jetimage import config
from jetimage.stages import images
cfg = config.load({config!r}, "jets")
cfg["images"].update({opts!r})
start = time.perf_counter()
n = images.make_sample_images(cfg, "qcd", [{path!r}], {out!r})
seconds = time.perf_counter() - start
try:  # peak RSS of this process image; ru_maxrss would include the parent's peak from fork
    with open("/proc/self/status") as f:
        kib = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
except OSError:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, seconds, kib)
"""


def make_inputs(directory: Path, base: int, factor: int) -> tuple[Path, Path]:
    """A ROOT file with ``base`` QCD jets and one with the same jets ``factor`` times."""

    from jetimage import config
    from jetimage.formats.root import JetTreeWriter, read_jets
    from jetimage.stages import generate

    small, large = directory / f"qcd_{base}.root", directory / f"qcd_{base}_x{factor}.root"
    if not small.exists():
        cfg = config.load(ROOT / "config.yaml", "jets")
        # ~0.5 jets per QCD event: generate enough events, then keep exactly `base` jets
        cfg.sample("qcd").update(n_events=int(base * 2.4) + 200, n_shards=1)
        raw = directory / "qcd_raw.root"
        if not raw.exists():
            print(f"generating QCD events into {raw} ...", file=sys.stderr)
            generate.generate(cfg, "qcd", 0, raw)
        jets = read_jets([raw])
        if len(jets) < base:
            sys.exit(f"only {len(jets)} jets generated, fewer than --base {base}")
        write(small, jets[:base])
    if not large.exists():
        jets = read_jets([small])
        with JetTreeWriter(large) as writer:
            for _ in range(factor):
                writer.extend(as_columns(jets))
    return small, large


def as_columns(jets) -> dict:
    import awkward as ak

    from jetimage.formats.root import JET_BRANCHES

    cols = {name: ak.to_numpy(jets[name]) for name in JET_BRANCHES}
    cols["constituents"] = jets.constituents
    return cols


def write(path: Path, jets) -> None:
    from jetimage.formats.root import JetTreeWriter

    with JetTreeWriter(path) as writer:
        writer.extend(as_columns(jets))


def measure(path: Path, out: Path, opts: dict) -> tuple[int, float, float]:
    """(jets, seconds, peak RSS in MiB) of the image stage in a fresh subprocess."""
    code = CHILD.format(src=str(ROOT / "src"), config=str(ROOT / "config.yaml"), opts=opts,
                        path=str(path), out=str(out))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    n, seconds, rss_kib = res.stdout.split()[-3:]
    return int(n), float(seconds), int(rss_kib) / 1024.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=Path, default=None, help="cache directory of the jets")
    parser.add_argument("--base", type=int, default=4000, help="jets in the 1x input")
    parser.add_argument("--chunk", type=int, default=2000, help="images.chunk_size")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--mode", default="lorentz", choices=["lorentz", "image"])
    args = parser.parse_args(argv)
    directory = args.jets or Path(tempfile.mkdtemp(prefix="jetimage-mem-"))
    directory.mkdir(parents=True, exist_ok=True)
    small, large = make_inputs(directory, args.base, args.factor)
    opts = {"rotate": "subjet", "flip": "parity", "normalize": "l1", "mode": args.mode,
            "chunk_size": args.chunk}
    rows = {}
    for label, path in (("1x", small), (f"{args.factor}x", large)):
        out = directory / f"images_{label}.h5"
        rows[label] = measure(path, out, opts)
        out.unlink()
    print(f"{'input':>6} {'jets':>9} {'seconds':>8} {'peak RSS [MiB]':>15} {'output [MiB]':>13}")
    for label, (n, sec, rss) in rows.items():
        print(f"{label:>6} {n:>9} {sec:>8.1f} {rss:>15.0f} {n * 25 * 25 * 4 / 2**20:>13.0f}")
    labels = list(rows)
    result = {
        "peak_rss_mib": {k: round(v[2], 1) for k, v in rows.items()},
        "jets": {k: v[0] for k, v in rows.items()},
        "growth": round(rows[labels[1]][2] / rows[labels[0]][2], 3),
        "images_mib": {k: round(v[0] * 25 * 25 * 4 / 2**20, 1) for k, v in rows.items()},
        "when": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
