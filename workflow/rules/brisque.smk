# BRISQUE per shard: computed once per image, shared by every model.


rule score_brisque:
    input:
        shard=shard_table(),
    output:
        table=brisque_table(),
    log:
        f"{RESULTS}/logs/score_brisque/shard-{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score_brisque/shard-{{k}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        save_features=flag_if(config["brisque"]["save_features"], "--save-features"),
        precision=config["brisque"]["precision"],
    shell:
        "$FEATNORM_PYTHON -m featnorm brisque --shard {input.shard:q} --threads {threads}"
        " {params.save_features} --precision {params.precision}"
        " --output {output.table:q} > {log:q} 2>&1"
