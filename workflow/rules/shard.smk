# Static sharding: every image in exactly one of `shards` balanced shards.


rule make_shards:
    input:
        manifest=rules.make_manifest.output.table,
    output:
        tables=shard_tables(),
    log:
        f"{RESULTS}/logs/make_shards.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_shards.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        shards=config["shards"],
    shell:
        "$FEATNORM_PYTHON -m featnorm shard --manifest {input.manifest:q} --shards {params.shards}"
        " --outputs {output.tables:q} > {log:q} 2>&1"
