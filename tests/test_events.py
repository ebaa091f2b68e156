"""Studies of kind ``events``: whole-event images through the same stages as jet studies.

Real Pythia, FastJet, uproot and Keras throughout; the event study shares the generation loop,
the ROOT writer, the channels, the trainer (streaming, resume, checkpoints), the evaluation and
the plots with the jet study.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot
import yaml

from jetimage.config import validate
from jetimage.formats.errors import InputError
from jetimage.formats.hdf5 import ImageWriter
from jetimage.formats.root import EVENTS, iterate_tree, read_run
from jetimage.physics.events import event_variables
from jetimage.stages.generate import generate, make_pythia, pythia_commands
from jetimage.stages.images import event_images, make_sample_images

from .conftest import start_jetimage, tiny_event_config, train_args, wait_for

DELPHES = Path(__file__).resolve().parents[2] / "shared/data/delphes_ttbar_10events.root"


def test_slha_spectrum_initializes_and_neutralinos_decay(event_config):
    gluino = event_config.sample("gluino")
    pythia = make_pythia(pythia_commands(event_config, gluino, 0), 3, 13000.0)
    assert pythia.particleData.m0(1000021) == pytest.approx(1400.0)
    assert pythia.particleData.m0(1000022) == pytest.approx(850.0)
    batch = pythia.nextBatch(40, "skip")
    ids = abs(batch.prt.id)
    assert ak.all(ak.sum(ids == 1000021, axis=1) >= 2)  # gluino pairs were produced
    assert ak.all(ak.sum(ids == 1000022, axis=1) >= 2)  # ... and decayed to neutralinos
    final = ids[batch.prt.status > 0]
    assert not ak.any(final > 1000000)  # no sparticle, in particular no neutralino, survives
    assert pythia.infoPython().sigmaGen() * 1e9 == pytest.approx(0.014, rel=0.3)  # pb, LO


def test_events_tree_round_trip(generated_events):
    path = generated_events["gluino"]
    with uproot.open(path) as f:
        tree = f["events"]
        assert f.classname_of("events") == "TTree" and f.classname_of("run") == "TTree"
        for b in ("n_particles", "particle_pt", "particle_pdgid", "n_fatjets", "fatjet_m", "weight"):
            assert b in tree
        a = tree.arrays(library="ak")
    run = read_run(path)
    assert len(a) == 60 and run["n_generated"] == 60 and run["n_written"] == 60
    assert np.all(ak.to_numpy(a.n_particles) == ak.to_numpy(ak.num(a.particle_pt)))
    assert ak.min(a.n_particles) > 100  # 10 quarks: high multiplicity
    assert set(np.unique(np.abs(ak.to_numpy(ak.flatten(a.particle_pdgid))))) >= {22, 211}
    assert not np.isin(np.abs(ak.to_numpy(ak.flatten(a.particle_pdgid))), [12, 14, 16]).any()
    # raw weights add up to the run summary's sum; fat jets sorted and above the storage threshold
    assert ak.sum(a.weight) == pytest.approx(run["sum_weights"], rel=1e-9)
    pt = a.fatjet_pt
    assert ak.all(pt[:, 1:] <= pt[:, :-1]) and ak.all(pt > 100.0)
    chunk = next(iterate_tree([path], EVENTS, step_size=1000))
    assert ak.all(chunk.particles.e == a.particle_e)


def test_skim_keeps_weights_absolute(tmp_path):
    raw = tiny_event_config()
    raw["events"]["skim"] = True
    cfg = validate(raw)
    root, h5 = tmp_path / "qcd.root", tmp_path / "qcd.h5"
    n = generate(cfg, "qcd_lo", 0, root)
    run = read_run(root)
    assert 0 < n < 150 and run["n_generated"] == 150 and run["n_written"] == n
    with uproot.open(root) as f:
        a = f["events"].arrays(library="ak")
    fat = ak.zip({"pt": a.fatjet_pt, "eta": a.fatjet_eta, "m": a.fatjet_m})
    assert event_variables(fat, cfg["events"]["selection"])["presel"].all()
    make_sample_images(cfg, "qcd_lo", [root], h5)
    with h5py.File(h5, "r") as f:
        weights, sigma = f["weights"][...], json.loads(f.attrs["sigma_pb"])
    # weights in pb: all generated events would sum to sigma; the skimmed ones carry their share
    assert sigma == pytest.approx(run["sigma_pb"])
    assert np.all(weights > 0) and weights.sum() == pytest.approx(sigma * n / 150, rel=1e-4)


def _records(eta, phi, pdg, charge, e):
    counts = np.full(5, len(eta) // 5)
    flat = ak.zip({"pt": e / np.cosh(eta), "eta": eta, "phi": phi, "e": e, "charge": charge, "pdgid": pdg})
    return ak.unflatten(flat, counts)


def test_event_images_energy_and_periodic_phi():
    rng = np.random.default_rng(1)
    n = 5 * 400
    eta, phi = rng.uniform(-4, 4, n), rng.uniform(-np.pi, np.pi, n)
    pdg = rng.choice([22, 11, -11, 211, -211, 130, 2112, 13], n)
    charge = np.where(np.isin(pdg, [11, -211, 13]), -1, np.where(np.isin(pdg, [-11, 211]), 1, 0))
    e = rng.exponential(10.0, n)
    opts = {"n_eta": 64, "n_phi": 64, "eta_max": 2.5, "intensity": "e",
            "channels": ["em", "had", "charged_count"]}
    img = event_images(_records(eta, phi, pdg, charge, e), opts)
    assert img.shape == (5, 64, 64, 3)
    inside = (np.abs(eta) < 2.5).reshape(5, -1)
    apdg, ee = np.abs(pdg).reshape(5, -1), e.reshape(5, -1)
    em = np.where(inside & np.isin(apdg, [11, 22]), ee, 0).sum(1)
    had = np.where(inside & (apdg > 100), ee, 0).sum(1)
    np.testing.assert_allclose(img[..., 0].sum((1, 2)), em, rtol=1e-5)
    np.testing.assert_allclose(img[..., 1].sum((1, 2)), had, rtol=1e-5)
    np.testing.assert_array_equal(img[..., 2].sum((1, 2)), (inside & (charge.reshape(5, -1) != 0)).sum(1))
    assert em.sum() + had.sum() < np.where(inside, ee, 0).sum()  # muons in neither energy channel
    # phi is periodic: +2 pi is the same image, a shift by k pixels rolls the image
    np.testing.assert_array_equal(event_images(_records(eta, phi + 2 * np.pi, pdg, charge, e), opts), img)
    shifted = event_images(_records(eta, phi + 5 * 2 * np.pi / 64, pdg, charge, e), opts)
    np.testing.assert_allclose(shifted, np.roll(img, 5, axis=2), rtol=1e-5)
    # a particle just below +pi and one just above -pi land in the last and first column
    one = {**opts, "n_eta": 8, "n_phi": 8, "channels": ["total"]}
    edge = event_images(ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": np.pi - 1e-9, "e": 1.0, "charge": 0,
                                    "pdgid": 22}],
                                  [{"pt": 1.0, "eta": 0.0, "phi": -np.pi + 1e-9, "e": 1.0, "charge": 0,
                                    "pdgid": 22}]]), one)
    assert edge[0, 4, 7, 0] == 1 and edge[1, 4, 0, 0] == 1


def _jets(rows):
    return ak.Array([[{"pt": pt, "eta": eta, "m": m} for pt, eta, m in row] for row in rows])


def test_cut_based_selection_each_cut_can_fail(event_config):
    passing4 = [(600, 0.1, 250), (400, 0.5, 250), (300, -0.5, 200), (250, 1.0, 150)]  # M_J 850
    passing5 = [(600, 0.1, 150), (400, 0.5, 150), (300, -0.5, 100), (250, 1.0, 210),
                (210, 0.0, 80)]  # 5 jets, M_J (4 leading) = 610
    rows = {
        "pass4": passing4,
        "pass5": passing5,
        "too_few_jets": passing4[:2],
        "lead_pt": [(430, 0.1, 250)] + passing4[1:],
        "deta": [(600, 0.1, 250), (400, 1.6, 250)] + passing4[2:],
        "mj4": [(j[0], j[1], 150) for j in passing4],                   # 4 jets, M_J 600
        "mj5_needs_5": passing5[:4],                                    # M_J 610 but 4 jets
        "eta_acceptance": passing4[:3] + [(250, 2.3, 150)],             # 4th jet out of |eta| < 2
        "pt_threshold": passing4[:3] + [(190, 1.0, 150)],               # 4th jet below 200 GeV
    }
    v = event_variables(_jets(list(rows.values())), event_config["events"]["selection"])
    result = dict(zip(rows, v["cut_pass"], strict=True))
    assert result == {k: k.startswith("pass") for k in rows}, result
    assert v["n_fatjets"].tolist() == [4, 5, 2, 4, 4, 4, 4, 3, 3]
    assert v["mj"][0] == pytest.approx(850) and v["mj"][1] == pytest.approx(610)
    assert v["presel"].tolist() == [True, True, False, False, True, True, True, True, True]


def _delphes_config(constituents_from=None) -> dict:
    raw = tiny_event_config()
    raw["samples"][0] = {"name": "ttbar", "class": "signal", "files": [str(DELPHES)], "preset": "delphes",
                         "chunk_entries": 4, **({"constituents_from": constituents_from}
                                                if constituents_from else {})}
    return raw


@pytest.mark.skipif(not DELPHES.exists(), reason=f"{DELPHES} not present")
def test_delphes_events_are_ingested_with_one_convention(tmp_path):
    from jetimage.formats.readers import read_chunk, resolve
    from jetimage.stages.ingest import check_sample, event_particles, ingest, plan_chunks

    cfg = validate(_delphes_config())
    s = cfg.sample("ttbar")
    parts = []
    for i, (path, start, stop) in enumerate(plan_chunks(s)):
        parts.append(tmp_path / f"part{i}.root")
        ingest(cfg, "ttbar", path, start, stop, parts[-1])
    assert len(parts) == 3  # 10 entries in chunks of 4
    with uproot.open(DELPHES) as f:
        t = f["Delphes"]
        plan, problems = resolve(t, s, "events")
        assert not problems
        a = t.arrays([f.branch for f in plan.fields.values()], library="ak")
        particles = event_particles(read_chunk(t, plan, 0, 10, str(DELPHES)), s, plan, 5.0, "")
    n_tracks = ak.sum(a["EFlowTrack.PT"] > 0, axis=1)
    expected = (n_tracks + ak.sum(a["EFlowPhoton.ET"] > 0, axis=1)
                + ak.sum(a["EFlowNeutralHadron.ET"] > 0, axis=1))
    assert ak.all(ak.num(particles) == expected)
    # the convention: tracks keep charge and id and get the pion mass; neutrals are massless 22/130
    m2 = particles.E**2 - particles.px**2 - particles.py**2 - particles.pz**2
    charged = particles.charge != 0
    assert ak.all(ak.sum(charged, axis=1) == n_tracks)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(m2[charged])), 0.13957**2, rtol=1e-3, atol=1e-6)
    assert set(np.unique(ak.to_numpy(ak.flatten(particles.pdgid[~charged])))) <= {22, 130}
    events = ak.concatenate(list(iterate_tree(parts, EVENTS)))
    assert len(events) == 10 and ak.sum(ak.num(events.fatjets)) > 5  # ttbar has fat jets
    np.testing.assert_allclose(ak.to_numpy(ak.num(events.particles)), ak.to_numpy(expected))
    # a Tower study on a file without towers fails at start-up, naming the branch
    problems = list(check_sample({**s, "constituents_from": ["Tower"]}, "samples[0]"))
    assert any("(tried Tower.Eem)" in p and str(DELPHES) in p for p in problems)
    # the same file's particles give whole-event images
    out = tmp_path / "ttbar.h5"
    assert make_sample_images(cfg, "ttbar", parts, out) == 10
    with h5py.File(out, "r") as f:
        assert f["images"].shape == (10, 16, 16, 3) and (f["labels"][...] == 1).all()
        central = abs(particles.pz / np.hypot(particles.px, particles.py)) < np.sinh(2.5)  # |eta| < 2.5
        assert f["images"][..., 2].sum() == pytest.approx(ak.sum(charged & central))


def test_working_point_interpolation():
    from jetimage.evaluation.metrics import working_point

    eps_s = np.array([0.0, 0.5, 0.8, 1.0])
    eps_b = np.array([0.0, 0.001, 0.01, 1.0])
    assert working_point(eps_s, eps_b, 0.001) == pytest.approx(0.5)
    assert working_point(eps_s, eps_b, 0.0055) == pytest.approx(0.65)


def test_reference_cnn_architecture_serves_both_kinds():
    from jetimage.models import zoo as models

    for shape in ((64, 64, 3), (25, 25, 1)):
        model = models.build("bhimji", shape, transform="log1p")
        convs = [ly for ly in model.layers if ly.__class__.__name__ == "Conv2D"]
        assert [c.filters for c in convs] == [128] * 3 and all(c.kernel_size == (3, 3) for c in convs)
        assert sum(ly.__class__.__name__ == "MaxPooling2D" for ly in model.layers) == 3
        assert model.get_layer("dropout").rate == 0.5 and model.get_layer("dense").units == 512
        assert model.get_layer("log1p") is not None and model.output_shape == (None, 1)


def _toy_event_images(path: Path, n: int = 1600, seed: int = 0) -> None:
    """Event-like 16x16x3 images: signal has five energy clusters, background two."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.zeros((n, 16, 16, 3), np.float32)
    for i, y in enumerate(labels):
        for _ in range(5 if y else 2):
            a, b = rng.integers(0, 16, 2)
            images[i, a, b, :2] += rng.exponential(200.0, 2)
            images[i, a, b, 2] += rng.integers(1, 6)
    variables = {"n_fatjets": 3 + 2 * labels, "mj": rng.uniform(0, 1000, n),
                 "lead_pt": rng.uniform(400, 900, n), "deta12": rng.uniform(0, 2, n),
                 "cut_pass": (rng.random(n) < 0.3 + 0.4 * labels).astype(np.int8)}
    with ImageWriter(path, (16, 16, 3), {"sample": "toy"}, chunk_rows=128) as w:
        w.append(images, {"labels": labels.astype(np.int8), "weights": rng.uniform(0.5, 2.0, n),
                          **variables})


@pytest.mark.slow
def test_event_training_streams_resumes_after_a_kill_and_keeps_checkpoints(tmp_path):
    import keras

    import jetimage.models.zoo  # noqa: F401  (registers the log1p layer for loading)

    images = tmp_path / "toy.h5"
    _toy_event_images(images)
    raw = tiny_event_config()
    raw["train"].update(epochs=4, patience=20, batch_size=64, block_rows=128, shuffle_blocks=2,
                        standardize_sample=256)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))

    killed = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "killed.log")
    wait_for(lambda: "epoch 2/4" in (tmp_path / "killed.log").read_text() or killed.poll() is not None,
             timeout=600)
    assert killed.poll() is None, (tmp_path / "killed.log").read_text()
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert not (tmp_path / "run" / "model.keras").exists()
    resumed = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "resumed.log")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    text = (tmp_path / "resumed.log").read_text()
    assert "training bhimji" in text and "resuming from the backup" in text
    assert "epoch 1/4" not in text and "epoch 3/4" in text, "the resumed run must skip done epochs"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["loss"]) == 4 and history["val_auc"][-1] > 0.9
    kept = sorted(p.name for p in (tmp_path / "run" / "model.checkpoints").iterdir())
    assert kept == [f"epoch_{i:03d}.keras" for i in range(1, 5)]
    # the model holds its log1p transform: raw pixels in, the same scores as log1p by hand
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    with h5py.File(images, "r") as f:
        x = f["images"][:64]
    assert model.get_layer("log1p") is not None
    score = model.predict(x, verbose=0).ravel()
    assert np.all((score >= 0) & (score <= 1)) and score.std() > 0.05


def test_one_class_test_split_is_an_error_naming_the_files(tmp_path, event_config):
    path = tmp_path / "signal_only.h5"
    with ImageWriter(path, (16, 16, 3), {"sample": "s", "class": "signal"}) as w:
        w.append(np.ones((40, 16, 16, 3), np.float32), {
            "labels": np.ones(40, np.int8), "weights": np.ones(40),
            **{k: np.ones(40) for k in ("n_fatjets", "mj", "lead_pt", "deta12", "cut_pass")}})
    from jetimage.stages.evaluate import evaluate

    with pytest.raises(InputError, match="no background example") as err:
        evaluate(event_config, [path], tmp_path / "missing.keras", tmp_path / "m.json")
    assert str(path) in str(err.value) and not (tmp_path / "m.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_an_unreadable_model_is_one_line_naming_the_file(tmp_path, damage):
    images = tmp_path / "toy.h5"
    _toy_event_images(images, n=400)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_event_config()))
    model = tmp_path / "model.keras"
    if damage == "garbage":
        model.write_bytes(b"not a model at all")
    elif damage == "truncated":  # the first bytes of a real .keras archive (a zip)
        from jetimage.models import zoo as models

        models.build("bhimji", (16, 16, 3)).save(tmp_path / "real.keras")
        model.write_bytes((tmp_path / "real.keras").read_bytes()[:2000])
    proc = start_jetimage(["evaluate", "--config", str(cfg), "--inputs", str(images), "--model", str(model),
                           "--metrics", str(tmp_path / "metrics.json")], tmp_path / "log")
    assert proc.wait(timeout=300) == 2
    text = (tmp_path / "log").read_text()
    assert f"{model}: " in text and "Traceback" not in text
    assert ("no such model file" if damage == "missing" else "not a readable Keras model") in text
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_non_finite_pixels_stop_training_naming_the_file_and_row(tmp_path):
    images = tmp_path / "toy.h5"
    _toy_event_images(images, n=400)
    with h5py.File(images, "r+") as f:  # damage after the image stage wrote the file
        f["images"][137, 3, 4, 0] = np.nan
    raw = tiny_event_config()
    raw["train"].update(split={"train": 0.9, "validation": 0.05, "test": 0.05}, block_rows=64)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = start_jetimage(train_args(cfg, images, tmp_path / "run"), tmp_path / "log")
    assert proc.wait(timeout=300) == 2
    text = (tmp_path / "log").read_text()
    assert f"{images}: image row 137" in text and "NaN or infinite" in text and "Traceback" not in text
    assert not (tmp_path / "run" / "model.keras").exists()
