# Plots: one job per figure of the study's kind (jetimage.plots.FIGURES), PDF and PNG, captioned
# in the report (workflow/report/figure.rst).


rule plot:
    input:
        scores=rules.evaluate.output.scores,
        history=rules.train.output.history,
    output:
        pdf=f"{OUT}/plots/{{figure}}.pdf",
        png=report(
            f"{OUT}/plots/{{figure}}.png",
            caption="../report/figure.rst",
            category="{study}",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/plots/{{figure}}.log",
    benchmark:
        f"{OUT}/benchmarks/plots/{{figure}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        outdir=lambda w, output: os.path.dirname(output.png),
        settings=section("kind", "jets", "generation", "images", "evaluate"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} plots --config {params.config:q} --scores {input.scores:q}"
        " --history {input.history:q} --outdir {params.outdir:q} --figures {wildcards.figure}"
        " > {log:q} 2>&1"
