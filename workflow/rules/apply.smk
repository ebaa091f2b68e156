# Apply: score every tree file of a sample (generated shard or ingested chunk) with a trained model
# into a friend tree aligned entry by entry with its input; and export the model to ONNX. Only
# studies with an `apply` section have these targets (apply.model set: the study only applies).


rule apply:
    input:
        tree=f"{OUT}/samples/{{sample}}/{{file}}.root",
        model=apply_model,
    output:
        f"{OUT}/apply/{{sample}}/{{file}}.root",
    log:
        f"{LOGS}/apply/{{sample}}_{{file}}.log",
    benchmark:
        f"{OUT}/benchmarks/apply/{{sample}}_{{file}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        entries=apply_entries,
        settings=section("kind", "images", "jets", "events"),
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} apply --config {params.config:q} --sample {wildcards.sample}"
        " --input {input.tree:q} --model {input.model:q} --output {output:q} {params.entries}"
        " > {log:q} 2>&1"


rule export:
    input:
        rules.train.output.model,
    output:
        f"{OUT}/model/model.onnx",
    log:
        f"{LOGS}/export.log",
    params:
        jetimage=JETIMAGE,
        config=config_of,
    threads: 1
    priority: AFTER_SAMPLES
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} export --config {params.config:q} --model {input:q} --output {output:q}"
        " > {log:q} 2>&1"
