# jetimage: collider events -> jet images -> CNN -> ROC curves.
# Run `snakemake --cores 2` (see README.md). Without --configfile the repo's config.yaml is used.
import os

if not config:

    configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/jets.smk"
include: "workflow/rules/events.smk"


rule all:
    default_target: True
    input:
        f"{OUT}/metrics.json",
        jet_plot_files(),
        f"{OUT}/plots/preprocessing.png",
        EVENTS_TARGETS,  # empty unless events.enabled
