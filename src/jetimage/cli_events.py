"""``jetimage events-*``: command-line stages of the event study (see :mod:`jetimage.events`).

``register(subparsers)`` adds the subcommands to the ``jetimage`` parser of :mod:`jetimage.cli`.
Each takes ``--config``: a YAML/JSON configuration with an ``events`` section and ``seed``.
"""

from __future__ import annotations

import argparse


def _cfg(args: argparse.Namespace):
    from .events import load_config

    return load_config(args.config)


def _generate(args: argparse.Namespace) -> None:
    from .events import generate_events

    generate_events(_cfg(args), args.sample, args.shard, args.output)


def _images(args: argparse.Namespace) -> None:
    from .events import make_event_images

    make_event_images(_cfg(args), args.sample, args.inputs, args.output)


def _train(args: argparse.Namespace) -> None:
    from .events import train_events

    train_events(_cfg(args), args.inputs, args.model, args.history)


def _evaluate(args: argparse.Namespace) -> None:
    from .events import evaluate_events

    evaluate_events(_cfg(args), args.inputs, args.model, args.metrics, args.scores)


def _plots(args: argparse.Namespace) -> None:
    from .events import plot_events

    plot_events(_cfg(args), args.inputs, args.scores, args.outdir)


def register(subparsers) -> None:
    """Add the ``events-generate/images/train/evaluate/plots`` subcommands."""
    g = subparsers.add_parser("events-generate", help="Pythia: one shard of an event sample -> ROOT")
    g.add_argument("--config", required=True)
    g.add_argument("--sample", required=True)
    g.add_argument("--shard", type=int, required=True)
    g.add_argument("--output", required=True, help="ROOT file to write (TTrees events, run)")
    g.set_defaults(func=_generate)

    i = subparsers.add_parser("events-images", help="events trees or Delphes files -> HDF5 images")
    i.add_argument("--config", required=True)
    i.add_argument("--sample", required=True)
    i.add_argument("--inputs", nargs="+", required=True)
    i.add_argument("--output", required=True, help="HDF5 file to write")
    i.set_defaults(func=_images)

    t = subparsers.add_parser("events-train", help="train the event CNN")
    t.add_argument("--config", required=True)
    t.add_argument("--inputs", nargs="+", required=True, help="HDF5 files, in config order")
    t.add_argument("--model", required=True)
    t.add_argument("--history", required=True)
    t.set_defaults(func=_train)

    e = subparsers.add_parser("events-evaluate", help="CNN against the cut-based selection")
    e.add_argument("--config", required=True)
    e.add_argument("--inputs", nargs="+", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--metrics", required=True, help="output metrics.json")
    e.add_argument("--scores", required=True, help="output .npz with the test-split scores")
    e.set_defaults(func=_evaluate)

    p = subparsers.add_parser("events-plots", help="event-study figures, PDF and PNG")
    p.add_argument("--config", required=True)
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--scores", required=True)
    p.add_argument("--outdir", required=True)
    p.set_defaults(func=_plots)


def main(argv=None) -> int:
    """Stand-alone entry point until :mod:`jetimage.cli` calls :func:`register`."""
    import logging
    import sys

    from .config import ConfigError
    from .generate import GenerationError
    from .io import InputError

    p = argparse.ArgumentParser(prog="jetimage")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="stage", required=True)
    register(sub)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except (ConfigError, InputError, GenerationError) as err:
        print(f"jetimage {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
