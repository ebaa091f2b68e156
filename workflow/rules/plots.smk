# Plots: one job per study draws every figure of the study's kind (jetimage.plots.FIGURES) in one
# process, so matplotlib, mplhep and jetimage are imported once; each figure is written as
# results/<study>/plots/<figure>.pdf and .png, atomically (both formats or neither), and its PNG
# is captioned in the report by workflow/report/figures/<figure>.rst. The kinds draw different
# figures and a rule's outputs are fixed, so there is one rule per kind (plots_jets,
# plots_events), each serving the studies of its kind. A figure that fails fails the job, and
# Snakemake then removes the figures the job had written.


def studies_of_kind(kind):
    """The {study} constraint of a kind's plotting rule: its studies (a pattern that matches
    nothing when the configuration has none), so that one rule makes each study's figures."""
    names = [name for name, cfg in STUDIES.items() if cfg.kind == kind]
    return "|".join(map(re.escape, names)) or "(?!)"


for kind, figures in FIGURES.items():

    rule:
        name:
            f"plots_{kind}"
        input:
            scores=rules.evaluate.output.scores,
            history=rules.train.output.history,
        output:
            pdf=[f"{OUT}/plots/{f}.pdf" for f in figures],
            png=[
                report(
                    f"{OUT}/plots/{f}.png",
                    caption=f"../report/figures/{f}.rst",
                    category="{study}",
                    subcategory="Figures",
                )
                for f in figures
            ],
        wildcard_constraints:
            study=studies_of_kind(kind),
        log:
            f"{LOGS}/plots.log",
        benchmark:
            f"{OUT}/benchmarks/plots.tsv"
        params:
            jetimage=JETIMAGE,
            config=config_of,
            outdir=lambda w, output: os.path.dirname(output.png[0]),
            figures=figures,
            settings=section("kind", "jets", "generation", "images", "evaluate"),
        threads: 1
        priority: AFTER_SAMPLES
        # peak of the one process drawing every figure (/usr/bin/time -v): 0.33 GiB for the tiny
        # studies, 0.65 GiB for 300,000 test jets, 1.5 GiB for 1,000,000 (1.3 kB a test example),
        # so 4000 MB holds about 2.5 million test examples; the default run has a few thousand
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../envs/jetimage.yaml"
        shell:
            "{params.jetimage} plots --config {params.config:q} --scores {input.scores:q}"
            " --history {input.history:q} --outdir {params.outdir:q} --figures {params.figures:q}"
            " > {log:q} 2>&1"
