# W-vs-QCD jet tagging: generate -> images -> train -> evaluate -> plots.
# Each rule is one call of the `jetimage` command line (src/jetimage/cli.py).


def sample_files(wildcards):
    return files_of_sample(wildcards.sample)


def files_of_sample(name):
    """The jets trees of a sample: generated shards, or ingested chunks of the user's files."""
    if name in CHUNKS:
        return [f"{OUT}/samples/{name}/part{i}.root" for i in range(len(CHUNKS[name]))]
    return [f"{OUT}/samples/{name}/shard{i}.root" for i in range(CFG.sample(name)["n_shards"])]


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
    shell:
        "{params.jetimage} ingest --config {params.config} --sample {wildcards.sample}"
        " --file {input} --start {params.start} --stop {params.stop} --output {output} > {log} 2>&1"


def generation_settings(name):
    """What a generated shard depends on: only these keys rerun it when they change."""
    s = CFG.sample(name)
    keys = ("truth", "n_events", "n_shards", "seed", "pythia")
    return json.dumps(
        [{k: s.get(k) for k in keys}, CFG["generation"], CFG["jets"], CFG["seed"]], sort_keys=True
    )


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
    shell:
        "{params.jetimage} images --config {params.config} --sample {wildcards.sample}"
        " --inputs {input} --output {output} > {log} 2>&1"


rule train:
    input:
        [f"{OUT}/images/{s}.h5" for s in SAMPLES],
    output:
        model=f"{OUT}/model/model.keras",
        history=f"{OUT}/model/history.json",
    log:
        f"logs/{CFG['study']}/train.log",
    benchmark:
        f"{OUT}/benchmarks/train.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=section("train", "seed"),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "{params.jetimage} train --config {params.config} --inputs {input}"
        " --model {output.model} --history {output.history} > {log} 2>&1"


rule preprocessing_study:
    input:
        [p for s in SAMPLES for p in files_of_sample(s)],
    output:
        json=f"{OUT}/preprocessing.json",
        pdf=f"{OUT}/plots/preprocessing.pdf",
        png=f"{OUT}/plots/preprocessing.png",
    log:
        f"logs/{CFG['study']}/preprocessing_study.log",
    benchmark:
        f"{OUT}/benchmarks/preprocessing_study.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        labelled=" ".join(f"{s}={p}" for s in SAMPLES for p in files_of_sample(s)),
        stem=f"{OUT}/plots/preprocessing",
        settings=section("images", "evaluate"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "{params.jetimage} preprocessing --config {params.config} --inputs {params.labelled}"
        " --output {output.json} --plot {params.stem} > {log} 2>&1"


rule evaluate:
    input:
        images=[f"{OUT}/images/{s}.h5" for s in SAMPLES],
        model=f"{OUT}/model/model.keras",
        preprocessing=f"{OUT}/preprocessing.json",
    output:
        metrics=f"{OUT}/metrics.json",
        scores=f"{OUT}/scores.npz",
    log:
        f"logs/{CFG['study']}/evaluate.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate.tsv"
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        settings=section("evaluate", "train", "seed"),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "{params.jetimage} evaluate --config {params.config} --inputs {input.images}"
        " --model {input.model} --metrics {output.metrics} --scores {output.scores}"
        " --preprocessing {input.preprocessing} > {log} 2>&1"


rule plot_roc:
    input:
        f"{OUT}/scores.npz",
    output:
        f"{OUT}/plots/roc.pdf",
        f"{OUT}/plots/roc.png",
    log:
        f"logs/{CFG['study']}/plot_roc.log",
    params:
        jetimage=JETIMAGE,
        config=CONFIG_PATH,
        stem=f"{OUT}/plots/roc",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{params.jetimage} plot-roc --config {params.config} --scores {input}"
        " --output {params.stem} > {log} 2>&1"
