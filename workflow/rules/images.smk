# Images: the trees of one sample -> one HDF5 file (jet frame or whole-event grid, by the kind);
# and, for jet studies, the image-mass study of the preprocessing steps.


rule images:
    input:
        sample_files,
    output:
        f"{OUT}/images/{{sample}}.h5",
    log:
        f"{LOGS}/images/{{sample}}.log",
    benchmark:
        f"{OUT}/benchmarks/images/{{sample}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        settings=section("kind", "images", "events"),
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=mem_mb("images"),
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} images --config {params.config:q} --sample {wildcards.sample}"
        " --inputs {input:q} --output {output:q} > {log:q} 2>&1"


rule image_mass:
    input:
        lambda w: [p for s in sample_names(w.study) for p in files_of_sample(w.study, s)],
    output:
        json=f"{OUT}/image_mass.json",
        pdf=f"{OUT}/plots/image_mass.pdf",
        png=report(
            f"{OUT}/plots/image_mass.png",
            caption="../report/image_mass.rst",
            category="{study}",
            subcategory="Image mass",
        ),
    log:
        f"{LOGS}/image_mass.log",
    benchmark:
        f"{OUT}/benchmarks/image_mass.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        labelled=lambda w: " ".join(
            shlex.quote(f"{s}={p}") for s in sample_names(w.study) for p in files_of_sample(w.study, s)
        ),
        stem=lambda w, output: os.path.splitext(output.pdf)[0],
        settings=section("images", "evaluate"),
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=mem_mb("image_mass"),
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} image_mass --config {params.config:q} --inputs {params.labelled}"
        " --output {output.json:q} --plot {params.stem:q} > {log:q} 2>&1"
