"""Pixelization: intensity conservation inside the window and the moment-preserving kernel."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetimage.images.pixelize import Grid, pixelize, pixelize_flat

GRID = Grid(25, 25, 0.1, 0.1)


def points(n_min: int, n_max: int, lo: float, hi: float):
    """(eta, phi, pt) arrays of one jet with coordinates in [lo, hi]."""
    coord = st.floats(lo, hi, allow_nan=False)
    return st.lists(st.tuples(coord, coord, st.floats(0.1, 100.0)), min_size=n_min,
                    max_size=n_max).map(lambda rows: tuple(np.array(c, dtype=np.float64)
                                                           for c in zip(*rows, strict=True))
                                        if rows else (np.zeros(0),) * 3)


@settings(max_examples=60, deadline=None)
@given(inside=points(0, 30, -1.2, 1.2), outside=points(0, 10, 1.3, 3.0),
       deposit=st.sampled_from(["ngp", "moment"]))
def test_total_pt_conserved_inside_the_window(inside, outside, deposit):
    # moment deposits reach one pixel further: keep "inside" points one pixel from the edge
    eta_i, phi_i, pt_i = inside
    if deposit == "moment":
        eta_i, phi_i = eta_i * (1.1 / 1.2), phi_i * (1.1 / 1.2)
    eta = np.concatenate([eta_i, outside[0], -outside[0]])
    phi = np.concatenate([phi_i, outside[1], outside[1]])
    pt = np.concatenate([pt_i, outside[2], outside[2]])
    image = pixelize_flat(eta, phi, pt, np.array([len(pt)]), GRID, deposit)
    assert image.shape == (1, 25, 25, 1)
    assert image.sum(dtype=np.float64) == pytest.approx(pt_i.sum(), rel=1e-5, abs=1e-4)


def test_ngp_matches_histogram2d():
    rng = np.random.default_rng(1)
    eta, phi = rng.uniform(-1.5, 1.5, (2, 400))
    pt = rng.exponential(5.0, 400)
    counts = np.array([150, 0, 250])
    images = pixelize_flat(eta, phi, pt, counts, GRID, "ngp")
    edges = np.linspace(-1.25, 1.25, 26)
    for j, (a, b) in enumerate([(0, 150), (150, 150), (150, 400)]):
        ref, _, _ = np.histogram2d(eta[a:b], phi[a:b], [edges, edges], weights=pt[a:b])
        np.testing.assert_allclose(images[j, ..., 0], ref, rtol=1e-5, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(inside=points(1, 30, -1.1, 1.1))
def test_moment_kernel_keeps_first_and_second_moments(inside):
    eta, phi, pt = inside
    image = pixelize_flat(eta, phi, pt, np.array([len(pt)]), GRID, "moment")[0, ..., 0]
    ge, gp = GRID.centres()
    x, y = np.meshgrid(ge, gp, indexing="ij")
    w = image.astype(np.float64)
    total = pt.sum()
    assert w.min() >= -1e-6  # the kernel weights are non-negative
    assert (w * x).sum() == pytest.approx((pt * eta).sum(), rel=1e-5, abs=1e-4 * total)
    assert (w * y).sum() == pytest.approx((pt * phi).sum(), rel=1e-5, abs=1e-4 * total)
    # second moment: exact up to the constant (pixel_eta^2 + pixel_phi^2) / 4 per unit pT
    expected = (pt * (eta**2 + phi**2)).sum() + total * (0.1**2 + 0.1**2) / 4
    assert (w * (x**2 + y**2)).sum() == pytest.approx(expected, rel=1e-4, abs=1e-4 * total)


def test_ngp_second_moment_depends_on_position_but_moment_kernel_does_not():
    # one particle moved across a pixel: the ngp second moment jumps, the moment one is smooth
    ge, gp = GRID.centres()
    x, y = np.meshgrid(ge, gp, indexing="ij")
    offsets = np.linspace(0.0, 0.099, 12)
    for deposit, varies in (("ngp", True), ("moment", False)):
        m2 = []
        for off in offsets:
            img = pixelize_flat(np.array([0.3 + off]), np.array([0.0]), np.array([1.0]),
                                np.array([1]), GRID, deposit)[0, ..., 0]
            m2.append((img * (x**2 + y**2)).sum() - (0.3 + off) ** 2)
        spread = np.ptp(m2)
        assert (spread > 1e-3) if varies else (spread < 1e-5)


def test_multichannel_and_unknown_deposit():
    eta, phi, pt = np.array([0.0, 0.2]), np.array([0.0, -0.2]), np.array([2.0, 3.0])
    w = np.stack([pt, np.array([1.0, 0.0])], axis=1)
    image = pixelize_flat(eta, phi, w, np.array([2]), GRID, "ngp")
    assert image[..., 0].sum() == pytest.approx(5.0)
    assert image[..., 1].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="deposit"):
        pixelize_flat(eta, phi, pt, np.array([2]), GRID, "cic")


def test_pixelize_records_fill_every_channel_from_charge_and_pdgid():
    # one jet: photon, electron, pi+, K_L, muon, neutron, each in a pixel of its own
    pdg = [22, 11, 211, 130, 13, 2112]
    charge = [0, -1, 1, 0, -1, 0]
    eta = [-0.5, -0.3, -0.1, 0.1, 0.3, 0.5]
    pt = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    names = ["total", "charged", "neutral", "charged_count", "em", "had"]
    rec = {"eta": eta, "phi": [0.0] * 6, "pt": pt, "charge": charge}
    with_ids = ak.Array([[dict(zip([*rec, "pdgid"], v, strict=True))
                          for v in zip(*rec.values(), pdg, strict=True)]])
    image = pixelize(with_ids, GRID, names)
    sums = image.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(sums, [63.0, 22.0, 41.0, 3.0, 3.0, 44.0])
    # per pixel: the electron is charged and em, the muon charged only
    row = image[0, :, 12]
    np.testing.assert_allclose(row[9], [2.0, 2.0, 0.0, 1.0, 2.0, 0.0])  # eta -0.3: electron
    np.testing.assert_allclose(row[15], [16.0, 16.0, 0.0, 1.0, 0.0, 0.0])  # eta 0.3: muon
    # without pdg ids em and had are empty; without charge everything is neutral
    no_ids = ak.Array([[dict(zip(rec, v, strict=True)) for v in zip(*rec.values(), strict=True)]])
    sums = pixelize(no_ids, GRID, names).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(sums, [63.0, 22.0, 41.0, 3.0, 0.0, 0.0])
    bare = ak.Array([[{"eta": a, "phi": 0.0, "pt": b} for a, b in zip(eta, pt, strict=True)]])
    np.testing.assert_allclose(pixelize(bare, GRID, names[:3]).sum(axis=(0, 1, 2)), [63, 0, 63])
    with pytest.raises(ValueError, match="'tracks'"):
        pixelize(with_ids, GRID, ["tracks"])
