"""``jetimage <stage> ...``: the command line that the Snakemake rules call, one subcommand per stage."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jetimage.config import ConfigError, load
from jetimage.formats.atomic import TERMINATION, no_space
from jetimage.formats.errors import InputError, OutputError

log = logging.getLogger("jetimage")


def _cfg(args: argparse.Namespace):
    return load(args.config, args.study)


def _start_keras_quietly() -> None:
    """Import Keras and start its CPU device with the C++ runtime's start-up lines hidden.

    On a machine without a GPU TensorFlow prints CUDA probing errors (``failed call to cuInit``,
    ``Could not find cuda drivers``) and oneDNN notices, before its log level applies, that a
    newcomer reads as failures. They go to file descriptor 2, so it points at /dev/null meanwhile;
    Python errors still raise. ``JETIMAGE_TF_LOGS=1`` keeps them. Called by the Keras stages once
    their arguments and configuration are checked.
    """
    if os.environ.get("JETIMAGE_TF_LOGS"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import keras  # deferred: only these stages need TensorFlow

        keras.ops.convert_to_tensor(0.0)  # creates the device (and its log lines) now
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Each stage is imported when it runs: a stage loads only its own libraries (Keras alone takes seconds).
def _generate(args: argparse.Namespace) -> None:
    from jetimage.stages.generate import generate

    generate(_cfg(args), args.sample, args.shard, args.output)


def _ingest(args: argparse.Namespace) -> None:
    from jetimage.stages.ingest import ingest

    ingest(_cfg(args), args.sample, args.file, args.start, args.stop, args.output)


def _images(args: argparse.Namespace) -> None:
    from jetimage.stages.images import make_sample_images

    make_sample_images(_cfg(args), args.sample, args.inputs, args.output)


def _train(args: argparse.Namespace) -> None:
    cfg = _cfg(args)
    _start_keras_quietly()
    from jetimage.stages.train import train

    train(cfg, args.inputs, args.model, args.history, args.variant, args.init)


def _evaluate(args: argparse.Namespace) -> None:
    variants = dict(_name_value(item, "--variants", "NAME=MODEL") for item in args.variants or ())
    cfg = _cfg(args)
    _start_keras_quietly()
    from jetimage.stages.evaluate import evaluate

    evaluate(cfg, args.inputs, args.model, args.metrics, args.scores, args.image_mass, variants,
             args.two_stage)


def _name_value(item: str, flag: str, form: str) -> tuple[str, str]:
    """``NAME=VALUE`` split in two; :class:`ConfigError` naming the flag and the item (not a traceback)."""
    name, eq, value = item.partition("=")
    if not (eq and name and value):
        raise ConfigError(f"{flag}: {item!r} is not {form} "
                          "(e.g. disco=results/jets/model/variants/disco.keras)")
    return name, value


def _image_mass(args: argparse.Namespace) -> None:
    from jetimage.stages.image_mass import run_study

    inputs: dict[str, list[str]] = {}
    for item in args.inputs:
        sample, _, path = item.partition("=")
        inputs.setdefault(sample, []).append(path)
    run_study(_cfg(args), inputs, args.output, args.plot)


def _pileup(args: argparse.Namespace) -> None:
    from jetimage.stages.pileup import pileup_study

    inputs: dict[str, list[str]] = {}
    for item in args.inputs:
        sample, path = _name_value(item, "--inputs", "SAMPLE=ROOT_FILE")
        inputs.setdefault(sample, []).append(path)
    images = dict(_name_value(item, "--images", "SAMPLE=H5_FILE") for item in args.images or ())
    if bool(images) != bool(args.unet):
        raise ConfigError("jetimage pileup: --unet MODEL and --images SAMPLE=H5_FILE ... go together")
    if args.unet:
        _start_keras_quietly()
    pileup_study(_cfg(args), inputs, args.output, args.table, args.plot, args.unet, images)


def _unet_figure(args: argparse.Namespace) -> None:
    from jetimage.stages.pileup import unet_jet_figure

    files = dict(_name_value(item, "--images", "SAMPLE=H5_FILE") for item in args.images)
    _start_keras_quietly()
    unet_jet_figure(_cfg(args), args.unet, files, args.sample, args.plot, args.row)


def _plots(args: argparse.Namespace) -> None:
    from jetimage.stages import plots

    with np.load(args.scores) as data:
        scores = {k: data[k] for k in data.files}
    history = json.loads(open(args.history).read()) if args.history else None
    plots.draw(_cfg(args), scores, history, args.outdir, args.figures)


def _apply(args: argparse.Namespace) -> None:
    cfg = _cfg(args)
    _start_keras_quietly()
    from jetimage.stages.apply import apply

    apply(cfg, args.sample, args.input, args.model, args.output, args.start, args.stop, args.force)


def _export(args: argparse.Namespace) -> None:
    from jetimage.training.definition import check_study

    check_study(_cfg(args), args.model)
    _start_keras_quietly()
    from jetimage.stages.export import export_onnx

    export_onnx(args.model, args.output)


#: stage -> (help, function, [(flag, options)])
STAGES: dict[str, tuple[str, Callable[[argparse.Namespace], None], list[tuple[str, dict[str, Any]]]]] = {
    "generate": ("Pythia (+ FastJet): one shard of a sample -> ROOT file (jets or events tree)",
                 _generate,
                 [("--sample", {}), ("--shard", {"type": int}),
                  ("--output", {"help": "ROOT file to write"})]),
    "ingest": ("entries of a user's ROOT file -> the study's tree (jets or events)", _ingest,
               [("--sample", {}), ("--file", {"help": "input ROOT file"}),
                ("--start", {"type": int, "help": "first entry"}),
                ("--stop", {"type": int, "help": "entry after the last"}),
                ("--output", {"help": "ROOT file to write"})]),
    "images": ("ROOT trees of one sample -> HDF5 images (jet frame or whole-event grid)", _images,
               [("--sample", {}), ("--inputs", {"nargs": "+", "help": "ROOT files of the sample"}),
                ("--output", {"help": "HDF5 file to write"})]),
    "train": ("train the CNN on HDF5 image files (streamed, resumable)", _train,
              [("--inputs", {"nargs": "+", "help": "HDF5 image files, in config order"}),
               ("--model", {"help": "output .keras file"}),
               ("--history", {"help": "output JSON training history"}),
               ("--variant", {"required": False, "help": "train.variants name: a mass-decorrelated CNN"}),
               ("--init", {"required": False,
                           "help": "trained .keras model of this architecture: training starts from it"})]),
    "evaluate": ("test-split scores, the kind's baselines and metrics.json", _evaluate,
                 [("--inputs", {"nargs": "+"}), ("--model", {}),
                  ("--metrics", {"help": "output metrics.json"}),
                  ("--scores", {"required": False, "help": "output .npz with the test-split scores"}),
                  ("--image-mass", {"required": False, "help": "image_mass.json of the image-mass study"}),
                  ("--variants", {"nargs": "+", "required": False,
                                  "help": "NAME=MODEL items: train.variants models, scored as cnn_NAME"}),
                  ("--two-stage", {"required": False,
                                   "help": "output .pkl: the two-stage tagger (evaluate.two_stage)"})]),
    "image_mass": ("the image-mass study: the jet mass after each preprocessing step, both modes (jets)",
                   _image_mass,
                   [("--inputs", {"nargs": "+", "help": "SAMPLE=ROOT_FILE items"}),
                    ("--output", {"help": "output JSON"}),
                    ("--plot", {"help": "output figure path without suffix"})]),
    "pileup": ("the pileup study: each mitigation's jet mass and pT against the truth jets, per mu", _pileup,
               [("--inputs", {"nargs": "+", "help": "SAMPLE=ROOT_FILE items of samples with pileup"}),
                ("--output", {"help": "output JSON"}), ("--table", {"help": "output Markdown table"}),
                ("--plot", {"required": False, "help": "figure path without suffix (PDF and PNG)"}),
                ("--unet", {"required": False, "help": "a trained U-Net (train.task: images), scored too"}),
                ("--images", {"nargs": "+", "required": False,
                              "help": "SAMPLE=H5_FILE items: the samples' images, for --unet"})]),
    "unet_figure": ("one jet through a trained U-Net: input channels, true and predicted neutral image",
                    _unet_figure,
                    [("--unet", {"help": "the trained U-Net (train.task: images)"}),
                     ("--images", {"nargs": "+", "help": "SAMPLE=H5_FILE items: the sample shown and "
                                   "those the U-Net trained on"}),
                     ("--sample", {"help": "the sample whose jet is shown"}),
                     ("--plot", {"help": "figure path without suffix (PDF and PNG)"}),
                     ("--row", {"type": int, "required": False, "help": "the jet's row (default: the "
                                "first the pileup study scores the U-Net on)"})]),
    "plots": ("figures of the study's kind from the scores file, PDF and PNG", _plots,
              [("--scores", {"help": "scores .npz written by evaluate"}),
               ("--history", {"required": False, "help": "history.json of the training"}),
               ("--outdir", {"help": "folder of the figures"}),
               ("--figures", {"nargs": "+", "required": False, "help": "figure names (default all)"})]),
    "apply": ("score a tree file of a sample with a trained model -> a friend tree aligned with its input",
              _apply,
              [("--sample", {}),
               ("--input", {"help": "the sample's tree file (generated shard or ingested chunk)"}),
               ("--model", {"help": ".keras model trained by jetimage"}),
               ("--output", {"help": "ROOT file of the friend tree to write"}),
               ("--start", {"type": int, "required": False, "help": "read samples: the chunk's first entry"}),
               ("--stop", {"type": int, "required": False, "help": "read samples: entry after the last"}),
               ("--force", {"action": "store_true", "required": False,
                            "help": "replace an existing --output that jetimage did not write"})]),
    "export": ("a trained .keras model -> ONNX (for C++ frameworks)", _export,
               [("--model", {}), ("--output", {"help": "model.onnx to write"})]),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jetimage", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="stage", required=True)
    for name, (text, func, options) in STAGES.items():
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", required=True, help="YAML configuration")
        s.add_argument("--study", help="study of the configuration (default: its only study)")
        for flag, opts in options:
            s.add_argument(flag, **{"required": True, **opts})
        s.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ runtime logs at INFO and WARNING level (CPU features, and the Python
    # traceback of an error raised while reading a batch, which jetimage reports in one line)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    from jetimage.stages.generate import GenerationError  # deferred: the stage loads FastJet

    TERMINATION.install(signal.SIGTERM)
    try:
        try:
            args.func(args)
        except BaseException:
            # library clean-up may turn the SystemExit into another error (zipfile.close in np.savez
            # raises ValueError when the signal came while it opened a member): still a termination
            if TERMINATION.signum is not None:
                return _terminated(args.stage, TERMINATION.signum)
            raise
    except (ConfigError, InputError, GenerationError, OutputError) as err:
        return _error(args.stage, str(err))
    except Exception as err:  # a full disk met outside an atomic write (Keras, TensorBoard)
        if not no_space(err):
            raise
        return _error(args.stage, f"{_outputs(args)}: no space left on device ({type(err).__name__}: "
                      f"{' '.join(str(err).split())[:200]})")
    return 0


def _outputs(args: argparse.Namespace) -> str:
    """The output paths of a stage's arguments, for an error that names no file."""
    names = ("output", "model", "history", "metrics", "scores", "outdir", "plot")
    return ", ".join(str(v) for k in names if (v := getattr(args, k, None)))


def _terminated(stage: str, signum: int) -> int:
    """Report a termination by ``signum``; exit status 128 + ``signum``, as the shell's."""
    print(f"jetimage {stage}: terminated by {signal.Signals(signum).name}", file=sys.stderr)
    return 128 + signum


def _error(stage: str, message: str) -> int:
    """Log ``message`` and print it as the last line of stderr; exit status 2."""
    log.error("%s", message)
    print(f"jetimage {stage}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
