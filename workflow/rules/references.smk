# Face-quality references per model from its stored embeddings (references.enabled): class-centre
# similarity, SDD-FIQA and the CR-FIQA certainty ratio. merge_samples joins them into
# samples.parquet; changing a references: key re-runs this rule and what reads samples.parquet.


rule compute_references:
    input:
        unpack(references_inputs),
    output:
        table=model_table("references"),
    log:
        f"{RESULTS}/logs/compute_references/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compute_references/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    # one BLAS thread: SDD's many small products lose to spinning BLAS threads on a busy node,
    # and one core meets the 120 s at CASIA scale (benchmarks/README.md)
    threads: 1
    resources:
        # CASIA-WebFace scale: float16 embeddings 0.5 GB + SDD draws 0.3 GB + 64 MB blocks
        mem_mb=4000,
        runtime=60,
    params:
        similarities=config["references"]["sdd"]["similarities"],
        resamplings=config["references"]["sdd"]["resamplings"],
        seed=config["references"]["sdd"]["seed"],
        head=references_head_args,
    shell:
        "$FEATNORM_PYTHON -m featnorm references --manifest {input.manifest:q}"
        " --embed {input.embed:q} --model {wildcards.model}"
        " --sdd-similarities {params.similarities} --sdd-resamplings {params.resamplings}"
        " --sdd-seed {params.seed} {params.head} --threads {threads}"
        " --output {output.table:q} > {log:q} 2>&1"
