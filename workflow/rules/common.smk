# Shared set-up of the workflow: the configuration validated once at start-up, the input checks,
# paths and the helper functions of the rules (functions live here, rules in the stage files).
# Every rule serves every study through the {study} wildcard; what an example is (a jet or a
# whole event) is the study's kind, read by the package, not by the rules.
import glob
import json
import re
import os
import shlex
import sys

from jetimage.config import ConfigError, validate_studies
from jetimage.config.snapshots import snapshot_path, write_snapshot
from jetimage.formats.errors import InputError
from jetimage.stages.ingest import check_sample, plan_chunks
from jetimage.training.definition import check_study


def stop(message):
    """Stop at start-up with the message alone on the console: Snakemake wraps a WorkflowError in
    the file and line of this module and a traceback, which a user reads as a bug of the workflow."""
    print(f"jetimage: {message}", file=sys.stderr)
    raise SystemExit(1)


try:
    # the files are read again with jetimage's own safe loader: Snakemake keeps the last of two
    # equal keys and removes __use_yte__ before the workflow sees the config
    STUDIES = validate_studies(dict(config), source=", ".join(map(str, workflow.configfiles)) or "config",
                               files=workflow.configfiles)
except ConfigError as err:
    stop(err)


def _check_inputs():
    """Samples read from disk: every file, tree and branch is checked before any job starts."""
    problems = [
        f"studies.{name}: {p}" if len(STUDIES) > 1 else p
        for name, cfg in STUDIES.items()
        for i, s in enumerate(cfg["samples"])
        if "files" in s
        for p in check_sample(s, f"samples[{i}]", cfg.kind)
    ]
    if problems:
        stop("invalid input samples\n  " + "\n  ".join(problems))


_check_inputs()


def _check_models():
    """Studies applying a model they did not train (apply.model): its input definition against the
    study's image settings, before any job runs (a model not yet there is checked by the apply job)."""
    for name, cfg in STUDIES.items():
        model = cfg.get("apply", {}).get("model")
        if not model or not os.path.isfile(model):
            continue
        try:
            check_study(cfg, model)
        except (ConfigError, InputError) as err:
            stop(f"studies.{name}: {err}" if len(STUDIES) > 1 else err)


_check_models()
CHUNKS = {(name, s["name"]): plan_chunks(s) for name, cfg in STUDIES.items() for s in cfg["samples"]
          if "files" in s}
# The package's command line, run by the interpreter that runs Snakemake (no PATH needed).
JETIMAGE = f"{shlex.quote(sys.executable)} -m jetimage"
OUT = "results/{study}"
LOGS = "logs/{study}"


def report_warnings(since):
    """Print on the console the warnings that this run's jobs logged (one line each, naming the log):
    a job's warning may change a result (a sample accepted short, a figure written as null), and
    Snakemake shows a job's log only when the job fails. Logs older than ``since`` are left out."""
    for path in sorted(glob.glob("logs/**/*.log", recursive=True)):
        if os.path.getmtime(path) < since:
            continue
        with open(path, errors="replace") as log:
            for line in log:
                if " WARNING: " in line:
                    print(f"jetimage: warning: {path}: {line.split(' WARNING: ', 1)[1].rstrip()}",
                          file=sys.stderr)


class StudyConfig:
    """A job's ``--config``: the snapshot of its study's configuration that this invocation
    validated (jetimage.config.snapshots), named by its content and never rewritten, so no other
    invocation can change what the job reads. Snakemake records no parameter it cannot represent,
    so the path triggers no rerun by itself: a rule reruns when its ``settings`` change."""

    def __init__(self, path):
        self.path = path

    def __str__(self):
        return self.path

    def __format__(self, spec):
        return format(self.path, spec)


SNAPSHOTS = {name: snapshot_path(name, cfg) for name, cfg in STUDIES.items()}


def write_study_configs():
    """Write each study's snapshot (called by the workflow's ``onstart`` handler: only when jobs
    are about to run, never for a dry run, ``--unlock`` or ``--report``)."""
    for name, cfg in STUDIES.items():
        write_snapshot(cfg, SNAPSHOTS[name])


wildcard_constraints:
    study="|".join(map(re.escape, STUDIES)),
    sample=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    shard=r"\d+",
    variant=r"[a-z0-9_]+",
    part=r"\d+",


def config_of(wildcards):
    return StudyConfig(SNAPSHOTS[wildcards.study])


def section(*keys):
    """A parameter of a rule, the JSON of the study's config sections, so that the rule reruns when
    they change."""
    return lambda w: json.dumps({k: STUDIES[w.study][k] for k in keys}, sort_keys=True)


def _nominal_settings(study):
    """What the nominal training depends on: train (without its variants) and seed."""
    return {"train": {k: v for k, v in study["train"].items() if k != "variants"}, "seed": study["seed"]}


def study_variant(wildcards):
    """The train.variants entry of the job's variant (None when the config no longer has it)."""
    own = [v for v in STUDIES[wildcards.study]["train"]["variants"] if v["name"] == wildcards.variant]
    return own[0] if own else None


def train_settings(wildcards):
    """The nominal training's parameter, so that adding a variant does not retrain the nominal CNN."""
    return json.dumps(_nominal_settings(STUDIES[wildcards.study]), sort_keys=True)


def variant_settings(wildcards):
    """A variant training's parameter: the nominal settings, its own train.variants entry and the
    sections its targets read (evaluate, jets), so that it reruns only when these change."""
    study = STUDIES[wildcards.study]
    own = study_variant(wildcards)
    return json.dumps({"nominal": _nominal_settings(study), "variant": [own] if own else [],
                       "evaluate": study["evaluate"], "jets": study.get("jets")}, sort_keys=True)


def variant_inputs(wildcards):
    """A variant's inputs: the image files, and the nominal model when it starts from it."""
    own = study_variant(wildcards)
    init = own is not None and own["init"] == "nominal"
    return {"images": image_files(wildcards),
            **({"init": rules.train.output.model.format(study=wildcards.study)} if init else {})}


def init_flag(wildcards, input):
    """train's --init MODEL for a variant that starts from the nominal CNN (else empty)."""
    return f"--init {shlex.quote(str(input.init))}" if "init" in input.keys() else ""


def sample_names(study):
    return STUDIES[study].sample_names


def pileup_samples(study):
    """The samples of a study that overlay pileup (pileup.smk)."""
    return [s for s in sample_names(study) if "pileup" in STUDIES[study].sample(s)]


def files_of_sample(study, name):
    """The trees of a sample: generated shards, or ingested chunks of the user's files."""
    if (study, name) in CHUNKS:
        return [f"results/{study}/samples/{name}/part{i}.root" for i in range(len(CHUNKS[study, name]))]
    n = STUDIES[study].sample(name)["n_shards"]
    return [f"results/{study}/samples/{name}/shard{i}.root" for i in range(n)]


def sample_files(wildcards):
    return files_of_sample(wildcards.study, wildcards.sample)


def chunk(wildcards):
    """(file, first entry, entry after the last) of one ingest job."""
    return CHUNKS[wildcards.study, wildcards.sample][int(wildcards.part)]


def image_files(wildcards):
    """The image files of every sample of the study, in config order (train, evaluate)."""
    return [f"results/{wildcards.study}/images/{s}.h5" for s in sample_names(wildcards.study)]


def training_samples(study):
    """The samples a study's model trains on: train.samples (a pixel model), else every sample."""
    return STUDIES[study]["train"]["samples"] or sample_names(study)


def training_files(wildcards):
    """The image files the train rule reads, in config order."""
    own = training_samples(wildcards.study)
    return [f"results/{wildcards.study}/images/{s}.h5" for s in sample_names(wildcards.study) if s in own]


def pileup_inputs(wildcards):
    """The pileup rule's inputs: the ROOT files of the samples with pileup; for a study that trains a
    pixel model, the model and those samples' image files too."""
    study = wildcards.study
    out = {"samples": [p for s in pileup_samples(study) for p in files_of_sample(study, s)]}
    if pixel_task(study):
        out["model"] = f"results/{study}/model/model.keras"
        out["images"] = [f"results/{study}/images/{s}.h5" for s in pileup_samples(study)]
    return out


def pileup_flags(wildcards):
    """The pileup stage's --unet MODEL --images SAMPLE=H5 ... for a pixel-model study (else empty)."""
    study = wildcards.study
    if not pixel_task(study):
        return ""
    items = [shlex.quote(f"{s}=results/{study}/images/{s}.h5") for s in pileup_samples(study)]
    return f"--unet {shlex.quote(f'results/{study}/model/model.keras')} --images " + " ".join(items)


# Scheduling: a job that uses made samples goes before any further sample job, and the studies with
# the most work after their samples (variants to train, a jet study's image-mass study) get their
# samples first, so that their training overlaps the other studies' generation instead of ending
# the run alone (make run: the jet study's trainings ran after every sample was made).
AFTER_SAMPLES = 100


def sample_priority(wildcards):
    """Priority of a study's generate and ingest jobs: the work its study has after them."""
    study = STUDIES[wildcards.study]
    return len(study["train"]["variants"]) + (1 if study.kind == "jets" else 0)


def unet_figure_sample(wildcards):
    """The sample of the one-jet U-Net figure: the first signal sample the U-Net trained on."""
    study = STUDIES[wildcards.study]
    own = training_samples(wildcards.study)
    return ([s for s in own if study.sample(s)["class"] == "signal"] or own)[0]


def unet_figure_flags(wildcards):
    """--images SAMPLE=H5 ... of the samples the U-Net trained on (the figure's among them)."""
    study = wildcards.study
    return " ".join(shlex.quote(f"{s}=results/{study}/images/{s}.h5") for s in training_samples(study))


def pixel_task(study):
    """Whether the study trains a pixel model (train.task images: the U-Net of pileup removal)."""
    return STUDIES[study]["train"]["task"] == "images"


def generation_settings(wildcards):
    """What a generated shard depends on: only these keys rerun it when they change."""
    cfg = STUDIES[wildcards.study]
    s = cfg.sample(wildcards.sample)
    keys = ("truth", "n_events", "n_shards", "seed", "pythia", "lhe", "slha", "forbid_final")
    return json.dumps([cfg["kind"], {k: s.get(k) for k in keys}, cfg["generation"], cfg[cfg["kind"]],
                       cfg["seed"]], sort_keys=True)


def train_gpus(wildcards):
    """GPUs requested by the train rule (config train.gpus; 0 for local runs)."""
    return int(STUDIES[wildcards.study]["train"]["gpus"])


def variant_models(wildcards):
    """The other CNNs of the study (train.variants), name -> model file."""
    return {v["name"]: f"results/{wildcards.study}/model/variants/{v['name']}.keras"
            for v in STUDIES[wildcards.study]["train"]["variants"]}


def variants_flag(wildcards, input):
    """evaluate's --variants NAME=MODEL items (empty without variants)."""
    items = [f"{name}={path}" for name, path in variant_models(wildcards).items()]
    return ("--variants " + " ".join(shlex.quote(i) for i in items)) if items else ""


def image_mass_input(wildcards):
    """The image-mass study enters the metrics of jet studies."""
    return [f"results/{wildcards.study}/image_mass.json"] if STUDIES[wildcards.study].kind == "jets" else []


def image_mass_flag(wildcards, input):
    return f"--image-mass {shlex.quote(input.image_mass[0])}" if input.image_mass else ""


# Figures of each kind (jetimage.plots.FIGURES; listed here so that parsing the workflow does not
# import matplotlib; tests/test_plots.py checks that the two agree), all drawn by one job per study
# (plots.smk).
FIGURES = {
    "jets": ["roc", "cnn_vs_mass", "cnn_vs_tau21", "cnn_vs_delta_r", "sculpting", "mean_images",
             "pixel_correlation", "training", "cnn_output"],
    "events": ["roc", "cnn_vs_n_fatjets", "cnn_vs_mj", "mean_images", "pixel_correlation",
               "training", "cnn_output"],
}


def study_targets(name):
    """Every final output of one study: metrics, figures (PDF and PNG), the image-mass study; with
    an `apply` section its friend trees (apply.smk), and only those when it applies another model."""
    if STUDIES[name].get("apply", {}).get("model"):
        return apply_targets(name)
    if pixel_task(name):  # a U-Net: no tagger to evaluate; the pileup study scores it
        return [f"results/{name}/pileup.md", f"results/{name}/plots/unet_jet.png"]
    out = [f"results/{name}/metrics.json"]
    out += [f"results/{name}/plots/{f}.{ext}" for f in FIGURES[STUDIES[name].kind] for ext in ("pdf", "png")]
    if STUDIES[name].kind == "jets":
        out.append(f"results/{name}/plots/image_mass.png")
    if pileup_samples(name):
        out.append(f"results/{name}/pileup.md")
    return out + apply_targets(name)


def mem_mb(rule):
    """``mem_mb`` of a rule for the job's study, derived from the bounds in its config
    (jetimage.resources: a measured base plus the cost of each chunk bound and of the Fisher
    discriminant, x1.5, never below the former fixed value; docs/faults.md, memory)."""
    from jetimage.resources import rule_mem_mb

    return lambda wildcards: rule_mem_mb(STUDIES[wildcards.study], rule)


# Apply (apply.smk): friend trees of the samples of studies with an `apply` section.
def apply_model(wildcards):
    """The model a study applies: apply.model, else the study's own trained model."""
    return STUDIES[wildcards.study]["apply"]["model"] or f"results/{wildcards.study}/model/model.keras"


def apply_entries(wildcards):
    """``--start A --stop B``: the user's entries of an ingested chunk (read samples only)."""
    key = (wildcards.study, wildcards.sample)
    if key not in CHUNKS or not wildcards.file.startswith("part"):
        return ""
    _, start, stop = CHUNKS[key][int(wildcards.file.removeprefix("part"))]
    return f"--start {start} --stop {stop}"


def apply_targets(name):
    """The friend trees of a study with an `apply` section (one per tree file of each sample),
    and, when it applies its own model, the ONNX export."""
    cfg = STUDIES[name]
    if "apply" not in cfg:
        return []
    out = [f"results/{name}/apply/{s}/{os.path.basename(p)}"
           for s in (cfg["apply"]["samples"] or cfg.sample_names) for p in files_of_sample(name, s)]
    return out if cfg["apply"]["model"] else out + [f"results/{name}/model/model.onnx"]


wildcard_constraints:
    file=r"(shard|part)\d+",
