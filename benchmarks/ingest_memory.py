"""Peak memory of one ingest job at 1x and 10x the input file: flat, because jobs are chunks.

A sample read from disk is split into jobs of at most ``chunk_entries`` entries
(:func:`jetimage.ingest.plan_chunks`), so a job's memory is set by the chunk (and the ROOT
baskets it touches), not by the file. Both files here have baskets of one chunk. This
benchmark ingests one chunk of a 1x file and the last chunk of a 10x file, each in its own
subprocess, and, for contrast, the whole 10x file as one job (chunking switched off). Peak RSS
is ``VmHWM`` of ``/proc/self/status``.

Usage::

    python benchmarks/ingest_memory.py [--jets DIR] [--base N] [--factor K]

Prints a table and, last, one JSON line with the peak RSS of each job in MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_memory import ROOT, make_inputs  # noqa: E402

CHILD = """
import sys, time
sys.path.insert(0, {src!r})
import yaml
from jetimage import config
from jetimage.stages import ingest
raw = yaml.safe_load(open({config!r}))
raw["studies"]["jets"]["samples"][1] = {{"name": "user", "class": "background", "files": [{path!r}],
                                        "chunk_entries": {chunk}}}
cfg = config.validate(raw, study="jets")
start = time.perf_counter()
n = ingest.ingest(cfg, "user", {path!r}, {begin}, {end}, {out!r})
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    kib = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
print(n, seconds, kib)
"""


def measure(path: Path, begin: int, end: int, chunk: int, out: Path) -> tuple[int, float, float]:
    code = CHILD.format(src=str(ROOT / "src"), config=str(ROOT / "config.yaml"), path=str(path),
                        chunk=chunk, begin=begin, end=end, out=str(out))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, seconds, kib = res.stdout.split()[-3:]
    out.unlink()
    return int(n), float(seconds), int(kib) / 1024.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=Path, default=None, help="cache directory of the inputs")
    parser.add_argument("--base", type=int, default=4000, help="jets in the 1x file (= one chunk)")
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args(argv)
    directory = args.jets or Path(tempfile.mkdtemp(prefix="jetimage-ingest-"))
    directory.mkdir(parents=True, exist_ok=True)
    small, _ = make_inputs(directory, args.base, args.factor)
    # the 10x file in baskets of one chunk each: a job then reads exactly its own baskets
    large = directory / f"qcd_{args.base}_x{args.factor}_baskets.root"
    if not large.exists():
        from image_memory import as_columns

        from jetimage.formats.root import JetTreeWriter, read_jets

        jets = read_jets([small])
        with JetTreeWriter(large, basket_size=args.base) as writer:
            for _ in range(args.factor):
                writer.extend(as_columns(jets))
    b, k = args.base, args.factor
    jobs = {
        "1x file, one chunk": (small, 0, b, b),
        f"{k}x file, last chunk": (large, (k - 1) * b, k * b, b),
        f"{k}x file, unchunked": (large, 0, k * b, k * b),
    }
    rows = {name: measure(p, s, e, c, directory / "out.root") for name, (p, s, e, c) in jobs.items()}
    print(f"{'job':>24} {'jets':>8} {'seconds':>8} {'peak RSS [MiB]':>15}")
    for name, (n, sec, rss) in rows.items():
        print(f"{name:>24} {n:>8} {sec:>8.1f} {rss:>15.0f}")
    names = list(rows)
    result = {
        "peak_rss_mib": {n: round(v[2], 1) for n, v in rows.items()},
        "chunked_growth": round(rows[names[1]][2] / rows[names[0]][2], 3),
        "unchunked_growth": round(rows[names[2]][2] / rows[names[0]][2], 3),
        "when": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
