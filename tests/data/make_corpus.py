"""Write the corpus of broken inputs used by tests/test_cli.py.

Usage: ``python tests/data/make_corpus.py [OUTDIR]`` (default: ``tests/data/broken``). Every file
is a small ROOT file (or pretends to be one) that the image stage must refuse or clean up.
``EXPECTED`` says what each one must do: an error naming ``what``, or a documented skip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from jetimage.formats.root import JetTreeWriter

#: file -> ("error", text the message must contain) or ("skip", number of images expected).
EXPECTED: dict[str, tuple[str, str | int]] = {
    "not_root.root": ("error", "not a readable ROOT file"),
    "empty.root": ("error", "not a readable ROOT file"),
    "truncated.root": ("error", "truncated"),
    "zero_entries.root": ("error", "has no entries"),
    "missing_tree.root": ("error", "no tree 'jets'"),
    "missing_branch.root": ("error", "lacks branches ['jet_m']"),
    "jagged_scalar.root": ("error", "branch 'jet_pt' of tree 'jets' must be one number per entry"),
    "flat_constituents.root": ("error", "branch 'constituent_pt' of tree 'jets' must be a jagged"),
    "string_branch.root": ("error", "branch 'tau21'"),
    "no_usable_jets.root": ("error", "no example passes the selection"),
    "bad_values.root": ("skip", 5),
}


def _jets(n: int, seed: int = 1, n_constituents: int = 20) -> dict:
    """Plausible jets: constituents spread around (eta, phi) = (0.5, 3.0), near the phi seam."""
    rng = np.random.default_rng(seed)
    counts = np.full(n, n_constituents)
    total = counts.sum()
    pt = rng.exponential(10.0, total) + 0.5
    eta = 0.5 + rng.normal(0, 0.3, total)
    phi = (3.0 + rng.normal(0, 0.3, total) + np.pi) % (2 * np.pi) - np.pi
    cons = {"pt": pt, "eta": eta, "phi": phi, "e": pt * np.cosh(eta),
            "charge": rng.integers(-1, 2, total).astype(np.int32),
            "pdgid": np.full(total, 211, dtype=np.int32)}
    jets = {
        "event": np.arange(n), "label": np.zeros(n, np.int32), "weight": np.ones(n),
        "jet_pt": np.full(n, 270.0), "jet_eta": np.full(n, 0.5), "jet_phi": np.full(n, 3.0),
        "jet_m": np.full(n, 60.0), "jet_e": np.full(n, 300.0), "tau21": np.full(n, 0.5),
        "n_subjets": np.ones(n, np.int32), "subjet1_pt": np.full(n, 200.0),
        "subjet1_eta": np.full(n, 0.5), "subjet1_phi": np.full(n, 3.0),
        "subjet2_pt": np.full(n, np.nan), "subjet2_eta": np.full(n, np.nan),
        "subjet2_phi": np.full(n, np.nan),
    }
    jets["constituents"] = ak.unflatten(ak.zip(cons), counts)
    return jets


def _write(path: Path, jets: dict) -> None:
    with JetTreeWriter(path) as w:
        w.extend(jets)


def _tree_without(path: Path, drop: str, replace: dict | None = None, n: int = 5) -> None:
    """A jets tree written by hand, without branch ``drop`` and with ``replace`` branches."""
    jets = _jets(n)
    data = {k: v for k, v in jets.items() if k not in ("constituents", drop)}
    data["constituent"] = jets["constituents"]
    if drop.startswith("constituent_"):
        field = drop.removeprefix("constituent_")
        data["constituent"] = jets["constituents"][[f for f in jets["constituents"].fields if f != field]]
    data.update(replace or {})
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()},
                 counter_name=lambda c: "n_constituents" if c == "constituent" else f"n_{c}",
                 field_name=lambda outer, inner: f"{outer}_{inner}").extend(data)


def make(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "not_root.root").write_text("this is a text file, not ROOT\n")
    (outdir / "empty.root").write_bytes(b"")
    good = outdir / "good.tmp.root"
    _write(good, _jets(500, n_constituents=40))
    blob = good.read_bytes()
    (outdir / "truncated.root").write_bytes(blob[: len(blob) // 2])
    good.unlink()
    _write(outdir / "zero_entries.root", {**_jets(0)})
    with uproot.recreate(outdir / "missing_tree.root") as f:
        f.mktree("events", {"x": "float64"}).extend({"x": np.arange(3.0)})
    _tree_without(outdir / "missing_branch.root", "jet_m")
    _tree_without(outdir / "jagged_scalar.root", "jet_pt",
                  {"jet_pt": ak.Array([[270.0]] * 5)})
    _tree_without(outdir / "flat_constituents.root", "constituent_pt",
                  {"constituent_pt": np.full(5, 10.0)})
    _tree_without(outdir / "string_branch.root", "tau21", {"tau21": np.full(5, True)})
    bad = _jets(8, seed=2)
    c = bad["constituents"]
    pt = ak.to_numpy(ak.flatten(c.pt)).copy()
    eta = ak.to_numpy(ak.flatten(c.eta)).copy()
    phi = ak.to_numpy(ak.flatten(c.phi)).copy()
    pt[0], pt[1], pt[2] = np.nan, -5.0, 0.0        # jet 0: unusable constituents (skipped)
    eta[21], phi[22] = np.inf, 7.0                 # jet 1: inf eta (skipped), phi beyond pi (wrapped)
    eta[40:60] = 4.0                               # jet 2: everything beyond the image (empty image)
    counts = ak.to_numpy(ak.num(c))
    cons = ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi, "e": ak.flatten(c.e),
                                "charge": ak.flatten(c.charge), "pdgid": ak.flatten(c.pdgid)}),
                        counts)
    bad["constituents"] = cons
    bad["jet_pt"][3] = np.nan                      # jet 3: non-finite jet kinematics (skipped)
    bad["jet_phi"][4] = np.inf                     # jet 4: idem (skipped)
    # jets 5 and 6: zero and one constituent
    cons_list = ak.to_list(cons)
    cons_list[5], cons_list[6] = [], cons_list[6][:1]
    bad["constituents"] = ak.Array(cons_list)
    bad["jet_eta"][7] = 9.0                        # jet 7: no constituent near the jet axis
    bad["subjet1_eta"][7] = np.nan
    _write(outdir / "bad_values.root", bad)
    nothing = _jets(4, seed=3)
    nothing["jet_pt"][:] = np.nan
    _write(outdir / "no_usable_jets.root", nothing)
    return sorted(outdir.glob("*.root"))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("broken")
    for p in make(out):
        print(p)
