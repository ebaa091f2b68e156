"""Write ``nested_vecvec.root``: a TTree written by ROOT itself in the nested layout that uproot
cannot write: per event, jets as ``vector<float>`` and their constituents as
``vector<vector<float>>``. Run once by hand with the PyPI package ``root`` (``pip install root``);
the file is small and shipped, the test (``tests/test_readers.py``) reads it with uproot.

Content: 40 events of 0-3 jets of 3-30 massless constituents each, around a random axis, seed 7.
"""

from pathlib import Path

import numpy as np
import ROOT

rng = np.random.default_rng(7)
path = Path(__file__).with_name("nested_vecvec.root")
f = ROOT.TFile(str(path), "RECREATE")
t = ROOT.TTree("events", "nested jets written by ROOT")
jet_eta = ROOT.std.vector("float")()
cons = {k: ROOT.std.vector(ROOT.std.vector("float"))() for k in ("pt", "eta", "phi", "e")}
number = np.zeros(1, dtype=np.int64)
t.Branch("jet_eta", jet_eta)
for k, v in cons.items():
    t.Branch(f"jet_constituent_{k}", v)
t.Branch("event_number", number, "event_number/L")
for event in range(40):
    jet_eta.clear()
    for v in cons.values():
        v.clear()
    number[0] = 1000 + 3 * event
    for _ in range(rng.integers(0, 4)):
        n = int(rng.integers(3, 31))
        eta0, phi0 = rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi)
        pt = rng.exponential(20.0, n) + 1.0
        eta, phi = eta0 + rng.normal(0, 0.2, n), phi0 + rng.normal(0, 0.2, n)
        values = {"pt": pt, "eta": eta, "phi": phi, "e": pt * np.cosh(eta)}
        jet_eta.push_back(float(eta0))
        for k, v in cons.items():
            inner = ROOT.std.vector("float")()
            for x in values[k]:
                inner.push_back(float(x))
            v.push_back(inner)
    t.Fill()
t.Write()
f.Close()
print(path, path.stat().st_size, "bytes")
