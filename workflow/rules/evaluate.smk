# Evaluation: test-split scores of the CNN and of the baselines of the study's kind -> metrics.json.


rule evaluate:
    input:
        images=image_files,
        model=rules.train.output.model,
        image_mass=image_mass_input,
        variants=lambda w: list(variant_models(w).values()),
    output:
        metrics=report(
            f"{OUT}/metrics.json",
            caption="../report/metrics.rst",
            category="{study}",
            subcategory="Metrics",
        ),
        scores=f"{OUT}/scores.npz",
        two_stage=f"{OUT}/model/cnn_bdt.pkl",
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate.tsv"
    params:
        jetimage=JETIMAGE,
        config=config_of,
        image_mass=image_mass_flag,
        variants=variants_flag,
        settings=section("evaluate", "train", "seed", "jets", "events"),
    threads: 4  # capped at --cores when run locally
    priority: AFTER_SAMPLES
    resources:
        mem_mb=mem_mb("evaluate"),
        runtime=30,
    conda:
        "../envs/jetimage.yaml"
    shell:
        "{params.jetimage} evaluate --config {params.config:q} --inputs {input.images:q}"
        " --model {input.model:q} --metrics {output.metrics:q} --scores {output.scores:q}"
        " --two-stage {output.two_stage:q}"
        " {params.image_mass} {params.variants} > {log:q} 2>&1"
