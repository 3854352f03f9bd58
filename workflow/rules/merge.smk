# Merge per model: manifest + BRISQUE + feature norm -> samples.parquet (with the standardised
# norm columns) and class_stats.parquet. Re-runs when an analysis parameter changes, never the
# per-image steps.


# Analysis helpers (for the lead to move into common.smk).


def analysis_policies():
    """Standardisation policies, space-separated for the CLI."""
    return " ".join(config["analysis"]["policies"])


def analysis_methods():
    """Correlation methods, space-separated for the CLI."""
    return " ".join(config["analysis"]["methods"])


def has_ground_truth():
    """Only the demo dataset carries ground-truth quality columns."""
    return config["dataset"]["format"] == "demo"


def model_figure_names():
    """Per-model figure names (results/{model}/figures/<name>.png)."""
    names = ["class_sizes", "class_norm_mean", "norm_vs_brisque", "trends", "forest"]
    return names + (["ground_truth"] if has_ground_truth() else [])


def correlation_tables():
    return expand(f"{RESULTS}/{{model}}/correlations.csv", model=model_names())


def analysis_targets():
    """Every final output of the analysis, for all configured models."""
    per_model = expand(
        f"{RESULTS}/{{model}}/{{name}}",
        model=model_names(),
        name=["samples.parquet", "class_stats.parquet", "correlations.csv"],
    )
    figures = expand(
        f"{RESULTS}/{{model}}/figures/{{figure}}.{{ext}}",
        model=model_names(),
        figure=model_figure_names(),
        ext=["png", "svg"],
    )
    tables = [
        f"{RESULTS}/{name}"
        for name in ["table1.md", "table1.csv", "comparison.csv", "summary.md"]
    ]
    comparison = expand(f"{RESULTS}/figures/comparison_forest.{{ext}}", ext=["png", "svg"])
    return per_model + figures + tables + comparison


rule merge_samples:
    input:
        manifest=manifest_table(),
        brisque=brisque_tables(),
        embed=embed_tables,
    output:
        samples=f"{RESULTS}/{{model}}/samples.parquet",
        class_stats=f"{RESULTS}/{{model}}/class_stats.parquet",
    params:
        policies=analysis_policies(),
        min_class_size=config["analysis"]["min_class_size"],
        ddof=config["analysis"]["ddof"],
        residual_degree=config["analysis"]["residual_degree"],
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        f"{RESULTS}/logs/merge_samples/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_samples/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm merge --manifest {input.manifest} --brisque {input.brisque}"
        " --embed {input.embed} --model {wildcards.model} --policies {params.policies}"
        " --min-class-size {params.min_class_size} --ddof {params.ddof}"
        " --residual-degree {params.residual_degree}"
        " --samples {output.samples} --class-stats {output.class_stats} --log {log}"
