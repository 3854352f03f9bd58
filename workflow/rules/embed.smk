# Feature norms per shard and model (GPU when present). The only GPU rule: its environment has
# the CUDA build of torch (envs/featnorm-gpu.yaml); a job given a GPU that torch cannot use stops.


rule embed_shard:
    input:
        shard=shard_table(),
        model_file=model_checkpoint,
    output:
        table=embed_table(),
    log:
        f"{RESULTS}/logs/embed_shard/{{model}}/shard-{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed_shard/{{model}}/shard-{{k}}.tsv"
    conda:
        "../../envs/featnorm-gpu.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        family=model_family,
        arch=model_arch,
        device=config["embed"]["device"],
        batch_size=config["embed"]["batch_size"],
        workers=config["embed"]["workers"],
        min_side=config["embed"]["min_side"],
        flip_fusion=config["embed"]["flip_fusion"],
        precision=config["embed"]["precision"],
        options=embed_flags(),
    shell:
        "$FEATNORM_PYTHON -m featnorm embed --shard {input.shard:q} --checkpoint {input.model_file:q}"
        " --family {params.family} --arch {params.arch} --device {params.device}"
        " --batch-size {params.batch_size} --workers {params.workers} --min-side {params.min_side}"
        " --flip-fusion {params.flip_fusion} --precision {params.precision}"
        " {params.options} --threads {threads} --output {output.table:q} > {log:q} 2>&1"
