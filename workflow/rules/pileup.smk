# Pileup: for studies with samples that overlay pileup, each mitigation's jet mass and pT against
# the pileup-free truth jets, per sample (one mu each); with a trained U-Net (train.task: images),
# its corrected images' jet mass beside them.


rule pileup:
    input:
        unpack(pileup_inputs),
    output:
        json=f"{OUT}/pileup.json",
        table=report(
            f"{OUT}/pileup.md",
            caption="../report/pileup.rst",
            category="{study}",
            subcategory="Pileup",
        ),
        pdf=f"{OUT}/plots/pileup_resolution.pdf",
        png=report(
            f"{OUT}/plots/pileup_resolution.png",
            caption="../report/pileup.rst",
            category="{study}",
            subcategory="Pileup",
        ),
    log:
        f"{LOGS}/pileup.log",
    benchmark:
        f"{OUT}/benchmarks/pileup.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        labelled=lambda w: " ".join(
            shlex.quote(f"{s}={p}") for s in pileup_samples(w.study) for p in files_of_sample(w.study, s)
        ),
        stem=lambda w, output: os.path.splitext(output.pdf)[0],
        unet=pileup_flags,
        settings=section("jets", "evaluate", "seed", "train"),
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=mem_mb("pileup"),
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} pileup --config {params.config:q} --inputs {params.labelled}"
        " --output {output.json:q} --table {output.table:q} --plot {params.stem:q} {params.unet}"
        " > {log:q} 2>&1"


# One jet through the study's U-Net (train.task: images): its input channels, the true and the
# predicted leading-vertex neutral image and their difference.
rule unet_figure:
    input:
        model=rules.train.output.model,
        images=training_files,
    output:
        pdf=f"{OUT}/plots/unet_jet.pdf",
        png=report(
            f"{OUT}/plots/unet_jet.png",
            caption="../report/unet_jet.rst",
            category="{study}",
            subcategory="Pileup",
        ),
    log:
        f"{LOGS}/unet_figure.log",
    benchmark:
        f"{OUT}/benchmarks/unet_figure.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        stem=lambda w, output: os.path.splitext(output.pdf)[0],
        images=unet_figure_flags,
        sample=unet_figure_sample,
        settings=section("images", "train", "seed"),
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} unet_figure --config {params.config:q} --unet {input.model:q}"
        " --images {params.images} --sample {params.sample:q} --plot {params.stem:q} > {log:q} 2>&1"
