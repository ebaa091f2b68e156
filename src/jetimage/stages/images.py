"""The image stage: the ROOT tree of one sample -> one HDF5 file of images, for either kind.

What an example is belongs to the study: for kind ``jets`` every selected jet becomes an image
in its own frame (centred, optionally rotated, flipped and normalized: :mod:`jetimage.preprocess`);
for kind ``events`` every event becomes an image of the whole calorimeter on the fixed detector
grid, phi periodic (:func:`event_images`), with the variables of the cut-based selection beside
it. Both are pixelized with the same channels (:mod:`jetimage.channels`) and written by the same
:class:`jetimage.io.ImageWriter`. The input is streamed in chunks of ``images.chunk_size``
examples and at most ``images.chunk_constituents`` constituents (particles), so memory is
bounded by the chunk, in bytes, plus the output being written.

Weights are in pb per example: the raw generator weight times ``sigma / (sum of weights x
shards)`` from each file's ``run`` summary (files without one keep their weights).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jetimage.config import Config
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter
from jetimage.formats.root import EVENTS, PILEUP_BRANCHES, iterate_jets, iterate_tree, read_run
from jetimage.images import channels as chan
from jetimage.images import preprocess
from jetimage.images.pixelize import Grid, pixelize_flat
from jetimage.physics.events import event_variables
from jetimage.physics.jets import delta_r

__all__ = ["JET_VARIABLES", "clean_jets", "event_images", "jet_columns", "make_sample_images"]

log = logging.getLogger(__name__)

#: Jet-level variables copied from the ROOT tree into the HDF5 file.
JET_VARIABLES = ("event", "jet_pt", "jet_eta", "jet_phi", "jet_m", "tau21", "n_subjets")


def jet_columns(jets: ak.Array) -> dict[str, np.ndarray]:
    """The per-jet columns stored beside the images, including the subjet distance ``delta_r`` and,
    for jets with pileup, their truth jet and vertex count (:data:`PILEUP_BRANCHES`)."""
    out = {name: ak.to_numpy(jets[name]) for name in JET_VARIABLES}
    out |= {name: ak.to_numpy(jets[name]) for name in PILEUP_BRANCHES if name in jets.fields}
    out["delta_r"] = delta_r(
        ak.to_numpy(jets.subjet1_eta), ak.to_numpy(jets.subjet1_phi),
        ak.to_numpy(jets.subjet2_eta), ak.to_numpy(jets.subjet2_phi),
    )
    return out


def clean_jets(jets: ak.Array) -> tuple[ak.Array, dict[str, int]]:
    """Drop unusable values, and count what was dropped.

    - constituents with non-finite pT, eta, phi or E, or with pT <= 0, are removed;
    - jets with non-finite pT, eta or phi, or left with no constituent, are removed;
    - phi outside [-pi, pi) is fine: every phi difference is wrapped (not counted).

    Returns
    -------
    jets : ak.Array
        The usable jets.
    counts : dict
        ``bad_constituents`` and ``bad_jets`` removed.
    """
    c = jets.constituents
    good_c = (np.isfinite(c.pt) & np.isfinite(c.eta) & np.isfinite(c.phi) & np.isfinite(c.e)
              & (c.pt > 0))
    n_bad_c = int(ak.sum(~good_c))
    if n_bad_c:
        jets = ak.with_field(jets, c[good_c], "constituents")
    good_j = (np.isfinite(ak.to_numpy(jets.jet_pt)) & np.isfinite(ak.to_numpy(jets.jet_eta))
              & np.isfinite(ak.to_numpy(jets.jet_phi)) & (ak.to_numpy(ak.num(jets.constituents)) > 0))
    return jets[good_j], {"bad_constituents": n_bad_c, "bad_jets": int((~good_j).sum())}


def event_grid(options: dict[str, Any]) -> Grid:
    """The fixed detector grid of event images: ``|eta| < eta_max`` and the full azimuth."""
    n_eta, n_phi, eta_max = options["n_eta"], options["n_phi"], options["eta_max"]
    return Grid(n_eta, n_phi, 2 * eta_max / n_eta, 2 * np.pi / n_phi)


def event_images(particles: ak.Array, options: dict[str, Any]) -> np.ndarray:
    """Whole-event images on the fixed detector grid, phi periodic.

    Parameters
    ----------
    particles
        ``(n_events, var)`` records ``pt, eta, phi, e`` (GeV, radians, any phi range),
        ``charge`` and ``pdgid``.
    options
        The ``images`` section: ``n_eta``, ``n_phi``, ``eta_max``, ``intensity``, ``channels``.

    Returns
    -------
    np.ndarray
        ``(n_events, n_eta, n_phi, n_channels)`` float32; pixel (i, j) covers eta in
        ``[-eta_max + i * 2 eta_max / n_eta, ...)`` and phi in ``[-pi + j * 2 pi / n_phi, ...)``.
        Particles outside the eta range are dropped; phi wraps around.
    """
    grid = event_grid(options)
    counts = ak.to_numpy(ak.num(particles))
    flat = ak.flatten(particles)
    phi = ak.to_numpy(flat.phi).astype(np.float64)
    iphi = np.floor((phi + np.pi) / grid.pixel_phi).astype(np.int64) % grid.n_phi
    phi_centre = -np.pi + (iphi + 0.5) * grid.pixel_phi  # periodic by construction
    value = ak.to_numpy(flat[options["intensity"]]).astype(np.float64)
    flags = chan.record_flags(flat)
    weights = chan.channel_weights(value, flags, options["channels"])
    return pixelize_flat(ak.to_numpy(flat.eta).astype(np.float64), phi_centre, weights, counts, grid)


def _selection(cfg: Config) -> str:
    if cfg.kind == "events":
        return "events.skim and events.selection"
    j = cfg["jets"]
    return (f"jets: pT in [{j['pt_min']:g}, {j['pt_max']:g}) GeV, |eta| < {j['eta_max']:g}, "
            f"and the sample's cuts")


def _weight_scales(inputs: Sequence[str | Path], n_shards: int | None = None
                   ) -> tuple[list[float], float]:
    """Per file, the factor that turns raw weights into pb; and the sample's cross section (pb).

    ``n_shards`` (a generated sample's ``n_shards``) is checked against each shard's own record:
    a shard generated as one of another number (copied from another study, or left from before
    the config changed) would weigh its events by the wrong fraction of the cross section.
    """
    scales, sigma = [], 0.0
    for path in inputs:
        run = read_run(path)
        if run is None or run["sum_weights"] <= 0:
            scales.append(1.0)
            sigma = float("nan")
            continue
        if n_shards is not None and int(run["n_shards"]) != n_shards:
            raise InputError(f"{path}: generated as one of {int(run['n_shards'])} shards, but the sample "
                             f"has n_shards: {n_shards}; its events would weigh "
                             f"{n_shards / run['n_shards']:.3g}x those of the other shards. Delete it "
                             f"and rerun to generate it again")
        scales.append(run["sigma_pb"] / (run["sum_weights"] * run["n_shards"]))
        sigma += run["sigma_pb"] / run["n_shards"]
    return scales, sigma


def _jet_chunks(cfg: Config, s: dict[str, Any], path: str | Path, tally: dict[str, int] | None = None
                ) -> Iterator[tuple[int, np.ndarray, dict]]:
    """(jets read, images, columns) per chunk of one file; ``tally["truth_matched"]`` counts the jets a
    truth selection keeps."""
    opts = cfg["images"]
    shape = (opts["n_eta"], opts["n_phi"], len(opts["channels"]))
    buffer = None  # one output buffer for all chunks: no fresh memory to page-fault per chunk
    done = 0
    for chunk in iterate_jets([path], step_size=opts["chunk_size"], max_items=opts["chunk_constituents"]):
        n_in = len(chunk)
        chunk = ak.with_field(chunk, done + np.arange(n_in), "entry")  # the row in the ROOT tree
        done += n_in
        if s.get("truth", "none") == "W":
            chunk = chunk[chunk.label == 1]
            if tally is not None:
                tally["truth_matched"] = tally.get("truth_matched", 0) + len(chunk)
        chunk, dropped = clean_jets(chunk)
        if dropped["bad_jets"] or dropped["bad_constituents"]:
            log.info("%s: skipped %d jets and %d constituents with unusable values (non-finite, "
                     "pT <= 0, no constituents)", path, dropped["bad_jets"], dropped["bad_constituents"])
        if buffer is None or len(buffer) < len(chunk):
            buffer = np.empty((len(chunk), *shape), dtype=np.float32)
        images, extras = preprocess.make_images(chunk, opts, out=buffer)
        columns = {"weights": ak.to_numpy(chunk.weight), **jet_columns(chunk), **extras,
                   "entry": ak.to_numpy(chunk.entry)}
        del chunk  # the constituents are done with: free them before the next chunk is read
        yield n_in, images, columns


def _event_chunks(cfg: Config, s: dict[str, Any], path: str | Path, tally: dict[str, int] | None = None
                  ) -> Iterator[tuple[int, np.ndarray, dict]]:
    opts = cfg["images"]
    done = 0
    chunks = iterate_tree([path], EVENTS, step_size=opts["chunk_size"], max_items=opts["chunk_constituents"])
    for chunk in chunks:
        v = event_variables(chunk.fatjets, cfg["events"]["selection"])
        columns = {k: v[k] for k in ("n_fatjets", "mj", "lead_pt", "deta12")}
        columns["cut_pass"] = v["cut_pass"].astype(np.int8)
        columns["event"] = ak.to_numpy(chunk.event)
        columns["entry"] = done + np.arange(len(chunk))  # the row in the ROOT tree
        columns["weights"] = ak.to_numpy(chunk.weight).astype(np.float64)
        n, images = len(chunk), event_images(chunk.particles, opts)
        done += n
        del chunk  # free the particles before the next chunk is read
        yield n, images, columns


#: The examples of each kind: (n read, images, columns) per chunk of one file.
CHUNKS = {"jets": _jet_chunks, "events": _event_chunks}


def make_sample_images(
    cfg: Config, sample: str, inputs: Sequence[str | Path], output: str | Path
) -> int:
    """Pixelize every example of ``inputs`` (jets or events, by the study's kind) into ``output``.

    Jets of a signal sample with W truth matching are kept only if truth-matched
    (``label == 1``); ``labels`` in the output is the sample's class (1 signal, 0 background).
    The attributes hold the sample, its class, the image settings and ``sigma_pb``, the
    sample's cross section (the summed weight of every generated event, also those a skim
    dropped), from which absolute efficiencies are formed, and ``inputs``, the ROOT files; the
    columns ``file`` (index into ``inputs``) and ``entry`` (row of that file's tree) say where each
    example came from, so that scores can be matched back to the trees.

    Returns
    -------
    int
        Number of images written (HDF5, atomically).
    """
    s = cfg.sample(sample)
    opts = cfg["images"]
    cls = 1 if s["class"] == "signal" else 0
    shape = (opts["n_eta"], opts["n_phi"], len(opts["channels"]))
    scales, sigma = _weight_scales(inputs, None if "files" in s else s["n_shards"])
    attrs = {"sample": sample, "class": s["class"], "kind": cfg.kind, "images": opts,
             "jets" if cfg.kind == "jets" else "events": cfg[cfg.kind], "sigma_pb": sigma,
             "inputs": [str(p) for p in inputs]}
    n_in = 0
    tally: dict[str, int] = {}  # the jets kept by the truth selection (jets with truth W)
    with ImageWriter(output, shape, attrs, compression=opts["compression"],
                     level=opts["compression_level"]) as writer:
        for i, (path, scale) in enumerate(zip(inputs, scales, strict=True)):
            for n, images, columns in CHUNKS[cfg.kind](cfg, s, path, tally):
                columns["file"] = np.full(len(images), i, dtype=np.int32)  # index into attrs inputs
                n_in += n
                columns["weights"] = columns["weights"] * scale
                columns["labels"] = np.full(len(images), cls, dtype=np.int8)
                writer.append(images, columns)
                log.info("%s: %d read, %d images written", sample, n_in, writer.n)
        if writer.n == 0 and n_in and tally.get("truth_matched", -1) == 0:
            # the window had jets, the truth matching kept none: blame the truth selection, not the window
            raise InputError(f"sample {sample!r}: no jet passes the truth selection (samples[].truth: W, a "
                             f"jet within jets.truth_match_dr = {cfg['jets']['truth_match_dr']:g} of both "
                             f"quarks of a hadronic W decay) among the {n_in} jets in the pT/eta window in "
                             f"{list(map(str, inputs))}; check that the sample holds hadronic W decays, or "
                             f"set truth: none")
        if writer.n == 0:
            raise InputError(f"sample {sample!r}: no example passes the selection ({_selection(cfg)}) "
                             f"in {list(map(str, inputs))}")
    log.info("%s: wrote %d images to %s (sample cross section %.4g pb)", sample, writer.n, output, sigma)
    return writer.n
