"""The memory (``mem_mb``) each workflow rule asks for, from the bounds of the study's config.

Every stage holds a bounded working set: the image stage and the image-mass study one chunk of at
most ``images.chunk_size`` examples and ``images.chunk_constituents`` constituents, read one branch at
a time, so that beside the chunk only one branch's baskets are decompressed (:data:`READ_BASKET_BYTES`);
an ingest job one read step of about ``READ_BYTES`` and its writer's buffer; training two
shuffle groups of ``train.block_rows x train.shuffle_blocks`` images and the standardization
sample; evaluation one block of 4096 images and, when computed, the Fisher discriminant's pixel
matrices (:func:`jetimage.evaluate.fisher_bytes`). A rule's ``mem_mb`` is a measured base (the
interpreter and its libraries) plus the measured cost of each bound, times :data:`MARGIN`, and
never below the rule's former fixed value (:data:`FLOOR_MB`). The constants come from
``benchmarks/constituent_memory.py`` (docs/faults.md, memory); per-example columns (a few
floats per example in evaluation) are covered by the base up to about ten million examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jetimage.formats.root import BASKET_ITEMS

__all__ = ["ESTIMATES", "FLOOR_MB", "MARGIN", "estimate_mb", "rule_mem_mb"]

MIB = 2**20
#: Safety factor on every estimate.
MARGIN = 1.5
#: The rules' former fixed requests (MB): an estimate never asks less.
FLOOR_MB = {"ingest": 4000, "images": 4000, "image_mass": 8000, "train": 8000, "evaluate": 8000,
            "pileup": 4000}
#: Resident memory of the interpreter with numpy, awkward, uproot and the compiled kernels (MiB).
BASE_MIB = 250
#: Resident memory with TensorFlow / Keras and a model loaded (MiB), and what evaluation's per-example
#: arrays (labels, weights, columns, scores, bootstrap) take at ten million examples.
KERAS_BASE_MIB = 2500 + 2000
#: Bytes per constituent held while a chunk is read and imaged (awkward records, cleaning,
#: the jet frame's temporaries), measured: see docs/faults.md.
IMAGE_BYTES_PER_CONSTITUENT = 200
#: Bytes per constituent of the image-mass study (four variants, the ``image`` mode's detector
#: images), measured likewise.
STUDY_BYTES_PER_CONSTITUENT = 400
#: The baskets a chunk's read holds: uproot decompresses every basket the read touches whole, beside
#: its compressed bytes (8 + at most 8 bytes per float64 item), one branch at a time; a chunk straddles
#: at most two baskets, and a basket of jetimage's writers holds at most about 2 x BASKET_ITEMS items
#: (files with larger baskets add what they hold: docs/faults.md, memory).
READ_BASKET_BYTES = 2 * 16 * 2 * BASKET_ITEMS
#: An ingest job: copies of one read step (uproot's baskets, the arrays, the completed jets) and
#: bytes per buffered constituent of its writer (the buffer and its concatenation at a flush).
INGEST_READ_COPIES, WRITER_BYTES_PER_CONSTITUENT = 4, 2 * 40
#: Images held per example of a chunk: the output buffer, the writer's float32 copy and one
#: compression chunk's worth of filters (the image stage); the study's step images.
IMAGE_COPIES, STUDY_COPIES = 3, 8
#: Rows of the evaluation blocks (:func:`jetimage.evaluate.iterate_rows`) and copies of a block held.
EVAL_BLOCK_ROWS, EVAL_BLOCK_COPIES = 4096, 4


def _row_bytes(images: Mapping[str, Any], channels: int | None = None) -> int:
    """Bytes of one float32 image of the ``images`` section."""
    n = len(images["channels"]) if channels is None else channels
    return 4 * int(images["n_eta"]) * int(images["n_phi"]) * n


def _images_bytes(cfg: Mapping[str, Any]) -> float:
    i = cfg["images"]
    return (BASE_MIB * MIB + IMAGE_BYTES_PER_CONSTITUENT * i["chunk_constituents"] + READ_BASKET_BYTES
            + IMAGE_COPIES * i["chunk_size"] * _row_bytes(i))


def _study_bytes(cfg: Mapping[str, Any]) -> float:
    i = cfg["images"]
    return (BASE_MIB * MIB + STUDY_BYTES_PER_CONSTITUENT * i["chunk_constituents"] + READ_BASKET_BYTES
            + STUDY_COPIES * i["chunk_size"] * _row_bytes(i, channels=1))


def _ingest_bytes(cfg: Mapping[str, Any]) -> float:
    from jetimage.stages.ingest import READ_BYTES  # deferred: the stage imports the physics layer

    return (BASE_MIB * MIB + INGEST_READ_COPIES * READ_BYTES
            + WRITER_BYTES_PER_CONSTITUENT * 2 * BASKET_ITEMS)


def _train_bytes(cfg: Mapping[str, Any]) -> float:
    t, row = cfg["train"], _row_bytes(cfg["images"])
    groups = 2 * 2 * t["block_rows"] * t["shuffle_blocks"] * row  # two cached groups, and a batch copy each
    sample = 3 * t["standardize_sample"] * row if t["standardize"] else 0  # sample, float64 moments
    return KERAS_BASE_MIB * MIB + groups + sample


def _evaluate_bytes(cfg: Mapping[str, Any]) -> float:
    from jetimage.evaluation.fisher import (
        fisher_bytes,  # deferred: Snakemake imports this module at parse time
    )

    i, e = cfg["images"], cfg["evaluate"]
    pixels = _row_bytes(i) // 4
    fisher = cfg.get("kind", "jets") == "jets" and (
        e["fisher"] is True or (e["fisher"] == "auto" and pixels <= e["fisher_max_pixels"]))
    return (KERAS_BASE_MIB * MIB + EVAL_BLOCK_COPIES * EVAL_BLOCK_ROWS * _row_bytes(i)
            + (fisher_bytes(pixels) if fisher else 0))


#: The working set of each rule (bytes) from the study's config.
ESTIMATES = {"ingest": _ingest_bytes, "images": _images_bytes, "image_mass": _study_bytes,
             "train": _train_bytes, "evaluate": _evaluate_bytes, "pileup": _study_bytes}


def estimate_mb(cfg: Mapping[str, Any], rule: str) -> int:
    """``MARGIN x`` the estimated working set of ``rule`` in MB, before the floor: what
    tests/test_resources.py holds the measured peaks to."""
    return math.ceil(MARGIN * ESTIMATES[rule](cfg) / 1e6)


def rule_mem_mb(cfg: Mapping[str, Any], rule: str) -> int:
    """``mem_mb`` of ``rule`` for the study ``cfg``: ``max(FLOOR_MB, MARGIN x estimate)`` in MB
    (10^6 bytes, Snakemake's unit)."""
    return max(FLOOR_MB[rule], estimate_mb(cfg, rule))
