"""Peak memory of the ingest and image stages and of the image-mass study with many constituents per jet.

Writes two ``jets`` trees of ``--jets`` jets (real writer), one with ``--constituents``
constituents per jet and one with ``--factor`` times as many, and runs on each, in a fresh
subprocess, the ingest stage (the whole file as one job of a user's sample: entries read per
step bounded in bytes, :data:`jetimage.ingest.READ_BYTES`; the writer's buffer in constituents),
the image stage (:func:`jetimage.images.make_sample_images`) and the image-mass study
(:func:`jetimage.image_mass.streamed_study`) with the default chunk bounds
(``images.chunk_size``, ``images.chunk_constituents``; override with ``--chunk-constituents``).
Chunks bounded in constituents keep the peak resident memory (``VmHWM``) flat; chunks bounded in
jets only grew with the constituents (issue 12: 5,000 constituents per jet took 1.05 GB and
2.07 GB for 2,000 jets). The trees are written in baskets of 100 jets (6,000,000 constituents at
60,000 per jet, six times those of jetimage's writers, ``formats.root.BASKET_ITEMS``): a stress of
the reads, which decompress whole baskets (reading every branch of a chunk at once held 1.4 GiB
there, whatever the chunk).

Usage::

    python benchmarks/constituent_memory.py [--jets 2000] [--constituents 500] [--factor 10]
                                            [--chunk-constituents N] [--dir DIR]

Prints a table and, last, one JSON line (MiB).
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
sys.path.insert(0, str(ROOT))

CHILD = """
import sys, time
sys.path.insert(0, {src!r})
from jetimage import config
from jetimage.stages import image_mass
from jetimage.stages import images
cfg = config.load({config!r}, "jets")
cfg["images"].update({opts!r})
for s in cfg["samples"]:
    s["truth"] = "none"
start = time.perf_counter()
if {stage!r} == "images":
    images.make_sample_images(cfg, "qcd", [{path!r}], {out!r})
elif {stage!r} == "ingest":  # the whole file as one ingest job of a user's sample (worst case)
    import uproot, yaml
    from jetimage.stages import ingest
    raw = yaml.safe_load(open({config!r}))
    study = {{"seed": raw["seed"], **raw["studies"]["jets"], "study": "jets"}}
    study["samples"][1] = {{"name": "mine", "class": "background", "files": [{path!r}],
                           "chunk_entries": 100000}}
    n = uproot.open({path!r})["jets"].num_entries
    ingest.ingest(config.validate(study), "mine", {path!r}, 0, n, {out!r} + ".root")
else:
    image_mass.streamed_study(cfg, {{"qcd": [{path!r}], "wjets": [{path!r}]}})
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    kib = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
print(seconds, kib)
"""


def write_jets(path: Path, n: int, per_jet: int) -> None:
    """``n`` jets of ``per_jet`` constituents each (the generator of tests/test_resources.py)."""
    from tests.test_resources import _many_constituent_jets

    for start in range(0, n, 500):  # a few hundred jets per call: the writer's own memory stays small
        part = path.with_suffix(f".{start}.root")
        _many_constituent_jets(part, [per_jet] * min(500, n - start), seed=start)
    parts = sorted(path.parent.glob(f"{path.stem}.*.root"), key=lambda p: int(p.suffixes[-2][1:]))
    from jetimage.formats.root import JET_BRANCHES, JetTreeWriter, iterate_jets

    with JetTreeWriter(path) as writer:
        for p in parts:
            for chunk in iterate_jets([p], step_size=100):
                writer.extend({**{k: chunk[k] for k in JET_BRANCHES}, "constituents": chunk.constituents})
                writer._flush()
            p.unlink()


def measure(stage: str, path: Path, out: Path, opts: dict) -> tuple[float, float]:
    code = CHILD.format(src=str(ROOT / "src"), config=str(ROOT / "config.yaml"), opts=opts,
                        stage=stage, path=str(path), out=str(out))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, kib = res.stdout.split()[-2:]
    return float(seconds), int(kib) / 1024.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=2000)
    parser.add_argument("--constituents", type=int, default=500)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--chunk-constituents", type=int, default=None)
    parser.add_argument("--stages", default="ingest,images,preprocessing")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="jetimage-constituents-"))
    directory.mkdir(parents=True, exist_ok=True)
    opts = {} if args.chunk_constituents is None else {"chunk_constituents": args.chunk_constituents}
    result: dict = {"when": time.strftime("%Y-%m-%d"), "jets": args.jets, "options": opts}
    print(f"{'stage':>14} {'constituents/jet':>17} {'seconds':>8} {'peak RSS [MiB]':>15}")
    for stage in args.stages.split(","):
        rows = {}
        for label, k in (("1x", args.constituents), (f"{args.factor}x", args.constituents * args.factor)):
            path = directory / f"jets_{k}.root"
            if not path.exists():
                write_jets(path, args.jets, k)
            rows[label] = measure(stage, path, directory / "out.h5", opts)
            print(f"{stage:>14} {k:>17} {rows[label][0]:>8.1f} {rows[label][1]:>15.0f}")
        labels = list(rows)
        result[stage] = {"peak_rss_mib": {k: round(v[1], 1) for k, v in rows.items()},
                         "seconds": {k: round(v[0], 1) for k, v in rows.items()},
                         "ratio": round(rows[labels[1]][1] / rows[labels[0]][1], 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
