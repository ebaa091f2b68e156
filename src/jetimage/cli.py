"""``jetimage <stage> ...``: the command line that the Snakemake rules call, one subcommand per stage."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from .config import ConfigError, load

log = logging.getLogger("jetimage")


def _generate(args: argparse.Namespace) -> None:
    from .generate import generate

    generate(load(args.config), args.sample, args.shard, args.output)


def _ingest(args: argparse.Namespace) -> None:
    from .ingest import ingest

    ingest(load(args.config), args.sample, args.file, args.start, args.stop, args.output)


def _images(args: argparse.Namespace) -> None:
    from .images import make_sample_images

    make_sample_images(load(args.config), args.sample, args.inputs, args.output)


def _train(args: argparse.Namespace) -> None:
    from .train import train

    train(load(args.config), args.inputs, args.model, args.history)


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate

    evaluate(load(args.config), args.inputs, args.model, args.metrics, args.scores,
             args.preprocessing)


def _preprocessing(args: argparse.Namespace) -> None:
    from .diagnostics import run_study

    cfg = load(args.config)
    inputs: dict[str, list[str]] = {}
    for item in args.inputs:
        sample, _, path = item.partition("=")
        inputs.setdefault(sample, []).append(path)
    run_study(cfg, inputs, args.output, args.plot)


def _plot_roc(args: argparse.Namespace) -> None:
    import numpy as np

    from . import plots
    from .evaluate import roc_curve

    cfg = load(args.config)
    data = np.load(args.scores)
    win = data["in_window"] if "in_window" in data.files else slice(None)
    curves = {
        key.removeprefix("score_"): roc_curve(data[key][win], data["labels"][win], data["weights"][win])
        for key in data.files if key.startswith("score_")
    }
    j = cfg["jets"]
    text = plots.selection_text(j["pt_min"], j["pt_max"], j["eta_max"], cfg["evaluate"]["mass_window"])
    plots.roc(curves, args.output, text=text, sqrt_s_tev=cfg["generation"]["sqrt_s"] / 1000)


def _plots(args: argparse.Namespace) -> None:
    import json

    import numpy as np

    from . import plots

    cfg = load(args.config)
    with np.load(args.scores) as data:
        scores = {k: data[k] for k in data.files}
    history = json.loads(open(args.history).read()) if args.history else None
    plots.jet_plots(cfg, scores, history, args.outdir)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jetimage", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="stage", required=True)
    from .cli_events import register

    register(sub)  # events-generate, events-images, events-train, events-evaluate, events-plots

    g = sub.add_parser("generate", help="Pythia + FastJet: one shard of a sample -> ROOT file")
    g.add_argument("--config", required=True)
    g.add_argument("--sample", required=True)
    g.add_argument("--shard", type=int, required=True)
    g.add_argument("--output", required=True, help="ROOT file to write")
    g.set_defaults(func=_generate)

    n = sub.add_parser("ingest", help="entries of a user's ROOT file -> jetimage jets tree")
    n.add_argument("--config", required=True)
    n.add_argument("--sample", required=True)
    n.add_argument("--file", required=True, help="input ROOT file")
    n.add_argument("--start", type=int, required=True, help="first entry")
    n.add_argument("--stop", type=int, required=True, help="entry after the last")
    n.add_argument("--output", required=True, help="ROOT file to write")
    n.set_defaults(func=_ingest)

    i = sub.add_parser("images", help="ROOT jets of one sample -> HDF5 jet images")
    i.add_argument("--config", required=True)
    i.add_argument("--sample", required=True)
    i.add_argument("--inputs", nargs="+", required=True, help="ROOT files of the sample")
    i.add_argument("--output", required=True, help="HDF5 file to write")
    i.set_defaults(func=_images)

    t = sub.add_parser("train", help="train the CNN on HDF5 image files")
    t.add_argument("--config", required=True)
    t.add_argument("--inputs", nargs="+", required=True, help="HDF5 image files, in config order")
    t.add_argument("--model", required=True, help="output .keras file")
    t.add_argument("--history", required=True, help="output JSON training history")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="test-split scores, baselines and metrics.json")
    e.add_argument("--config", required=True)
    e.add_argument("--inputs", nargs="+", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--metrics", required=True, help="output metrics.json")
    e.add_argument("--scores", help="output .npz with the test-split scores")
    e.add_argument("--preprocessing", help="preprocessing-study JSON to include in the metrics")
    e.set_defaults(func=_evaluate)

    d = sub.add_parser("preprocessing", help="image-mass study of the preprocessing steps, both modes")
    d.add_argument("--config", required=True)
    d.add_argument("--inputs", nargs="+", required=True, help="SAMPLE=ROOT_FILE items")
    d.add_argument("--output", required=True, help="output JSON")
    d.add_argument("--plot", required=True, help="output figure path without suffix")
    d.set_defaults(func=_preprocessing)

    r = sub.add_parser("plot-roc", help="ROC curves from the scores file, as PDF and PNG")
    r.add_argument("--config", required=True)
    r.add_argument("--scores", required=True)
    r.add_argument("--output", required=True, help="output path without suffix")
    r.set_defaults(func=_plot_roc)

    f = sub.add_parser("plots", help="every jet-study figure (ROC, CNN vs mass/tau21/Delta R, mean "
                       "images, pixel correlation, training curves, CNN output), PDF and PNG")
    f.add_argument("--config", required=True)
    f.add_argument("--scores", required=True, help="scores .npz written by evaluate")
    f.add_argument("--history", help="history.json of the training (training curves)")
    f.add_argument("--outdir", required=True, help="folder of the figures")
    f.set_defaults(func=_plots)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    from .generate import GenerationError
    from .io import InputError

    def _terminate(signum, frame):
        # SystemExit unwinds the stack, so atomic writers delete their temporary files
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except (ConfigError, InputError, GenerationError) as err:
        log.error("%s", err)
        print(f"jetimage {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
