"""Speed of jet-image making: jetimage (full lorentz preprocessing) against EnergyFlow.

Both pixelize the same generated jets (Pythia + FastJet, the default W and QCD samples) into
25 x 25 pT images on one core. EnergyFlow's ``energyflow.utils.pixelate`` is timed alone
(pixelization with its own centring, no rotation, flip or normalization), one call per jet as
it is meant to be used; jetimage runs ``preprocess.make_images`` with centring on the leading
subjet, rotation of the second subjet, parity flip and L1 normalization in ``lorentz`` mode
(the fused numba kernel, warmed up before timing; massless constituents as configured), on
whole chunks of jets as the image stage does. Rates are jets per second of CPU time of this
single-threaded process (``time.process_time``), i.e. per core, for both, best of 3 runs each.

What is timed: for EnergyFlow only the ``pixelate`` calls (its per-jet ``(n, 4)`` input arrays
are built from the awkward jets before timing); for jetimage the whole ``make_images`` call
per chunk, including what EnergyFlow gets for free: reading the centre and subjet directions,
flattening the awkward constituents to numpy, and the extras. The images of each chunk are
written into one reused buffer, as the image stage does (``make_images(..., out=buffer)``).

EnergyFlow is needed only here; install it without its pins on numpy::

    pip install --no-deps energyflow wasserstein wurlitzer

Usage::

    python benchmarks/pixelize.py [--jets DIR] [--events N] [--copies K]

The jets are generated once into ``DIR`` (default: a temporary directory) and reused. The last
line printed is one JSON object with ``jets_per_s``, ``energyflow_jets_per_s`` and ``ratio``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jetimage import config  # noqa: E402
from jetimage.formats.root import read_jets  # noqa: E402
from jetimage.images.preprocess import make_images  # noqa: E402
from jetimage.stages import generate  # noqa: E402


def sample_files(directory: Path, n_events: int) -> list[Path]:
    """The W and QCD jets of ``n_events`` events each, generated once into ``directory``."""
    cfg = config.load(ROOT / "config.yaml", study="jets")
    paths = []
    for sample in ("wjets", "qcd"):
        path = directory / f"{sample}_{n_events}.root"
        if not path.exists():
            cfg.sample(sample).update(n_events=n_events, n_shards=1)
            print(f"generating {n_events} {sample} events into {path} ...", file=sys.stderr)
            generate.generate(cfg, sample, 0, path)
        paths.append(path)
    return paths


def best_rate(fn, n_jets: int, repeat: int = 3) -> float:
    """Jets per second of the fastest of ``repeat`` runs of ``fn``, in CPU time of this
    process (one thread: the time of one core, not inflated when the core is shared)."""
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n_jets / best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=Path, default=None, help="cache directory of the jets")
    parser.add_argument("--events", type=int, default=3000, help="events per sample")
    parser.add_argument("--copies", type=int, default=40,
                        help="jetimage runs on this many copies of the jets (steadier timing)")
    args = parser.parse_args(argv)
    try:
        from energyflow.utils import pixelate
    except ImportError:
        sys.exit("EnergyFlow is needed for the comparison: "
                 "pip install --no-deps energyflow wasserstein wurlitzer")

    directory = args.jets or Path(tempfile.mkdtemp(prefix="jetimage-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    jets = ak.to_packed(read_jets(sample_files(directory, args.events)))
    n = len(jets)
    n_const = float(ak.mean(ak.num(jets.constituents)))

    # EnergyFlow: one (n_particles, 4) [pt, y, phi, pid] array per jet, built before timing
    c = jets.constituents
    particles = [np.stack([ak.to_numpy(x.pt), ak.to_numpy(x.eta), ak.to_numpy(x.phi),
                           ak.to_numpy(x.pdgid).astype(np.float64)], axis=1) for x in c]

    def energyflow():
        for p in particles:
            pixelate(p, npix=25, img_width=2.5, nb_chan=1, norm=False)

    ef_rate = best_rate(energyflow, n)  # best of 3, as jetimage

    opts = dict(config.load(ROOT / "config.yaml", study="jets")["images"])
    opts.update(n_eta=25, n_phi=25, pixel_eta=0.1, pixel_phi=0.1, intensity="pt",
                channels=["total"], centre="leading_subjet", rotate="subjet", flip="parity",
                normalize="l1", mode="lorentz")
    many = ak.to_packed(ak.concatenate([jets] * args.copies))
    chunk = opts["chunk_size"]
    chunks = [many[i:i + chunk] for i in range(0, len(many), chunk)]

    # one output buffer for all chunks, as the image stage (jetimage.images) does
    buffer = np.empty((chunk, 25, 25, 1), dtype=np.float32)

    def jetimage(deposit: str):
        def run():
            for ch in chunks:
                make_images(ch, {**opts, "deposit": deposit}, out=buffer)
        return run

    for d in ("moment", "ngp"):  # warm up: load (or compile) the numba kernel before timing
        make_images(chunks[0][:10], {**opts, "deposit": d})
    rates = {d: best_rate(jetimage(d), len(many)) for d in ("moment", "ngp")}
    result = {
        "jets_per_s": round(rates["moment"]),
        "energyflow_jets_per_s": round(ef_rate),
        "ratio": round(rates["moment"] / ef_rate, 1),
        "jets_per_s_ngp": round(rates["ngp"]),
        "ratio_ngp": round(rates["ngp"] / ef_rate, 1),
        "n_jets": n,
        "jetimage_jets_timed": len(many),
        "mean_constituents": round(n_const, 1),
        "options": {k: opts[k] for k in ("centre", "rotate", "flip", "normalize", "mode", "massless")},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
