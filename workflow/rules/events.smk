# Event classification from whole-event images (arXiv:1711.03573): RPV gluinos vs QCD.
# generate (per shard) -> images (per sample) -> train -> evaluate -> plots.
# Each rule is one call of a `jetimage events-*` subcommand (src/jetimage/cli_events.py).
# Included from the Snakefile (set-up in common.smk); with `events: {enabled: true}` in the config, EVENTS_TARGETS
# lists the outputs for `rule all` (empty when disabled).
rule events_all:
    input:
        EVENTS_TARGETS,


rule events_generate:
    output:
        f"{EV_OUT}/samples/{{evsample}}/shard{{evshard}}.root",
    log:
        f"{EV_LOGS}/generate/{{evsample}}_{{evshard}}.log",
    benchmark:
        f"{EV_OUT}/benchmarks/generate/{{evsample}}_{{evshard}}.tsv"
    params:
        config=EV_CONFIG,
        cli=EV_CLI,
        settings=lambda w: _ev_json.dumps(
            [EV_SAMPLES[w.evsample], EV["pythia_common"], EV["sqrt_s"], EV["skim"],
             EV["selection"], EV["fatjet_R"], EV["fatjet_pt_store"], config.get("seed")],
            sort_keys=True,
        ),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.cli} events-generate --config {params.config} --sample {wildcards.evsample}"
        " --shard {wildcards.evshard} --output {output} > {log} 2>&1"


rule events_images:
    input:
        _ev_inputs,
    output:
        f"{EV_OUT}/images/{{evsample}}.h5",
    log:
        f"{EV_LOGS}/images/{{evsample}}.log",
    benchmark:
        f"{EV_OUT}/benchmarks/images/{{evsample}}.tsv"
    params:
        config=EV_CONFIG,
        cli=EV_CLI,
        settings=_ev_json.dumps([EV["images"], EV["selection"], EV["delphes"]], sort_keys=True),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.cli} events-images --config {params.config} --sample {wildcards.evsample}"
        " --inputs {input} --output {output} > {log} 2>&1"


rule events_train:
    input:
        [f"{EV_OUT}/images/{s}.h5" for s in EV_NAMES],
    output:
        model=f"{EV_OUT}/model/model.keras",
        history=f"{EV_OUT}/model/history.json",
    log:
        f"{EV_LOGS}/train.log",
    benchmark:
        f"{EV_OUT}/benchmarks/train.tsv"
    params:
        config=EV_CONFIG,
        cli=EV_CLI,
        settings=_ev_json.dumps([EV["train"], config.get("seed")], sort_keys=True),
    threads: 4  # capped at --cores when run locally
    resources:
        mem_mb=12000,
        runtime=240,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.cli} events-train --config {params.config} --inputs {input}"
        " --model {output.model} --history {output.history} > {log} 2>&1"


rule events_evaluate:
    input:
        images=[f"{EV_OUT}/images/{s}.h5" for s in EV_NAMES],
        model=f"{EV_OUT}/model/model.keras",
    output:
        metrics=f"{EV_OUT}/metrics.json",
        scores=f"{EV_OUT}/scores.npz",
    log:
        f"{EV_LOGS}/evaluate.log",
    benchmark:
        f"{EV_OUT}/benchmarks/evaluate.tsv"
    params:
        config=EV_CONFIG,
        cli=EV_CLI,
    threads: 4  # capped at --cores when run locally
    resources:
        mem_mb=12000,
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.cli} events-evaluate --config {params.config} --inputs {input.images}"
        " --model {input.model} --metrics {output.metrics} --scores {output.scores} > {log} 2>&1"


rule events_plots:
    input:
        images=[f"{EV_OUT}/images/{s}.h5" for s in EV_NAMES],
        scores=f"{EV_OUT}/scores.npz",
    output:
        [f"{EV_OUT}/plots/{p}.{ext}" for p in EV_PLOTS for ext in ("pdf", "png")],
    log:
        f"{EV_LOGS}/plots.log",
    benchmark:
        f"{EV_OUT}/benchmarks/plots.tsv"
    params:
        config=EV_CONFIG,
        cli=EV_CLI,
        outdir=lambda w, output: os.path.dirname(output[0]),
    resources:
        mem_mb=8000,
        runtime=20,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.cli} events-plots --config {params.config} --inputs {input.images}"
        " --scores {input.scores} --outdir {params.outdir} > {log} 2>&1"
