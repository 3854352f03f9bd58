# Ingestion: one row per image with a stable sample_id (demo: generates the images first).


rule make_manifest:
    output:
        table=manifest_table(),
    log:
        f"{RESULTS}/logs/make_manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_manifest.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        fmt=config["dataset"]["format"],
        source=dataset_source_args(),
    shell:
        "$FEATNORM_PYTHON -m featnorm manifest --format {params.fmt} {params.source}"
        " --output {output.table:q} > {log:q} 2>&1"
