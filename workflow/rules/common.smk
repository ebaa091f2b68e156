# Shared set-up of the workflow: configuration validated at start-up, input checks, paths,
# and the helper functions of the rules (functions live here, rules in the other files).
import json
import os
import shlex
import sys

from jetimage.config import ConfigError, validate
from jetimage.ingest import check_sample, plan_chunks


try:
    CFG = validate(dict(config), source=", ".join(map(str, workflow.configfiles)) or "config")
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Samples read from disk: every file, tree and branch is checked before any job starts.
_problems = [
    p
    for i, s in enumerate(CFG["samples"])
    if "files" in s
    for p in check_sample(s, f"samples[{i}]")
]
if _problems:
    raise WorkflowError("invalid input samples\n  " + "\n  ".join(_problems))
CHUNKS = {s["name"]: plan_chunks(s) for s in CFG["samples"] if "files" in s}

OUT = f"results/{CFG['study']}"
# The package's command line, run by the interpreter that runs Snakemake (no PATH needed).
JETIMAGE = f"{shlex.quote(sys.executable)} -m jetimage"
SAMPLES = CFG.sample_names

# The validated config (defaults filled in) is what every stage reads; it is rewritten only
# when it changes, so an unchanged re-run sees nothing new.
CONFIG_PATH = f"{OUT}/config.yaml"
_text = json.dumps(dict(CFG), indent=1, sort_keys=True)
if not os.path.exists(CONFIG_PATH) or open(CONFIG_PATH).read() != _text:
    os.makedirs(OUT, exist_ok=True)
    with open(f"{CONFIG_PATH}.tmp", "w") as _f:
        _f.write(_text)
    os.replace(f"{CONFIG_PATH}.tmp", CONFIG_PATH)


def section(*keys):
    """JSON of config sections; as a rule parameter it reruns the rule when they change."""
    return json.dumps({k: CFG[k] for k in keys}, sort_keys=True)


wildcard_constraints:
    sample="|".join(SAMPLES),
    shard=r"\d+",
    part=r"\d+",


def sample_files(wildcards):
    return files_of_sample(wildcards.sample)


def files_of_sample(name):
    """The jets trees of a sample: generated shards, or ingested chunks of the user's files."""
    if name in CHUNKS:
        return [f"{OUT}/samples/{name}/part{i}.root" for i in range(len(CHUNKS[name]))]
    return [f"{OUT}/samples/{name}/shard{i}.root" for i in range(CFG.sample(name)["n_shards"])]


# Figures of the `plots` rule (jetimage.plots.JET_PLOTS; listed here so that parsing the
# workflow does not import matplotlib).
JET_PLOTS = [
    "roc",
    "cnn_vs_mass",
    "cnn_vs_tau21",
    "cnn_vs_delta_r",
    "mean_images",
    "pixel_correlation",
    "training",
    "cnn_output",
]


def jet_plot_files():
    """Every figure of the jet study, PDF and PNG (targets of `rule all`)."""
    return [f"{OUT}/plots/{p}.{ext}" for p in JET_PLOTS for ext in ("pdf", "png")]


def train_gpus():
    """GPUs requested by the train rule (config train.gpus; 0 for local runs)."""
    return int(CFG["train"]["gpus"])


def generation_settings(name):
    """What a generated shard depends on: only these keys rerun it when they change."""
    s = CFG.sample(name)
    keys = ("truth", "n_events", "n_shards", "seed", "pythia")
    return json.dumps(
        [{k: s.get(k) for k in keys}, CFG["generation"], CFG["jets"], CFG["seed"]], sort_keys=True
    )


# --- event classification (workflow/rules/events.smk) ----------------------------------------
import json as _ev_json
import os as _ev_os

from jetimage.config import ConfigError as _EvConfigError
from jetimage.events import samples as _ev_samples
from jetimage.events import validate_section as _ev_validate

try:
    EV = _ev_validate(config.get("events"), source="config")
except _EvConfigError as err:
    raise WorkflowError(str(err)) from None

EV_CLI = JETIMAGE  # the package's command line, as for the jets rules
EV_OUT = f"results/{EV['study']}"
EV_LOGS = f"logs/{EV['study']}"
EV_SAMPLES = _ev_samples(EV)
EV_NAMES = list(EV_SAMPLES)
EV_CONFIG = f"{EV_OUT}/events_config.json"
_ev_text = _ev_json.dumps({"seed": config.get("seed", 20151118), "events": EV}, indent=1,
                          sort_keys=True)
if EV["enabled"] and (not _ev_os.path.exists(EV_CONFIG) or open(EV_CONFIG).read() != _ev_text):
    _ev_os.makedirs(EV_OUT, exist_ok=True)
    with open(f"{EV_CONFIG}.tmp", "w") as _f:
        _f.write(_ev_text)
    _ev_os.replace(f"{EV_CONFIG}.tmp", EV_CONFIG)

EV_PLOTS = ["roc", "cnn_vs_n_fatjets", "cnn_vs_mj", "cnn_in_bins_of_n_fatjets",
            "cnn_in_bins_of_mj", "images_mean", "images_example"]
EVENTS_TARGETS = (
    [f"{EV_OUT}/metrics.json", *(f"{EV_OUT}/plots/{p}.{ext}" for p in EV_PLOTS for ext in ("pdf", "png"))]
    if EV["enabled"]
    else []
)


def _ev_inputs(wildcards):
    s = EV_SAMPLES[wildcards.evsample]
    if EV["source"] == "delphes":
        return EV["delphes"][s["class"]]
    return [f"{EV_OUT}/samples/{wildcards.evsample}/shard{i}.root" for i in range(s["n_shards"])]


wildcard_constraints:
    evsample="|".join(EV_NAMES),
    evshard=r"\d+",
