# W-vs-QCD jet tagging: generate -> images -> train -> evaluate -> plots.
# Each rule is one call of the `jetimage` command line (src/jetimage/cli.py).


rule ingest:
    input:
        lambda w: CHUNKS[w.sample][int(w.part)][0],
    output:
        f"{OUT}/samples/{{sample}}/part{{part}}.root",
    log:
        f"logs/{CFG['study']}/ingest/{{sample}}_{{part}}.log",
    benchmark:
        f"{OUT}/benchmarks/ingest/{{sample}}_{{part}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        start=lambda w: CHUNKS[w.sample][int(w.part)][1],
        stop=lambda w: CHUNKS[w.sample][int(w.part)][2],
        settings=lambda w: json.dumps([CFG.sample(w.sample), CFG["jets"]], sort_keys=True),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} ingest --config {params.config} --sample {wildcards.sample}"
        " --file {input} --start {params.start} --stop {params.stop} --output {output} > {log} 2>&1"


rule generate:
    output:
        f"{OUT}/samples/{{sample}}/shard{{shard}}.root",
    log:
        f"logs/{CFG['study']}/generate/{{sample}}_{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/generate/{{sample}}_{{shard}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=lambda w: generation_settings(w.sample),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} generate --config {params.config} --sample {wildcards.sample}"
        " --shard {wildcards.shard} --output {output} > {log} 2>&1"


rule images:
    input:
        sample_files,
    output:
        f"{OUT}/images/{{sample}}.h5",
    log:
        f"logs/{CFG['study']}/images/{{sample}}.log",
    benchmark:
        f"{OUT}/benchmarks/images/{{sample}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=section("images"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} images --config {params.config} --sample {wildcards.sample}"
        " --inputs {input} --output {output} > {log} 2>&1"


rule train:
    input:
        [f"{OUT}/images/{s}.h5" for s in SAMPLES],
    output:
        model=f"{OUT}/model/model.keras",
        history=report(
            f"{OUT}/model/history.json", caption="../report/history.rst", category="Training"
        ),
    log:
        f"logs/{CFG['study']}/train.log",
    benchmark:
        f"{OUT}/benchmarks/train.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=section("train", "seed"),
    threads: 4  # capped at --cores when run locally
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=train_gpus(),
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} train --config {params.config} --inputs {input}"
        " --model {output.model} --history {output.history} > {log} 2>&1"


rule preprocessing_study:
    input:
        [p for s in SAMPLES for p in files_of_sample(s)],
    output:
        json=f"{OUT}/preprocessing.json",
        pdf=f"{OUT}/plots/preprocessing.pdf",
        png=report(
            f"{OUT}/plots/preprocessing.png",
            caption="../report/preprocessing.rst",
            category="Preprocessing",
        ),
    log:
        f"logs/{CFG['study']}/preprocessing_study.log",
    benchmark:
        f"{OUT}/benchmarks/preprocessing_study.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        labelled=" ".join(f"{s}={p}" for s in SAMPLES for p in files_of_sample(s)),
        stem=lambda w, output: os.path.splitext(output.pdf)[0],
        settings=section("images", "evaluate"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} preprocessing --config {params.config} --inputs {params.labelled}"
        " --output {output.json} --plot {params.stem} > {log} 2>&1"


rule evaluate:
    input:
        images=[f"{OUT}/images/{s}.h5" for s in SAMPLES],
        model=f"{OUT}/model/model.keras",
        preprocessing=f"{OUT}/preprocessing.json",
    output:
        metrics=report(f"{OUT}/metrics.json", caption="../report/metrics.rst", category="Metrics"),
        scores=f"{OUT}/scores.npz",
    log:
        f"logs/{CFG['study']}/evaluate.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=section("evaluate", "train", "seed", "jets"),
    threads: 4  # capped at --cores when run locally
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} evaluate --config {params.config} --inputs {input.images}"
        " --model {input.model} --metrics {output.metrics} --scores {output.scores}"
        " --preprocessing {input.preprocessing} > {log} 2>&1"


rule plots:
    input:
        scores=f"{OUT}/scores.npz",
        history=f"{OUT}/model/history.json",
    output:
        pdf=[f"{OUT}/plots/{p}.pdf" for p in JET_PLOTS],
        roc=report(f"{OUT}/plots/roc.png", caption="../report/roc.rst", category="Jet tagging"),
        cnn_vs_mass=report(
            f"{OUT}/plots/cnn_vs_mass.png", caption="../report/cnn_vs_mass.rst", category="Jet tagging"
        ),
        cnn_vs_tau21=report(
            f"{OUT}/plots/cnn_vs_tau21.png", caption="../report/cnn_vs_tau21.rst", category="Jet tagging"
        ),
        cnn_vs_delta_r=report(
            f"{OUT}/plots/cnn_vs_delta_r.png",
            caption="../report/cnn_vs_delta_r.rst",
            category="Jet tagging",
        ),
        mean_images=report(
            f"{OUT}/plots/mean_images.png", caption="../report/mean_images.rst", category="Jet images"
        ),
        pixel_correlation=report(
            f"{OUT}/plots/pixel_correlation.png",
            caption="../report/pixel_correlation.rst",
            category="Jet images",
        ),
        training=report(
            f"{OUT}/plots/training.png", caption="../report/training.rst", category="Training"
        ),
        cnn_output=report(
            f"{OUT}/plots/cnn_output.png", caption="../report/cnn_output.rst", category="Jet tagging"
        ),
    log:
        f"logs/{CFG['study']}/plots.log",
    benchmark:
        f"{OUT}/benchmarks/plots.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        outdir=lambda w, output: os.path.dirname(output.roc),
        settings=section("jets", "generation", "images", "evaluate"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} plots --config {params.config} --scores {input.scores}"
        " --history {input.history} --outdir {params.outdir} > {log} 2>&1"
