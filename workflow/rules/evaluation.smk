# Quality utility (evaluation.edc): comparison pairs per model, then the error-versus-discard
# characteristic of every quality proxy and its figure. After embedding and merging; changing an
# evaluation: key re-runs only these rules (and the comparison and summary).


rule draw_pairs:
    input:
        samples=model_table("samples"),
        embed=embed_tables,
    output:
        pairs=model_table("pairs"),
    log:
        f"{RESULTS}/logs/draw_pairs/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_pairs/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        max_genuine=config["evaluation"]["max_genuine_per_class"],
        impostors=config["evaluation"]["impostor_pairs"],
        seed=config["evaluation"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm pairs --samples {input.samples:q} --embed {input.embed:q}"
        " --max-genuine-per-class {params.max_genuine} --impostor-pairs {params.impostors}"
        " --seed {params.seed} --output {output.pairs:q} > {log:q} 2>&1"


rule compute_edc:
    input:
        samples=model_table("samples"),
        pairs=model_table("pairs"),
    output:
        table=report(
            model_table("edc"),
            caption="../report/edc.rst",
            category="quality utility",
            labels={"model": "{model}", "table": "EDC pAUC"},
        ),
        curves=report(
            model_table("edc_curve"),
            caption="../report/edc_curve.rst",
            category="quality utility",
            labels={"model": "{model}", "table": "EDC curves"},
        ),
    log:
        f"{RESULTS}/logs/compute_edc/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compute_edc/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        policies=analysis_policies(),
        fmrs=evaluation_list("fmrs"),
        limits=evaluation_list("discard_limits"),
        step=config["evaluation"]["discard_step"],
        replicates=config["evaluation"]["bootstrap_replicates"],
        confidence=config["analysis"]["confidence"],
        seed=config["evaluation"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm edc --samples {input.samples:q} --pairs {input.pairs:q}"
        " --model {wildcards.model} --policies {params.policies} --fmrs {params.fmrs}"
        " --discard-limits {params.limits} --discard-step {params.step}"
        " --replicates {params.replicates} --confidence {params.confidence}"
        " --seed {params.seed} --output {output.table:q} --curves {output.curves:q} > {log:q} 2>&1"


rule plot_edc:
    input:
        table=model_table("edc"),
        curves=model_table("edc_curve"),
    output:
        png=report(
            model_figure("edc", "png"),
            caption="../report/edc_figure.rst",
            category="quality utility",
            labels={"model": "{model}", "figure": "EDC"},
        ),
        svg=model_figure("edc", "svg"),
    log:
        f"{RESULTS}/logs/plot_edc/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_edc/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "$FEATNORM_PYTHON -m featnorm plot-edc --edc {input.table:q} --curves {input.curves:q}"
        " --model {wildcards.model} --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"
