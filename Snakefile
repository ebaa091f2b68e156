# jetimage: collider events -> jet or event images -> CNN -> ROC curves, for every study of the
# configuration. Run `snakemake --cores 2` (see README.md). Without --configfile the repo's
# config.yaml is used.
import os
import re
import time

START = time.time()

if not config:

    configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/pileup.smk"


onstart:
    write_study_configs()


onsuccess:
    report_warnings(START)


onerror:
    report_warnings(START)


rule all:
    default_target: True
    input:
        [path for name in STUDIES for path in study_targets(name)],
