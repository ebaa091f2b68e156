# Training: one trainer for every study (streamed from HDF5, resumable, per-epoch checkpoints).


rule train:
    input:
        training_files,
    output:
        model=f"{OUT}/model/model.keras",
        history=report(
            f"{OUT}/model/history.json",
            caption="../report/history.rst",
            category="{study}",
            subcategory="Training",
        ),
    log:
        f"{LOGS}/train.log",
    benchmark:
        f"{OUT}/benchmarks/train.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        settings=train_settings,
    threads: 4  # capped at --cores when run locally
    priority: AFTER_SAMPLES
    resources:
        mem_mb=mem_mb("train"),
        runtime=240,
        gpu=train_gpus,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} train --config {params.config:q} --inputs {input:q}"
        " --model {output.model:q} --history {output.history:q} > {log:q} 2>&1"


# Another CNN of train.variants (its own variables, DisCo or planing): the same trainer, one job each.
rule train_variant:
    input:
        unpack(variant_inputs),
    output:
        model=f"{OUT}/model/variants/{{variant}}.keras",
        history=f"{OUT}/model/variants/{{variant}}.history.json",
    log:
        f"{LOGS}/train_{{variant}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_{{variant}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        settings=variant_settings,
        init=init_flag,
    threads: 4  # capped at --cores when run locally
    priority: AFTER_SAMPLES
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=train_gpus,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} train --config {params.config:q} --inputs {input.images:q}"
        " --model {output.model:q} --history {output.history:q} --variant {wildcards.variant}"
        " {params.init} > {log:q} 2>&1"
