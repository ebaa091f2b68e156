# Samples: generated with Pythia (+ FastJet) shard by shard, or ingested from the user's ROOT files
# chunk by chunk. The study's kind decides what a record is (a jet or a whole event).


rule generate:
    output:
        f"{OUT}/samples/{{sample}}/shard{{shard}}.root",
    log:
        f"{LOGS}/generate/{{sample}}_{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/generate/{{sample}}_{{shard}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        settings=generation_settings,
    threads: 1
    priority: sample_priority
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} generate --config {params.config:q} --sample {wildcards.sample}"
        " --shard {wildcards.shard} --output {output:q} > {log:q} 2>&1"


rule ingest:
    input:
        lambda w: chunk(w)[0],
    output:
        f"{OUT}/samples/{{sample}}/part{{part}}.root",
    log:
        f"{LOGS}/ingest/{{sample}}_{{part}}.log",
    benchmark:
        f"{OUT}/benchmarks/ingest/{{sample}}_{{part}}.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        start=lambda w: chunk(w)[1],
        stop=lambda w: chunk(w)[2],
        settings=lambda w: json.dumps(
            [STUDIES[w.study].sample(w.sample), STUDIES[w.study][STUDIES[w.study].kind]], sort_keys=True
        ),
    threads: 1
    priority: sample_priority
    resources:
        mem_mb=mem_mb("ingest"),
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} ingest --config {params.config:q} --sample {wildcards.sample}"
        " --file {input:q} --start {params.start} --stop {params.stop} --output {output:q} > {log:q} 2>&1"
