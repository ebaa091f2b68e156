"""Property-based tests of the readers of users' files (:mod:`jetimage.formats.readers`) through the
ingest stage: random small trees in the layouts the readers accept, with random branch types, NaN
and infinite values, empty entries, branches missing or of the wrong depth. Whatever the tree,
``ingest`` (the function ``jetimage ingest`` calls) either writes its chunk or raises one line
naming a key, file or branch (:class:`InputError` or :class:`ConfigError`, which the command line
prints as one line with exit status 2); never another exception, which would be a traceback.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jetimage.config import ConfigError, validate
from jetimage.formats.errors import InputError
from jetimage.formats.root import read_jets
from jetimage.stages.ingest import ingest, plan_chunks

from .conftest import tiny_raw_config

RAW = tiny_raw_config()  # read config.yaml once, not per example
RAW["jets"].update(pt_min=20.0, pt_max=3000.0)  # a wide window: most random jets make rows

#: Unusable values users' files hold, mixed into every branch.
BAD = (np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30)
DTYPES = ("float64", "float32", "int32", "int64", "bool")

#: Fields per layout: branch -> (jagged?, required by the reader, range of its ordinary values):
#: constituents of 40-120 GeV near eta = phi = 0 make jets of the study's window (250-300 GeV).
PT, ANGLE, ENERGY, ID = (40.0, 120.0), (-0.3, 0.3), (0.0, 150.0), (0.0, 3.0)
FIELDS: dict[str, dict[str, tuple[bool, bool, tuple[float, float]]]] = {
    "jetimage": {"constituent_pt": (True, True, PT), "constituent_eta": (True, True, ANGLE),
                 "constituent_phi": (True, True, ANGLE), "constituent_e": (True, False, ENERGY),
                 "constituent_mass": (True, False, ID), "jet_pt": (False, False, (240.0, 310.0)),
                 "jet_m": (False, False, ENERGY), "event": (False, False, (0.0, 1e6)),
                 "label": (False, False, (0.0, 1.0)), "w": (False, False, (-1.0, 2.0))},
    "particles": {"GenPart_pt": (True, True, PT), "GenPart_eta": (True, True, ANGLE),
                  "GenPart_phi": (True, True, ANGLE), "GenPart_mass": (True, False, ID),
                  "GenPart_pdgId": (True, False, (-300.0, 300.0)), "event": (False, False, (0.0, 1e6)),
                  "w": (False, False, (-1.0, 2.0))},
}


def _values(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Mostly ordinary values, sometimes an unusable one."""
    return st.one_of(st.floats(lo, hi), st.floats(lo, hi), st.floats(lo, hi), st.sampled_from(BAD))


def _rarely(p_in_12: int) -> st.SearchStrategy[bool]:
    """True in about ``p_in_12`` of 12 draws (False, the plain case, is what failures shrink to)."""
    return st.sampled_from([False] * (12 - p_in_12) + [True] * p_in_12)


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return values > 0
    if dtype.startswith("int"):
        return np.clip(np.nan_to_num(values, nan=0.0, posinf=1e6, neginf=-1e6), -1e6, 1e6).astype(dtype)
    return values.astype(dtype)


@st.composite
def trees(draw: Any, layout: str) -> dict[str, Any]:
    """A tree spec: entries, items per entry (empty entries too) and each branch's values, type and
    depth; some branches missing, some written with the wrong depth."""
    n = draw(st.integers(0, 6))
    counts = np.asarray(draw(st.lists(st.sampled_from([3, 4, 2, 1, 0]), min_size=n, max_size=n)), np.int64)
    branches: dict[str, Any] = {}
    for name, (jagged, required, (lo, hi)) in FIELDS[layout].items():
        if draw(_rarely(1 if required else 3)):
            continue  # missing
        if draw(_rarely(1)):
            jagged = not jagged  # the wrong depth
        dtype = draw(st.sampled_from(DTYPES)) if draw(_rarely(3)) else "float64"
        size = int(counts.sum()) if jagged else n
        values = _cast(np.asarray(draw(st.lists(_values(lo, hi), min_size=size, max_size=size)), np.float64),
                       dtype)
        branches[name] = ak.unflatten(values, counts) if jagged else values
    branches = branches or {"other": np.zeros(n)}  # a TTree needs a branch
    return {"n": n, "branches": branches, "weight": "w" in branches and draw(st.booleans())}


def _write(path: Path, tree: str, branches: dict[str, Any]) -> None:
    types = {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
    with uproot.recreate(path) as f:
        t = f.mktree(tree, types)  # a TTree (f[tree] = ... would write an RNTuple)
        if branches and len(next(iter(branches.values()))):
            t.extend(branches)


def _ingest(layout: str, spec: dict[str, Any]) -> None:
    """Write the tree, ingest it; assert the outcome is a chunk or one line naming what is wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user file.root"
        tree = {"jetimage": "jets", "particles": "Events"}[layout]
        _write(path, tree, spec["branches"])
        sample = {"name": "mine", "class": "background", "files": [str(path)], "preset": layout}
        if layout == "particles":
            sample["constituents_from"] = ["GenPart"]
        if spec["weight"]:
            sample["weight_branch"] = "w"
        raw = copy.deepcopy(RAW)
        raw["samples"][1] = sample
        out = Path(tmp) / "part0.root"
        try:
            cfg = validate(raw)
            (file, start, stop), = plan_chunks(cfg.sample("mine"))
            n = ingest(cfg, "mine", file, start, stop, out)
        except (InputError, ConfigError) as err:
            message = str(err)
            assert "\n" not in message, message
            assert str(path) in message or "samples[1]" in message, message
            assert not out.exists()
            return
        jets = read_jets([out]) if n else []
        assert len(jets) == n
        if n:
            assert np.isfinite(ak.to_numpy(jets.weight)).all()


SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("layout", sorted(FIELDS))
def test_ingest_of_any_small_tree_writes_its_chunk_or_names_the_problem_in_one_line(layout):
    @SETTINGS
    @given(trees(layout))
    def check(spec: dict[str, Any]) -> None:
        _ingest(layout, spec)

    check()
