# Figures per model (PNG for the report, SVG beside it); one rule per figure so each has its
# caption. ground_truth exists only on the demo dataset (see model_figure_names()).


rule plot_class_sizes:
    input:
        class_stats=f"{RESULTS}/{{model}}/class_stats.parquet",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/class_sizes.png",
            caption="../report/class_sizes.rst",
            category="figures",
            labels={"model": "{model}", "figure": "class sizes"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/class_sizes.svg",
    log:
        f"{RESULTS}/logs/plot_class_sizes/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_class_sizes/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm plot --kind class_sizes --model {wildcards.model}"
        " --class-stats {input.class_stats}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_class_norm_mean:
    input:
        class_stats=f"{RESULTS}/{{model}}/class_stats.parquet",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/class_norm_mean.png",
            caption="../report/class_norm_mean.rst",
            category="figures",
            labels={"model": "{model}", "figure": "class norm mean"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/class_norm_mean.svg",
    log:
        f"{RESULTS}/logs/plot_class_norm_mean/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_class_norm_mean/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm plot --kind class_norm_mean --model {wildcards.model}"
        " --class-stats {input.class_stats}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_norm_vs_brisque:
    input:
        samples=f"{RESULTS}/{{model}}/samples.parquet",
        correlations=f"{RESULTS}/{{model}}/correlations.csv",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/norm_vs_brisque.png",
            caption="../report/norm_vs_brisque.rst",
            category="figures",
            labels={"model": "{model}", "figure": "norm vs BRISQUE"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/norm_vs_brisque.svg",
    log:
        f"{RESULTS}/logs/plot_norm_vs_brisque/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_norm_vs_brisque/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        policies=analysis_policies(),
    shell:
        "python -m featnorm plot --kind norm_vs_brisque --model {wildcards.model}"
        " --samples {input.samples} --correlations {input.correlations} --policies {params.policies}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_trends:
    input:
        samples=f"{RESULTS}/{{model}}/samples.parquet",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/trends.png",
            caption="../report/trends.rst",
            category="figures",
            labels={"model": "{model}", "figure": "binned trends"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/trends.svg",
    log:
        f"{RESULTS}/logs/plot_trends/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_trends/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        policies=analysis_policies(),
    shell:
        "python -m featnorm plot --kind trends --model {wildcards.model}"
        " --samples {input.samples} --policies {params.policies}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_forest:
    input:
        correlations=f"{RESULTS}/{{model}}/correlations.csv",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/forest.png",
            caption="../report/forest.rst",
            category="figures",
            labels={"model": "{model}", "figure": "forest plot"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/forest.svg",
    log:
        f"{RESULTS}/logs/plot_forest/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_forest/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm plot --kind forest --model {wildcards.model}"
        " --correlations {input.correlations}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_ground_truth:
    input:
        samples=f"{RESULTS}/{{model}}/samples.parquet",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/ground_truth.png",
            caption="../report/ground_truth.rst",
            category="figures",
            labels={"model": "{model}", "figure": "ground truth"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/ground_truth.svg",
    log:
        f"{RESULTS}/logs/plot_ground_truth/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_ground_truth/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        policies=analysis_policies(),
    shell:
        "python -m featnorm plot --kind ground_truth --model {wildcards.model}"
        " --samples {input.samples} --policies {params.policies}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_two_levels:
    input:
        samples=f"{RESULTS}/{{model}}/samples.parquet",
        decomposition=f"{RESULTS}/{{model}}/decomposition.csv",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/two_levels.png",
            caption="../report/two_levels.rst",
            category="figures",
            labels={"model": "{model}", "figure": "between and within classes"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/two_levels.svg",
    log:
        f"{RESULTS}/logs/plot_two_levels/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_two_levels/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm plot --kind two_levels --model {wildcards.model}"
        " --samples {input.samples} --decomposition {input.decomposition}"
        " --png {output.png} --svg {output.svg} --log {log}"


rule plot_by_class_size:
    input:
        table=f"{RESULTS}/{{model}}/by_class_size.csv",
    output:
        png=report(
            f"{RESULTS}/{{model}}/figures/by_class_size.png",
            caption="../report/by_class_size_figure.rst",
            category="figures",
            labels={"model": "{model}", "figure": "r by class size"},
        ),
        svg=f"{RESULTS}/{{model}}/figures/by_class_size.svg",
    log:
        f"{RESULTS}/logs/plot_by_class_size/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_by_class_size/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    shell:
        "python -m featnorm plot --kind by_class_size --model {wildcards.model}"
        " --by-class-size {input.table}"
        " --png {output.png} --svg {output.svg} --log {log}"
