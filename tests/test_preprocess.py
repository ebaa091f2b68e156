"""Preprocessing: Lorentz-mode invariants and the properties of both modes."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetimage import config
from jetimage.formats.root import read_jets
from jetimage.images import channels
from jetimage.images.constituents import FlatConstituents, centre_of
from jetimage.images.detector import mirror_eta, rotate_images
from jetimage.images.lorentz import lorentz_frame, rotate_about_x
from jetimage.images.pixelize import Grid
from jetimage.images.preprocess import make_images
from jetimage.stages import generate

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
OPTIONS = {
    "n_eta": 25, "n_phi": 25, "pixel_eta": 0.1, "pixel_phi": 0.1, "intensity": "pt",
    "channels": ["total"], "centre": "leading_subjet", "rotate": "none", "flip": "none",
    "normalize": "none", "mode": "lorentz", "chunk_size": 1000,
}
GRID = Grid(25, 25, 0.1, 0.1)
#: Charge of the particle (positive PDG id) of each |PDG id| used here.
CHARGE = {22: 0, 11: -1, 13: -1, 12: 0, 211: 1, 130: 0, 2112: 0, 2212: 1}


def make_jets(constituents: list[list[tuple[float, float, float, float]]],
              centre: list[tuple[float, float]] | None = None,
              subjet2: list[tuple[float, float]] | None = None,
              pdgids: list[list[int]] | None = None) -> ak.Array:
    """Jet records from constituent lists of (pt, eta, phi, mass); subjet 1 is ``centre``.

    Without ``pdgids`` every second constituent has charge 1 and there is no ``pdgid`` field;
    with them, each constituent gets its PDG id and the charge of that particle."""
    rows = []
    for k, cons in enumerate(constituents):
        pt, eta, phi, m = (np.array(c, dtype=np.float64) for c in zip(*cons, strict=True)) \
            if cons else (np.zeros(0),) * 4
        e = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
        px, py, pz = (pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum(), (pt * np.sinh(eta)).sum()
        jpt = np.hypot(px, py)
        jeta = float(np.arcsinh(pz / jpt)) if jpt > 0 else np.nan
        jphi = float(np.arctan2(py, px)) if jpt > 0 else np.nan
        c_eta, c_phi = centre[k] if centre else (jeta, jphi)
        s_eta, s_phi = subjet2[k] if subjet2 else (np.nan, np.nan)
        rows.append({
            "jet_pt": jpt, "jet_eta": jeta, "jet_phi": jphi, "jet_m": 0.0, "jet_e": e.sum(),
            "subjet1_eta": c_eta, "subjet1_phi": c_phi, "subjet2_eta": s_eta,
            "subjet2_phi": s_phi, "label": 0, "weight": 1.0,
            "constituents": [
                {"pt": a, "eta": b, "phi": c, "e": d, "charge": 1 if i % 2 else 0}
                if pdgids is None else
                {"pt": a, "eta": b, "phi": c, "e": d, "charge": CHARGE[abs(pdgids[k][i])]
                 * (1 if pdgids[k][i] > 0 else -1), "pdgid": pdgids[k][i]}
                for i, (a, b, c, d) in enumerate(zip(pt, eta, phi, e, strict=True))],
        })
    return ak.Array(rows)


def mass(px, py, pz, e, counts):
    offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
    s = [np.add.reduceat(x, offsets) for x in (px, py, pz, e)]
    return np.sqrt(np.maximum(s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2, 0.0))


def cartesian(flat: FlatConstituents):
    return (flat.pt * np.cos(flat.phi), flat.pt * np.sin(flat.phi),
            flat.pt * np.sinh(flat.eta), flat.e)


@pytest.fixture(scope="module")
def real_jets(tmp_path_factory) -> ak.Array:
    """Real Pythia + FastJet jets (W and QCD), generated once for this module."""
    cfg = config.load(CONFIG, study="jets")
    out = tmp_path_factory.mktemp("jets")
    paths = []
    for sample, n in (("wjets", 250), ("qcd", 150)):
        cfg.sample(sample).update(n_events=n, n_shards=1)
        paths.append(out / f"{sample}.root")
        generate.generate(cfg, sample, 0, paths[-1])
    jets = read_jets(paths)
    assert len(jets) > 50
    return jets


@pytest.mark.parametrize("rotate", ["none", "subjet", "principal"])
@pytest.mark.parametrize("flip", ["none", "parity"])
@pytest.mark.parametrize("centre", ["leading_subjet", "centroid", "jet_axis"])
def test_lorentz_mode_keeps_the_constituent_jet_mass(real_jets, rotate, flip, centre):
    flat = FlatConstituents.from_awkward(real_jets.constituents, np.float64)
    eta0, phi0 = centre_of(real_jets, centre)
    s2 = (ak.to_numpy(real_jets.subjet2_eta), ak.to_numpy(real_jets.subjet2_phi))
    fr = lorentz_frame(flat, eta0, phi0, rotate, flip, "pt", s2)
    before = mass(*cartesian(flat), flat.counts)
    after = mass(fr.px, fr.py, fr.pz, fr.e, flat.counts)
    np.testing.assert_allclose(after, before, rtol=1e-6)
    np.testing.assert_allclose(before, ak.to_numpy(real_jets.jet_m), rtol=1e-6)
    # each constituent mass too (E^2 - p^2 is kept to rounding)
    m2 = fr.e**2 - fr.px**2 - fr.py**2 - fr.pz**2
    m2_in = flat.e**2 - (flat.pt * np.cosh(flat.eta)) ** 2
    np.testing.assert_allclose(m2, m2_in, atol=1e-6 * flat.e.max() ** 2)


def test_lorentz_mode_keeps_the_massless_jet_mass(real_jets):
    # the default: constituents as massless deposits (E = pT cosh eta); their jet mass is kept
    flat = FlatConstituents.from_awkward(real_jets.constituents, np.float64, massless=True)
    np.testing.assert_allclose(flat.e, flat.pt * np.cosh(flat.eta))
    eta0, phi0 = centre_of(real_jets, "leading_subjet")
    s2 = (ak.to_numpy(real_jets.subjet2_eta), ak.to_numpy(real_jets.subjet2_phi))
    fr = lorentz_frame(flat, eta0, phi0, "subjet", "parity", "pt", s2)
    before = mass(*cartesian(flat), flat.counts)
    np.testing.assert_allclose(mass(fr.px, fr.py, fr.pz, fr.e, flat.counts), before, rtol=1e-6)
    # and each translated constituent moves by exactly -eta0 in pseudorapidity
    fr0 = lorentz_frame(flat, eta0, phi0)
    np.testing.assert_allclose(fr0.eta, flat.eta - np.repeat(eta0, flat.counts), atol=1e-9)


def random_jets(seed: int, n: int = 60) -> ak.Array:
    """Jets of 3-40 random massive constituents around a random axis, second subjet or none."""
    rng = np.random.default_rng(seed)
    cons, centres, subjets = [], [], []
    for _ in range(n):
        eta0, phi0 = rng.uniform(-2.5, 2.5), rng.uniform(-np.pi, np.pi)
        k = int(rng.integers(3, 40))
        d_eta, d_phi = rng.normal(0.0, 0.4, (2, k))
        phi = np.angle(np.exp(1j * (phi0 + d_phi)))
        cons.append(list(zip(rng.exponential(10.0, k) + 0.1, eta0 + d_eta, phi,
                             rng.uniform(0.0, 1.0, k), strict=True)))
        centres.append((eta0, phi0))
        subjets.append((eta0 + d_eta[1], phi[1]) if rng.uniform() < 0.8 else (np.nan, np.nan))
    return make_jets(cons, centre=centres, subjet2=subjets)


def assert_same_images(jets: ak.Array, opts: dict, tol: float = 2e-5) -> None:
    a, extras_a = make_images(jets, opts)
    b, extras_b = make_images(jets, opts, backend="numpy")
    assert a.dtype == np.float32 and a.shape == b.shape
    peak = np.maximum(b.max(axis=(1, 2), keepdims=True), 1e-30)
    # the kernel computes in float32 (the pixels' precision): coordinates to ~1e-6 of a pixel,
    # pixel sums to a few float32 ulps of the peak
    np.testing.assert_array_less(np.abs(a - b) / peak, tol)
    assert set(extras_a) == set(extras_b)
    for key, value in extras_b.items():
        # the norms are those of the float32 image (~1e-6 relative)
        rtol = 1e-5 if key.startswith("norm_scale") else 1e-6
        np.testing.assert_allclose(extras_a[key], value, rtol=rtol, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("massless", [True, False])
@pytest.mark.parametrize("deposit", ["moment", "ngp"])
@pytest.mark.parametrize("rotate", ["subjet", "principal"])
def test_numba_kernel_matches_the_numpy_reference_on_real_jets(real_jets, massless, deposit, rotate):
    opts = {**OPTIONS, "massless": massless, "deposit": deposit, "rotate": rotate,
            "flip": "parity", "normalize": "l1",
            "channels": ["total", "charged", "neutral", "charged_count"]}
    assert_same_images(real_jets, opts)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("intensity", ["pt", "e"])
def test_numba_kernel_matches_the_numpy_reference_on_random_jets(seed, intensity):
    jets = random_jets(seed)
    for centre, rotate, normalize in (("leading_subjet", "subjet", "l2"),
                                      ("centroid", "none", "none"),
                                      ("jet_axis", "principal", "l1")):
        opts = {**OPTIONS, "intensity": intensity, "centre": centre, "rotate": rotate,
                "flip": "parity", "normalize": normalize, "massless": seed == 1,
                "channels": ["total", "neutral"]}
        assert_same_images(jets, opts)


jet_strategy = st.lists(
    st.tuples(st.floats(0.5, 100.0), st.floats(-0.9, 0.9), st.floats(-0.9, 0.9),
              st.floats(0.0, 1.0)),
    min_size=2, max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(cons=jet_strategy, eta0=st.floats(-2.0, 2.0), phi0=st.floats(-np.pi, np.pi),
       angle=st.floats(-np.pi, np.pi))
def test_lorentz_primitives_keep_mass_and_rotation_by_two_pi_is_identity(cons, eta0, phi0, angle):
    cons = [(pt, eta + eta0, phi0 + phi, m) for pt, eta, phi, m in cons]
    jets = make_jets([cons])
    flat = FlatConstituents.from_awkward(jets.constituents, np.float64)
    fr = lorentz_frame(flat, np.array([eta0]), np.array([phi0]))
    m0 = mass(*cartesian(flat), flat.counts)
    # a collinear massless pair has m ~ 1e-8 E from rounding alone: absolute floor 1e-6 E
    tol = {"rtol": 1e-6, "atol": 1e-6 * flat.e.sum()}
    np.testing.assert_allclose(mass(fr.px, fr.py, fr.pz, fr.e, flat.counts), m0, **tol)
    pz, py = rotate_about_x(fr.pz, fr.py, np.cos(angle), np.sin(angle))
    np.testing.assert_allclose(mass(fr.px, py, pz, fr.e, flat.counts), m0, **tol)
    pz2, py2 = rotate_about_x(fr.pz, fr.py, np.cos(2 * np.pi), np.sin(2 * np.pi))
    np.testing.assert_allclose(pz2, fr.pz, atol=1e-9 * flat.e.max())
    np.testing.assert_allclose(py2, fr.py, atol=1e-9 * flat.e.max())


@settings(max_examples=30, deadline=None)
@given(cons=jet_strategy, eta0=st.floats(-1.5, 1.5), phi0=st.floats(-np.pi, np.pi),
       centre=st.sampled_from(["leading_subjet", "centroid", "jet_axis"]))
def test_after_centring_the_centre_is_at_the_image_centre(cons, eta0, phi0, centre):
    cons = [(pt, eta + eta0, phi0 + phi, m) for pt, eta, phi, m in cons]
    c_eta, c_phi = cons[0][1], cons[0][2]
    jets = make_jets([cons], centre=[(c_eta, c_phi)])
    e0, p0 = centre_of(jets, centre)
    # a massless probe along the chosen centre goes to eta = phi = 0 exactly
    probe = make_jets([[(1.0, float(e0[0]), float(p0[0]), 0.0)]])
    fr = lorentz_frame(FlatConstituents.from_awkward(probe.constituents), e0, p0)
    assert abs(fr.eta[0]) < 1e-9 and abs(fr.phi[0]) < 1e-9
    # in both modes that probe lands in the central pixel
    probe = make_jets([[(1.0, float(e0[0]), float(p0[0]), 0.0)]], centre=[(e0[0], p0[0])])
    for mode in ("lorentz", "image"):
        img, _ = make_images(probe, {**OPTIONS, "mode": mode, "deposit": "ngp"})
        assert img[0, 12, 12, 0] == pytest.approx(1.0, rel=1e-5)


@settings(max_examples=30, deadline=None)
@given(cons=jet_strategy, delta=st.floats(-0.3, 0.3), mode=st.sampled_from(["lorentz", "image"]))
def test_jets_straddling_phi_pi_come_out_whole(cons, delta, mode):
    # the same jet centred at phi = 0 and at phi = pi + delta (wrapped) gives the same image
    def shifted(phi0):
        c = [(pt, eta, float(np.angle(np.exp(1j * (phi + phi0)))), m) for pt, eta, phi, m in cons]
        return make_jets([c], centre=[(0.0, float(np.angle(np.exp(1j * phi0))))])

    opts = {**OPTIONS, "mode": mode, "centre": "leading_subjet"}
    if mode == "lorentz":
        a, _ = make_images(shifted(np.pi + delta), opts)
        b, _ = make_images(shifted(delta), opts)
        np.testing.assert_allclose(a, b, atol=1e-4 * a.max())
    else:
        a, _ = make_images(shifted(np.pi + 0.05), opts)
        b, _ = make_images(shifted(0.05), opts)
        assert a.sum() == pytest.approx(b.sum(), rel=1e-5)
    total = sum(pt for pt, eta, phi, m in cons)
    assert a.sum() == pytest.approx(total, rel=1e-4)  # everything is inside the window


@settings(max_examples=30, deadline=None)
@given(cons=jet_strategy)
def test_parity_flip_makes_the_image_reflection_invariant(cons):
    # flip twice = identity for the reflection; the parity flip is idempotent, so a jet and
    # its mirror image give the same flipped image
    # constituents within 1e-3 of the axis: on it (their side is lost to float32 rounding)
    cons = [(pt, eta if abs(eta) > 1e-3 else 0.0, phi, m) for pt, eta, phi, m in cons]
    mirrored = [(pt, -eta, phi, m) for pt, eta, phi, m in cons]
    jets = make_jets([cons, mirrored], centre=[(0.0, 0.0)] * 2)
    left = np.array([sum(pt for pt, eta, *_ in cons if eta < 0)])
    right = np.array([sum(pt for pt, eta, *_ in cons if eta > 0)])
    if abs(left - right) <= 1e-6 * (left + right):
        return  # a tie: either side is allowed
    img, extras = make_images(jets, {**OPTIONS, "flip": "parity"})
    np.testing.assert_allclose(img[0], img[1], atol=1e-4 * img.max())
    assert extras["flipped"].sum() == 1
    np.testing.assert_array_equal(mirror_eta(mirror_eta(img)), img)


@settings(max_examples=20, deadline=None)
@given(angle=st.floats(-np.pi, np.pi), seed=st.integers(0, 2**32 - 1))
def test_image_rotation_matches_scipy_and_two_pi_is_identity(angle, seed):
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)
    img = np.zeros((2, 25, 25, 1), dtype=np.float32)
    img[:, 6:19, 6:19, 0] = rng.exponential(1.0, (2, 13, 13))
    out = rotate_images(img, np.array([angle, 2 * np.pi]), GRID)
    np.testing.assert_allclose(out[1], img[1], atol=1e-5 * img.max())
    i, j = np.meshgrid(np.arange(25) - 12, np.arange(25) - 12, indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    ref = map_coordinates(img[0, ..., 0].astype(np.float64), [c * i + s * j + 12, -s * i + c * j + 12],
                          order=3, mode="grid-constant")
    np.testing.assert_allclose(out[0, ..., 0], ref, atol=1e-5 * img.max())


@pytest.mark.parametrize("mode", ["lorentz", "image"])
@pytest.mark.parametrize("rotate", ["subjet", "principal"])
def test_second_subjet_or_principal_axis_ends_vertical(mode, rotate):
    # two prongs: the second at 45 degrees; after rotation it sits straight below the centre
    cons = [(100.0, 0.0, 0.0, 0.0), (50.0, 0.4, 0.4, 0.0)]
    jets = make_jets([cons], centre=[(0.0, 0.0)], subjet2=[(0.4, 0.4)])
    img, extras = make_images(jets, {**OPTIONS, "mode": mode, "rotate": rotate, "deposit": "ngp"})
    x = img[0, ..., 0].astype(np.float64)
    if rotate == "subjet":
        away = x.copy()
        away[11:14, 11:14] = 0.0  # the leading prong and its interpolation ringing
        i, j = np.unravel_index(np.argmax(away), away.shape)
        assert i == 12 and abs(j - (12 - 0.4 * np.sqrt(2) / 0.1)) <= 1  # straight below
    u, v = np.meshgrid(np.arange(25) - 12.0, np.arange(25) - 12.0, indexing="ij")
    w = x / x.sum()
    cuu = (w * u * u).sum() - (w * u).sum() ** 2
    cvv = (w * v * v).sum() - (w * v).sum() ** 2
    assert cuu < 0.05 * cvv  # the jet lies along the vertical (phi) axis
    assert np.isfinite(extras["rotation"]).all()


@pytest.mark.parametrize("mode", ["lorentz", "image"])
@pytest.mark.parametrize("rotate", ["none", "subjet", "principal"])
@pytest.mark.parametrize("normalize", ["none", "l1", "l2"])
def test_zero_and_one_constituent_jets_are_defined(mode, rotate, normalize):
    jets = make_jets([[], [(50.0, 0.3, -2.0, 0.1)]])
    opts = {**OPTIONS, "mode": mode, "rotate": rotate, "flip": "parity", "normalize": normalize,
            "centre": "centroid", "channels": ["total", "charged", "neutral", "charged_count"]}
    img, extras = make_images(jets, opts)
    assert img.shape == (2, 25, 25, 4) and np.isfinite(img).all()
    assert not img[0].any()
    x = img[1, ..., 0].astype(np.float64)
    norm = {"none": x.sum() / 50.0, "l1": np.abs(x).sum(), "l2": np.sqrt((x * x).sum())}
    assert norm[normalize] == pytest.approx(1.0, rel=1e-4)
    assert all(len(v) == 2 and np.isfinite(v).all() for v in extras.values())


@pytest.mark.parametrize("how", ["l1", "l2"])
def test_normalization_scale_restores_the_image(real_jets, how):
    opts = {**OPTIONS, "channels": ["total", "charged_count"], "rotate": "subjet",
            "flip": "parity"}
    raw, _ = make_images(real_jets, opts)
    img, extras = make_images(real_jets, {**opts, "normalize": how})
    for k, name in enumerate(opts["channels"]):
        scale = extras[f"norm_scale_{name}"]
        np.testing.assert_allclose(img[..., k] * scale[:, None, None], raw[..., k],
                                   rtol=1e-4, atol=1e-5 * raw[..., k].max())
        norms = np.abs(img[..., k]).sum(axis=(1, 2)) if how == "l1" else \
            np.sqrt((img[..., k] ** 2).sum(axis=(1, 2)))
        np.testing.assert_allclose(norms[scale > 0], 1.0, rtol=1e-4)


def test_intensity_e_and_channels(real_jets):
    opts = {**OPTIONS, "channels": ["total", "charged", "neutral", "charged_count"]}
    img, _ = make_images(real_jets, opts)
    np.testing.assert_allclose(img[..., 1] + img[..., 2], img[..., 0], atol=1e-3)
    # E images in lorentz mode carry the boosted energies: more than pT, less than lab E
    img_e, _ = make_images(real_jets, {**opts, "intensity": "e"})
    assert (img_e[..., 0].sum(axis=(1, 2)) >= 0.999 * img[..., 0].sum(axis=(1, 2))).all()
    with pytest.raises(ValueError, match="mode"):
        make_images(real_jets, {**opts, "mode": "spline"})


ALL_CHANNELS = ["total", "charged", "neutral", "charged_count", "em", "had"]
VERTEX_CHANNELS = ["total", "charged", "neutral", "charged_lv", "charged_pu", "neutral_lv"]


def test_channel_flags_and_weights_per_particle():
    pdg = np.array([22, 11, -11, 211, -211, 130, 13, -13, 2112, 12, 2212])
    charge = np.array([CHARGE[abs(p)] * np.sign(p) for p in pdg])
    flags = channels.flags(charge, pdg)
    C, E, H = channels.CHARGED, channels.EM, channels.HADRON
    assert flags.dtype == np.int32
    np.testing.assert_array_equal(flags, [E, C | E, C | E, C | H, C | H, H, C, C, H, 0, C | H])
    # without ids only the charge is known
    np.testing.assert_array_equal(channels.flags(charge, None), np.where(charge != 0, C, 0))
    value = np.arange(1.0, len(pdg) + 1, dtype=np.float32)
    w = channels.channel_weights(value, flags, ALL_CHANNELS)
    assert w.shape == (len(pdg), 6) and w.dtype == np.float32
    charged = charge != 0
    np.testing.assert_array_equal(w[:, 0], value)
    np.testing.assert_array_equal(w[:, 1], np.where(charged, value, 0))
    np.testing.assert_array_equal(w[:, 2], np.where(charged, 0, value))
    np.testing.assert_array_equal(w[:, 3], charged.astype(np.float32))
    np.testing.assert_array_equal(w[:, 4], [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0])  # e, gamma
    np.testing.assert_array_equal(w[:, 5], [0, 0, 0, 4, 5, 6, 0, 0, 9, 0, 11])  # hadrons
    np.testing.assert_array_equal(channels.codes(["had", "total", "em"]), [5, 0, 4])
    with pytest.raises(ValueError, match="'pions'.*charged_count"):
        channels.channel_weights(value, flags, ["total", "pions"])
    with pytest.raises(ValueError, match="'pions'"):
        channels.codes(["pions"])


def mixed_jets(seed: int, n: int = 12) -> tuple[ak.Array, list[list[int]]]:
    """Jets of photons, electrons, pions, K_L, muons, neutrons and neutrinos near their axis."""
    rng = np.random.default_rng(seed)
    kinds = [22, 11, -11, 211, -211, 130, 13, -13, 2112, 12]
    cons, centres, subjets, pdgids = [], [], [], []
    for _ in range(n):
        eta0, phi0 = rng.uniform(-2.0, 2.0), rng.uniform(-np.pi, np.pi)
        k = int(rng.integers(len(kinds), 30))
        ids = kinds + [int(x) for x in rng.choice(kinds, k - len(kinds))]  # every kind
        d_eta, d_phi = rng.uniform(-0.8, 0.8, (2, k))
        phi = np.angle(np.exp(1j * (phi0 + d_phi)))
        cons.append(list(zip(rng.exponential(10.0, k) + 0.5, eta0 + d_eta, phi,
                             rng.uniform(0.0, 0.5, k), strict=True)))
        centres.append((eta0, phi0))
        subjets.append((eta0 + d_eta[1], phi[1]))
        pdgids.append(ids)
    return make_jets(cons, centre=centres, subjet2=subjets, pdgids=pdgids), pdgids


@pytest.mark.parametrize("deposit", ["moment", "ngp"])
def test_em_and_had_channels_numba_numpy_and_sums(deposit):
    jets, pdgids = mixed_jets(3)
    for rotate, normalize, intensity in (("subjet", "l1", "pt"), ("principal", "none", "e"),
                                         ("none", "l2", "pt")):
        opts = {**OPTIONS, "channels": ALL_CHANNELS, "deposit": deposit, "rotate": rotate,
                "flip": "parity", "normalize": normalize, "intensity": intensity}
        assert_same_images(jets, opts)
    # sums per jet, without rotation (pT is then kept) and with every constituent inside:
    # em + had + muons (+ neutrinos, in neither) = total; charged + neutral = total
    opts = {**OPTIONS, "channels": ALL_CHANNELS, "deposit": deposit, "flip": "parity",
            "centre": "jet_axis"}
    pt = [ak.to_numpy(c.pt) for c in jets.constituents]
    apid = [np.abs(p) for p in pdgids]
    expect = {
        "total": [x.sum() for x in pt],
        "em": [x[np.isin(a, (11, 22))].sum() for x, a in zip(pt, apid, strict=True)],
        "had": [x[a > 100].sum() for x, a in zip(pt, apid, strict=True)],
        "charged_count": [float(np.sum(ak.to_numpy(c.charge) != 0)) for c in jets.constituents],
    }
    rest = [x[np.isin(a, (12, 13))].sum() for x, a in zip(pt, apid, strict=True)]
    assert min(rest) > 0 and min(expect["em"]) > 0 and min(expect["had"]) > 0
    for mode, backend in (("lorentz", "numba"), ("lorentz", "numpy"), ("image", "numpy")):
        img, _ = make_images(jets, {**opts, "mode": mode}, backend=backend)
        sums = img.sum(axis=(1, 2), dtype=np.float64)
        for name, value in expect.items():
            np.testing.assert_allclose(sums[:, ALL_CHANNELS.index(name)], value, rtol=1e-5,
                                       err_msg=f"{mode} {backend} {name}")
        np.testing.assert_allclose(sums[:, 4] + sums[:, 5] + rest, sums[:, 0], rtol=1e-5)
        np.testing.assert_allclose(sums[:, 1] + sums[:, 2], sums[:, 0], rtol=1e-5)
        # the pixels too: em + had never exceed the total
        assert (img[..., 4] + img[..., 5] <= img[..., 0] * (1 + 1e-5) + 1e-5).all()


def with_pileup(jets: ak.Array, seed: int) -> ak.Array:
    """``jets`` with an ``origin`` field (0) and, per jet, a few pileup particles (origin 1) added
    around its axis; the jet fields (the centre: subjet 1) stay."""
    rng = np.random.default_rng(seed)
    rows = ak.to_list(jets)
    for row in rows:
        for c in row["constituents"]:
            c["origin"] = 0
        for _ in range(int(rng.integers(5, 15))):
            pid = int(rng.choice([211, -211, 22, 130]))
            row["constituents"].append({
                "pt": float(rng.exponential(1.0) + 0.1), "eta": row["subjet1_eta"] + rng.uniform(-0.9, 0.9),
                "phi": float(np.angle(np.exp(1j * (row["subjet1_phi"] + rng.uniform(-0.9, 0.9))))),
                "e": 0.0, "charge": CHARGE[abs(pid)] * (1 if pid > 0 else -1), "pdgid": pid, "origin": 1})
            c = row["constituents"][-1]
            c["e"] = c["pt"] * np.cosh(c["eta"])
    return ak.Array(rows)


@pytest.mark.parametrize("deposit", ["moment", "ngp"])
def test_vertex_channels_sum_and_the_leading_vertex_ones_ignore_pileup(deposit):
    """charged_lv + charged_pu + neutral = total in every pixel; the leading-vertex channels of a
    jet with pileup equal the charged and neutral images of the jet without it (same centre)."""
    clean, _ = mixed_jets(5)
    piled = with_pileup(clean, seed=5)
    opts = {**OPTIONS, "channels": VERTEX_CHANNELS, "deposit": deposit}
    for rotate, normalize in (("subjet", "l1"), ("none", "none")):
        assert_same_images(piled, {**opts, "rotate": rotate, "normalize": normalize})
    for mode, backend in (("lorentz", "numba"), ("lorentz", "numpy"), ("image", "numpy")):
        img, _ = make_images(piled, {**opts, "mode": mode}, backend=backend)
        ref, _ = make_images(clean, {**opts, "mode": mode}, backend=backend)
        total, charged, neutral, c_lv, c_pu, n_lv = np.moveaxis(img, -1, 0)
        np.testing.assert_allclose(c_lv + c_pu + neutral, total, rtol=1e-5, atol=1e-5)
        assert c_pu.sum() > 0 and (neutral - n_lv).sum() > 0  # the pileup is in the images
        np.testing.assert_allclose(c_lv + c_pu, charged, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(c_lv, ref[..., 1], err_msg=f"{mode} {backend}")
        np.testing.assert_array_equal(n_lv, ref[..., 2], err_msg=f"{mode} {backend}")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_unknown_channel_is_named(backend):
    jets, _ = mixed_jets(4, n=2)
    with pytest.raises(ValueError, match="'hadronic'.*'em', 'had'"):
        make_images(jets, {**OPTIONS, "channels": ["total", "hadronic"]}, backend=backend)


def test_em_and_had_are_empty_without_pdg_ids():
    # make_jets without pdgids: charge only, no pdgid field
    jets = random_jets(5, n=6)
    opts = {**OPTIONS, "channels": ALL_CHANNELS, "rotate": "subjet", "flip": "parity"}
    for backend in ("numba", "numpy"):
        img, _ = make_images(jets, opts, backend=backend)
        assert img[..., 0].sum() > 0 and img[..., 1].sum() > 0
        assert not img[..., 4].any() and not img[..., 5].any()


# ---------------------------------------------------------------------------------------------
# boost normalization
# ---------------------------------------------------------------------------------------------

E_REF = 275.0


@pytest.mark.parametrize("massless", [True, False])
def test_boost_keeps_the_jet_mass_and_gives_every_jet_the_reference_energy(real_jets, massless):
    flat = FlatConstituents.from_awkward(real_jets.constituents, np.float64, massless=massless)
    eta0, phi0 = centre_of(real_jets, "leading_subjet")
    s2 = (ak.to_numpy(real_jets.subjet2_eta), ak.to_numpy(real_jets.subjet2_phi))
    plain = lorentz_frame(flat, eta0, phi0, "subjet", "parity", "pt", s2)
    fr = lorentz_frame(flat, eta0, phi0, "subjet", "parity", "pt", s2, boost_energy=E_REF)
    before = mass(*cartesian(flat), flat.counts)
    np.testing.assert_allclose(mass(fr.px, fr.py, fr.pz, fr.e, flat.counts), before, rtol=1e-9)
    offsets = np.concatenate([[0], np.cumsum(flat.counts)])[:-1]
    e_jet = np.add.reduceat(fr.e, offsets)
    np.testing.assert_allclose(e_jet, E_REF, rtol=1e-9)  # every jet here has T < E_ref
    assert np.abs(np.add.reduceat(plain.e, offsets) - E_REF).max() > 5.0  # it was not so before
    # the momentum transverse to the axis is untouched, and so is the subjet rotation (jets
    # without a second subjet use the principal axis of the boosted directions instead)
    np.testing.assert_allclose(np.hypot(fr.py, fr.pz), np.hypot(plain.py, plain.pz), atol=1e-9)
    has_s2 = np.isfinite(s2[0])
    assert has_s2.mean() > 0.5
    np.testing.assert_allclose(fr.angle[has_s2], plain.angle[has_s2], atol=1e-12)
    assert np.abs(fr.boost).max() > 0.01


def test_boost_aberration_formula():
    # a massless constituent at angle theta from the axis: tan(theta'/2) = e^y tan(theta/2)
    jets = make_jets([[(100.0, 0.0, 0.0, 0.0), (60.0, 0.0, 0.3, 0.0), (40.0, 0.2, -0.1, 0.0)]])
    flat = FlatConstituents.from_awkward(jets.constituents, np.float64, massless=True)
    fr = lorentz_frame(flat, np.zeros(1), np.zeros(1), boost_energy=E_REF)
    theta = np.arccos(flat.pt * np.cos(flat.phi) / flat.e)
    theta_b = np.arccos(fr.px / np.sqrt(fr.px**2 + fr.py**2 + fr.pz**2))
    np.testing.assert_allclose(np.tan(theta_b / 2), np.exp(fr.boost[0]) * np.tan(theta / 2),
                               rtol=1e-9, atol=1e-12)
    assert fr.boost[0] < 0  # 200 GeV jet boosted up to 275 GeV: angles shrink
    assert theta_b[1] < theta[1]


def test_boost_images_have_equal_totals_and_kernel_matches_reference(real_jets):
    opts = {**OPTIONS, "rotate": "subjet", "flip": "parity", "normalize": "boost",
            "boost_energy": E_REF, "intensity": "e"}
    assert_same_images(real_jets, opts)
    img, extras = make_images(real_jets, opts)
    raw, _ = make_images(real_jets, {**opts, "normalize": "none"})
    totals, raw_totals = img.sum(axis=(1, 2, 3), dtype=np.float64), raw.sum(axis=(1, 2, 3), dtype=np.float64)
    # E images: the total is the jet energy E_ref wherever the jet fits the window
    inside = np.abs(totals / E_REF - 1.0) < 1e-4
    assert inside.mean() > 0.8  # the rest have constituents outside the 2.5 x 2.5 window
    assert np.std(totals[inside]) < 0.01 * np.std(raw_totals)
    assert "boost_rapidity" in extras and not any(k.startswith("norm_scale") for k in extras)
    # pT images: equal up to cosh(eta) of the pixels (a few percent), far closer than unboosted
    pt_opts = {**opts, "intensity": "pt"}
    assert_same_images(real_jets, pt_opts)
    pt_img, _ = make_images(real_jets, pt_opts)
    pt_raw, _ = make_images(real_jets, {**pt_opts, "normalize": "none"})
    spread = [np.std(x.sum(axis=(1, 2, 3), dtype=np.float64)[inside]) for x in (pt_img, pt_raw)]
    assert spread[0] < 0.5 * spread[1]


def test_boost_keeps_the_image_mass(real_jets):
    from jetimage.stages.image_mass import image_mass

    opts = {**OPTIONS, "rotate": "subjet", "flip": "parity", "boost_energy": E_REF,
            "deposit": "moment"}
    plain, _ = make_images(real_jets, opts)
    boosted, _ = make_images(real_jets, {**opts, "normalize": "boost"})
    l2, _ = make_images(real_jets, {**opts, "normalize": "l2"})
    m0, mb, ml2 = (image_mass(x, GRID) for x in (plain, boosted, l2))
    rel = np.abs(mb / m0 - 1.0)
    assert np.median(rel) < 0.02
    assert np.median(np.abs(ml2 / m0 - 1.0)) > 0.5  # the L2 norm does not keep it


def test_boost_is_rejected_in_image_mode(real_jets):
    with pytest.raises(ValueError, match="lorentz"):
        make_images(real_jets[:3], {**OPTIONS, "mode": "image", "normalize": "boost",
                                    "boost_energy": E_REF})
    with pytest.raises(ValueError, match="boost_energy"):
        make_images(real_jets[:3], {**OPTIONS, "normalize": "boost"})


def test_boost_energy_defaults_to_the_middle_of_the_pt_window():
    cfg = config.load(CONFIG, study="jets")
    assert cfg["images"]["boost_energy"] == pytest.approx(
        0.5 * (cfg["jets"]["pt_min"] + cfg["jets"]["pt_max"]))
    raw = yaml_study()
    raw["images"].update(normalize="boost", mode="image")
    with pytest.raises(config.ConfigError, match="boost needs images.mode: lorentz"):
        config.validate(raw)


def yaml_study() -> dict:
    import copy

    import yaml

    raw = yaml.safe_load(CONFIG.read_text())
    return {"seed": raw["seed"], "generation": raw["generation"],
            **copy.deepcopy(raw["studies"]["jets"]), "study": "jets"}


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_boost_of_empty_and_massless_jets_is_the_identity(backend):
    # no constituents, or one massless one (T = 0: no boost reaches E_ref), or a two-particle jet
    jets = make_jets([[], [(50.0, 0.3, -2.0, 0.0)], [(150.0, 0.0, 0.0, 0.0), (100.0, 0.2, 0.1, 0.0)]])
    opts = {**OPTIONS, "rotate": "principal", "flip": "parity", "normalize": "boost",
            "boost_energy": E_REF, "centre": "jet_axis", "intensity": "e"}
    img, extras = make_images(jets, opts, backend=backend)
    assert np.isfinite(img).all() and not img[0].any()
    np.testing.assert_array_equal(extras["boost_rapidity"][:2], 0.0)
    assert img[1].sum() == pytest.approx(50.0, rel=1e-5)  # translated to eta = 0: E = pT
    assert img[2].sum() == pytest.approx(E_REF, rel=1e-5) and extras["boost_rapidity"][2] < 0
