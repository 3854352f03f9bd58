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
        "python -m featnorm references --manifest {input.manifest} --embed {input.embed}"
        " --model {wildcards.model} --sdd-similarities {params.similarities}"
        " --sdd-resamplings {params.resamplings} --sdd-seed {params.seed} {params.head}"
        " --threads {threads} --output {output.table} --log {log}"


# The references figure (its own rule until figures.smk draws every figure of
# featnorm.options.FIGURE_INPUTS in one loop; then this rule goes).
rule plot_references:
    input:
        **figure_inputs("references"),
    output:
        png=report(
            model_figure("references", "png"),
            caption="../report/references.rst",
            category="figures",
            labels={"model": "{model}", "figure": "face-quality references"},
        ),
        svg=model_figure("references", "svg"),
    log:
        f"{RESULTS}/logs/plot_references/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_references/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("references"),
    shell:
        "python -m featnorm plot --kind references --model {wildcards.model}"
        " {params.args}"
        " --png {output.png} --svg {output.svg} --log {log}"
