"""The image stage: ROOT ``jets`` trees of one sample -> one HDF5 file of jet images.

The input is streamed with ``uproot.iterate`` in chunks of ``images.chunk_size`` jets, so
memory is bounded by the chunk plus the output being written, whatever the input size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

from . import preprocess
from .config import Config
from .io import ImageWriter, InputError, iterate_jets
from .jets import delta_r

log = logging.getLogger(__name__)

#: Jet-level variables copied from the ROOT tree into the HDF5 file.
JET_VARIABLES = ("event", "jet_pt", "jet_eta", "jet_phi", "jet_m", "tau21", "n_subjets")


def jet_columns(jets: ak.Array) -> dict[str, np.ndarray]:
    """The per-jet columns stored beside the images, including the subjet distance ``delta_r``."""
    out = {name: ak.to_numpy(jets[name]) for name in JET_VARIABLES}
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


def make_sample_images(
    cfg: Config, sample: str, inputs: Sequence[str | Path], output: str | Path
) -> int:
    """Pixelize every selected jet of ``inputs`` and write ``output`` (HDF5, atomically).

    Jets of a signal sample with W truth matching are kept only if truth-matched
    (``label == 1``); ``labels`` in the output is the sample's class (1 signal, 0 background).

    Returns
    -------
    int
        Number of images written.
    """
    s = cfg.sample(sample)
    opts = cfg["images"]
    cls = 1 if s["class"] == "signal" else 0
    shape = (opts["n_eta"], opts["n_phi"], len(opts["channels"]))
    attrs = {"sample": sample, "class": s["class"], "images": opts, "jets": cfg["jets"]}
    n_in = 0
    dropped = {"bad_constituents": 0, "bad_jets": 0}
    buffer = None  # one output buffer for all chunks: no fresh memory to page-fault per chunk
    with ImageWriter(output, shape, attrs) as writer:
        for chunk in iterate_jets(inputs, step_size=opts["chunk_size"]):
            n_in += len(chunk)
            if s.get("truth", "none") == "W":
                chunk = chunk[chunk.label == 1]
            chunk, counts = clean_jets(chunk)
            for k, v in counts.items():
                dropped[k] += v
            if buffer is None or len(buffer) < len(chunk):
                buffer = np.empty((len(chunk), *shape), dtype=np.float32)
            images, extras = preprocess.make_images(chunk, opts, out=buffer)
            columns = {
                "labels": np.full(len(chunk), cls, dtype=np.int8),
                "weights": ak.to_numpy(chunk.weight),
                **jet_columns(chunk),
                **extras,
            }
            writer.append(images, columns)
            log.info("%s: %d jets read, %d images written", sample, n_in, writer.n)
        if writer.n == 0:
            raise InputError(f"sample {sample!r}: no jet passes the selection in {list(map(str, inputs))}")
    log.info("%s: wrote %d images to %s; skipped %d jets and %d constituents with unusable values "
             "(non-finite, pT <= 0, no constituents)", sample, writer.n, output, dropped["bad_jets"],
             dropped["bad_constituents"])
    return writer.n
