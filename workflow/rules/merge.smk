# Merge per model: manifest + BRISQUE + feature norm (+ the face-quality references) ->
# samples.parquet (with the standardised norm columns) and class_stats.parquet. Re-runs when an analysis parameter changes, never the
# per-image steps.


rule merge_samples:
    input:
        manifest=manifest_table(),
        brisque=brisque_tables(),
        embed=embed_tables,
        references=references_tables,
    output:
        samples=model_table("samples"),
        class_stats=model_table("class_stats"),
    log:
        f"{RESULTS}/logs/merge_samples/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_samples/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        policies=analysis_policies(),
        min_class_size=config["analysis"]["min_class_size"],
        ddof=config["analysis"]["ddof"],
        residual_degree=config["analysis"]["residual_degree"],
        references=references_option,
    shell:
        "$FEATNORM_PYTHON -m featnorm merge --manifest {input.manifest:q} --brisque {input.brisque:q}"
        " --embed {input.embed:q} --model {wildcards.model} --policies {params.policies}"
        " --min-class-size {params.min_class_size} --ddof {params.ddof}"
        " --residual-degree {params.residual_degree} {params.references}"
        " --samples {output.samples:q} --class-stats {output.class_stats:q} > {log:q} 2>&1"
