"""End to end: the real Snakemake workflow on a tiny two-study configuration (a jet study and an
event study, a few hundred events each, one epoch), built by one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from jetimage.evaluation.two_stage import load_two_stage
from jetimage.formats.hdf5 import read_images
from jetimage.formats.root import read_run
from jetimage.stages.plots import FIGURES
from jetimage.training.definition import read_definition

from .conftest import REPO, tiny_event_config, tiny_raw_config

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, timeout=1800,
    )


def two_studies() -> dict:
    """``studies: {tiny: <tiny jet study>, tinyev: <tiny event study>}``, seed and generation shared
    (the event study keeps its own generation, as in config.yaml)."""
    jets, events = tiny_raw_config(n_events=300, study="tiny"), tiny_event_config()
    shared = {"seed": jets.pop("seed"), "generation": jets.pop("generation")}
    events.pop("seed")
    jets.pop("study"), events.pop("study")
    return {**shared, "studies": {"tiny": jets, "tinyev": events}}


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    raw = two_studies()
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = _snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, raw


def _figures(out: Path, kind: str) -> None:
    for name in FIGURES[kind]:
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (out / "plots" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    other = "events" if kind == "jets" else "jets"
    foreign = set(FIGURES[other]) - set(FIGURES[kind])
    assert not any((out / "plots" / f"{name}.png").exists() for name in foreign)


@pytest.mark.slow
def test_workflow_writes_every_output(workflow_run):
    workdir, raw = workflow_run
    out = workdir / "results" / "tiny"
    for sample in raw["studies"]["tiny"]["samples"]:
        shards = sorted((out / "samples" / sample["name"]).glob("shard*.root"))
        assert len(shards) == sample["n_shards"]
        for shard in shards:
            with uproot.open(shard) as f:
                assert f.classname_of("jets") == "TTree"
                assert f["jets"].num_entries > 0
        assert (out / "images" / f"{sample['name']}.h5").stat().st_size > 0
    data = read_images(sorted((out / "images").glob("*.h5")))
    assert set(np.unique(data["labels"])) == {0, 1}
    history = json.loads((out / "model" / "history.json").read_text())
    assert len(history["loss"]) == 1 and "val_loss" in history
    assert (out / "model" / "model.keras").stat().st_size > 10_000
    # the CNN with jet mass and tau21 in one network, and the two-stage tagger beside the model
    assert read_definition(out / "model" / "variants" / "vars.keras")["variables"] == ["jet_m", "tau21"]
    assert load_two_stage(out / "model" / "cnn_bdt.pkl").features == ["cnn", "jet_m", "tau21"]
    metrics = json.loads((out / "metrics.json").read_text())
    text = (out / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON: null for infinite rejections
    taggers = ("cnn", "mass", "tau21", "delta_r", "mass_tau21", "fisher", "cnn_mass", "tau21_ddt", "cnn_bdt",
               "cnn_vars")
    for tagger in taggers:
        assert 0.0 <= metrics[tagger]["auc"] <= 1.0
        assert set(metrics[tagger]["inv_jsd"]) == {"0.5"}  # a number, or null with a warning
        assert set(metrics[tagger]["rejection"]) == set(metrics[tagger]["rejection_err"]) == {"0.3", "0.5"}
        assert metrics[tagger]["auc_err"] > 0
    # mass alone separates W from QCD even on a few hundred jets
    assert metrics["mass"]["auc"] > 0.7
    _figures(out, "jets")
    steps = ["pixelization", "translation", "rotation", "flip", "normalization"]
    assert list(metrics["preprocessing"]["image"]) == steps
    assert list(metrics["preprocessing"]["lorentz"]) == [*steps, "boost"]  # the mass-keeping one
    assert (out / "plots" / "image_mass.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = list((workdir / "logs" / "tiny").rglob("*.log"))
    assert len(logs) >= 7 and all(p.stat().st_size > 0 for p in logs)
    assert list((out / "benchmarks").rglob("*.tsv"))
    # one plotting job drew every figure: one log and one benchmark
    assert (workdir / "logs" / "tiny" / "plots.log").stat().st_size > 0
    assert (out / "benchmarks" / "plots.tsv").is_file() and not (out / "benchmarks" / "plots").exists()


@pytest.mark.slow
def test_the_same_run_builds_the_event_study(workflow_run):
    workdir, raw = workflow_run
    study = raw["studies"]["tinyev"]
    out = workdir / "results" / "tinyev"
    gluino = study["samples"][0]
    assert gluino["name"] == "gluino"
    with uproot.open(out / "samples" / "gluino" / "shard0.root") as f:
        assert f.classname_of("events") == "TTree" and "jets" not in f
        events = f["events"]
        # no skim: every generated event is stored, with its particles and fat jets
        assert events.num_entries == gluino["n_events"]
        assert {"particle_pt", "particle_pdgid", "fatjet_m", "n_fatjets", "pthat"} <= set(events.keys())
    run = read_run(out / "samples" / "gluino" / "shard0.root")
    assert run["n_generated"] == run["n_written"] == gluino["n_events"] and run["sigma_pb"] > 0
    images = read_images([out / "images" / f"{s['name']}.h5" for s in study["samples"]],
                         columns=["n_fatjets", "mj", "cut_pass"])
    assert images["images"].shape[1:] == (16, 16, 3)
    assert len(images["images"]) == sum(s["n_events"] for s in study["samples"])
    assert set(np.unique(images["labels"])) == {0, 1}
    text = (out / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    metrics = json.loads(text)
    assert {"cnn", "n_fatjets", "mj", "factor"} <= set(metrics)
    assert "fisher" not in metrics and "preprocessing" not in metrics
    for tagger in ("cnn", "n_fatjets", "mj"):
        assert 0.0 <= metrics[tagger]["auc"] <= 1.0
        assert set(metrics[tagger]["rejection"]) == {"0.3", "0.5"}
    assert metrics["factor"] is None or metrics["factor"] >= 0
    # no skim: every event is stored, so the stored weights (pb) sum to the cross sections
    assert metrics["presel_eff"] == {"signal": pytest.approx(1.0, rel=1e-5),
                                     "background": pytest.approx(1.0, rel=1e-5)}
    _figures(out, "events")
    assert not (out / "plots" / "image_mass.png").exists()
    history = json.loads((out / "model" / "history.json").read_text())
    assert len(history["loss"]) == 1
    # each study gets its own validated configuration, with its kind's defaults
    [snapshot] = (out / "configs").glob("*.json")
    cfg = json.loads(snapshot.read_text())
    assert cfg["kind"] == "events" and cfg["study"] == "tinyev" and cfg["train"]["model"] == "bhimji"
    [jets_snapshot] = (workdir / "results" / "tiny" / "configs").glob("*.json")
    assert json.loads(jets_snapshot.read_text())["kind"] == "jets"
    # a training leaves no lock file behind
    assert not list((workdir / "results").glob("*/model/**/*.lock"))


@pytest.mark.slow
def test_second_run_does_nothing(workflow_run):
    workdir, _ = workflow_run
    proc = _snakemake(workdir, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_invocations_that_run_no_job_change_nothing_jobs_read(workflow_run, tmp_path):
    """A dry run, --unlock and --report with another configuration leave every study's config
    snapshot (what the jobs read) as it was and write none: snapshots are written only when jobs
    are about to run (onstart)."""
    workdir, raw = workflow_run
    before = {p: p.read_bytes() for p in (workdir / "results").glob("*/configs/*.json")}
    other = json.loads(json.dumps(raw))
    other["studies"]["tiny"]["train"]["split"] = {"train": 0.2, "validation": 0.2, "test": 0.6}
    other["seed"] = 99
    config = tmp_path / "other.yaml"
    config.write_text(yaml.safe_dump(other))
    for args in (["--dry-run"], ["--unlock"], ["--report", str(tmp_path / "r.html")]):
        proc = subprocess.run(
            [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
             "--configfile", str(config), "--cores", "2", *args],
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert {p: p.read_bytes() for p in (workdir / "results").glob("*/configs/*.json")} == before, args
    assert len(before) == 2


@pytest.mark.slow
@pytest.mark.parametrize("form", ["flat", "studies"])
def test_bad_config_stops_the_workflow_with_the_key(tmp_path, form):
    if form == "flat":
        raw = tiny_raw_config(study="bad")
        raw["samples"][0]["name"] = "../escape"
        key = "samples[0].name"
    else:
        raw = two_studies()
        raw["studies"]["tinyev"]["samples"][0]["name"] = "../escape"
        key = "studies.tinyev.samples[0].name"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = _snakemake(tmp_path, "--dry-run")
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_report_and_lint(workflow_run):
    workdir, _ = workflow_run
    report = workdir / "report.html"
    proc = _snakemake(workdir, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000 and "roc.png" in text and "metrics.json" in text
    assert "cnn_vs_mass.png" in text and "pixel_correlation.png" in text
    assert "cnn_vs_mj.png" in text and "cnn_vs_n_fatjets.png" in text  # the event study's figures
    assert "Studies of this run: tiny, tinyev." in text
    # each figure is captioned for its study's kind (workflow/report/figures/<figure>.rst)
    assert "Mean jet image of W and QCD test jets" in text and "Mean whole-event images" in text
    proc = _snakemake(workdir, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_figure_that_fails_fails_the_plotting_job_and_leaves_no_figure(workflow_run, tmp_path):
    """The one plotting job of a study draws its figures in turn: when a late one fails, the job
    fails and Snakemake removes the figures drawn before it, so a rerun draws them all again."""
    import shutil

    workdir, _ = workflow_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    plots = copy / "results" / "tiny" / "plots"
    figures = list(FIGURES["jets"])
    assert figures.index("training") > figures.index("roc")  # roc is drawn before training fails
    (copy / "results" / "tiny" / "model" / "history.json").write_text("[]")  # no mapping: training fails
    target = "results/tiny/plots/roc.png"
    proc = _snakemake(copy, target)
    assert proc.returncode != 0
    # the figures before training were drawn, then removed with the failed job
    text = proc.stdout + proc.stderr
    assert "Removing output files of failed job plots_jets" in text, text[-3000:]
    removed = text.split("Removing output files of failed job plots_jets", 1)[1].splitlines()[1]
    assert "results/tiny/plots/roc.png" in removed and "training.png" not in removed, removed
    assert not [p.name for p in plots.iterdir() if p.stem in figures], sorted(p.name for p in plots.iterdir())
    assert not list(plots.glob(".*tmp*"))  # each figure is written atomically
    assert (plots / "image_mass.png").exists()  # another rule's figure in the folder stays
    proc = _snakemake(copy, "--dry-run", target)
    assert proc.returncode == 0 and "rule plots_jets:" in proc.stdout, proc.stdout[-2000:]


def test_one_plotting_job_per_study(tmp_path):
    """A dry run of the two studies plans one plotting job per study, of the rule of its kind,
    whose outputs are every figure of the kind (PDF and PNG) at the paths of the docs."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(two_studies()))
    proc = _snakemake(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    stats = dict(line.split() for line in table if line.strip())
    assert stats["plots_jets"] == stats["plots_events"] == "1" and "plot" not in stats, stats
    for rule, study, kind in (("plots_jets", "tiny", "jets"), ("plots_events", "tinyev", "events")):
        lines = proc.stdout.splitlines()
        [start] = [i for i, line in enumerate(lines) if line.endswith(f"rule {rule}:")]
        outputs = next(line for line in lines[start:] if line.strip().startswith("output:"))
        assert sorted(outputs.split(":", 1)[1].replace(",", " ").split()) == sorted(
            f"results/{study}/plots/{f}.{ext}" for f in FIGURES[kind] for ext in ("pdf", "png"))


@pytest.mark.slow
def test_adding_a_variant_trains_it_without_retraining_the_nominal_cnn(workflow_run, tmp_path):
    """The nominal training's parameter leaves out train.variants; a variant with init: nominal
    waits for the nominal model and starts from it, one without does not."""
    workdir, raw = workflow_run
    other = json.loads(json.dumps(raw))
    other["studies"]["tiny"]["train"]["variants"] = [
        {"name": "tuned", "method": "disco", "lambda": 5.0, "init": "nominal"},
        {"name": "fresh", "method": "disco", "lambda": 5.0}]
    config = tmp_path / "variants.yaml"
    config.write_text(yaml.safe_dump(other))
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(config), "--cores", "2", "--dry-run", "--printshellcmds"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = {line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
            if line.startswith(("rule ", "localrule "))}
    assert jobs == {"train_variant", "evaluate", "plots_jets", "all"}, jobs  # not train, not images
    shells = [line for line in proc.stdout.splitlines() if "jetimage train" in line]
    tuned = [s for s in shells if "--variant tuned" in s]
    fresh = [s for s in shells if "--variant fresh" in s]
    assert len(tuned) == 1 and len(fresh) == 1, shells
    assert "--init results/tiny/model/model.keras" in tuned[0]
    assert "--init" not in fresh[0]


def _apply_only_study(workdir: Path, **images) -> Path:
    """An apply-only study in ``workdir``: a user's per-jet file (jetimage layout) and a shipped model,
    whose input definition is that of the tiny study with ``images`` changed; returns the model.
    The model file is a ``.keras`` archive holding the definition only: the start-up check and a dry
    run read nothing else."""
    import zipfile

    import awkward as ak

    from jetimage.config import validate
    from jetimage.formats.root import CONSTITUENT_FIELDS, JET_BRANCHES, JetTreeWriter
    from jetimage.training.definition import input_definition, save_definition

    rng = np.random.default_rng(1)
    jets = {k: np.abs(rng.normal(size=6)).astype(t) for k, t in JET_BRANCHES.items()}
    constituents = {f: np.abs(rng.normal(size=18)).astype(t) for f, t in CONSTITUENT_FIELDS.items()}
    jets["constituents"] = ak.unflatten(ak.zip(constituents), np.full(6, 3))
    with JetTreeWriter(workdir / "user.root") as writer:
        writer.extend(jets)
    trained = tiny_raw_config()
    trained["images"].update(images)
    model = workdir / "shipped.keras"
    with zipfile.ZipFile(model, "w"):
        pass
    save_definition(model, input_definition(validate(trained)))
    raw = tiny_raw_config(study="score")
    raw["samples"] = [{"name": "mine", "class": "background", "files": [str(workdir / "user.root")]}]
    raw["apply"] = {"model": str(model)}
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw))
    return model


def test_a_shipped_model_of_another_image_grid_stops_the_dry_run_naming_model_and_setting(tmp_path):
    """apply.model whose input definition differs from the study's images: one line at start-up,
    before any job (it was caught only by the apply jobs, after ingest)."""
    n_eta = tiny_raw_config()["images"]["n_eta"]
    model = _apply_only_study(tmp_path, n_eta=n_eta + 4)
    proc = _snakemake(tmp_path, "--dry-run")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("jetimage:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(model) in lines[0] and f"images.n_eta: the model was trained with {n_eta + 4}" in lines[0]
    assert "rule ingest" not in proc.stdout and not (tmp_path / "results").exists()


def test_the_default_target_of_an_apply_only_study_schedules_its_apply_jobs_and_their_inputs(tmp_path):
    """``snakemake`` alone (rule all) for an apply-only study: the ingest of the user's file and the
    apply job of every chunk; nothing trained, no image file (apply makes the images it scores)."""
    model = _apply_only_study(tmp_path)
    proc = _snakemake(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    stats = dict(line.split() for line in out.split("Job stats:")[1].split("total")[0].splitlines()[3:]
                 if line.strip())
    assert stats == {"ingest": "1", "apply": "1", "all": "1"}, stats
    assert f"input: results/score/samples/mine/part0.root, {model}" in out
    assert "output: results/score/apply/mine/part0.root" in out
    assert "images/" not in out and "model.keras" not in out.replace(str(model), "")


@pytest.mark.slow
def test_a_jobs_warning_reaches_the_console(tmp_path):
    """A warning that changes a result (an LHE sample accepted short) is printed by snakemake at the
    end of the run, naming the job's log, although the job succeeded."""
    from .test_generate import _write_lhe

    lhe = tmp_path / "short.lhe"
    _write_lhe(lhe, 3)
    raw = tiny_raw_config(study="warn")
    raw["generation"]["batch_size"] = 2
    raw["samples"][1] = {"name": "lhe", "class": "background", "lhe": str(lhe), "n_events": 5,
                         "n_shards": 1, "lhe_accept_fewer": True}
    raw["jets"].update(pt_min=100.0, pt_max=1000.0, eta_max=2.5)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    proc = _snakemake(tmp_path, "results/warn/samples/lhe/shard0.root")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("jetimage: warning: ")]
    assert "logs/warn/generate/lhe_0.log" in line and str(lhe) in line
