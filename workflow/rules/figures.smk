# Figures per model (PNG for the report, SVG beside it); one rule per figure so each has its
# caption. Each is drawn from the tables featnorm.options.FIGURE_INPUTS names for it (input and
# flags alike); ground_truth exists only on the demo dataset (see model_figure_names()).


rule plot_class_sizes:
    input:
        **figure_inputs("class_sizes"),
    output:
        png=report(
            model_figure("class_sizes", "png"),
            caption="../report/class_sizes.rst",
            category="figures",
            labels={"model": "{model}", "figure": "class sizes"},
        ),
        svg=model_figure("class_sizes", "svg"),
    log:
        f"{RESULTS}/logs/plot_class_sizes/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_class_sizes/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("class_sizes"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind class_sizes --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_class_norm_mean:
    input:
        **figure_inputs("class_norm_mean"),
    output:
        png=report(
            model_figure("class_norm_mean", "png"),
            caption="../report/class_norm_mean.rst",
            category="figures",
            labels={"model": "{model}", "figure": "class norm mean"},
        ),
        svg=model_figure("class_norm_mean", "svg"),
    log:
        f"{RESULTS}/logs/plot_class_norm_mean/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_class_norm_mean/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("class_norm_mean"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind class_norm_mean --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_norm_vs_brisque:
    input:
        **figure_inputs("norm_vs_brisque"),
    output:
        png=report(
            model_figure("norm_vs_brisque", "png"),
            caption="../report/norm_vs_brisque.rst",
            category="figures",
            labels={"model": "{model}", "figure": "norm vs BRISQUE"},
        ),
        svg=model_figure("norm_vs_brisque", "svg"),
    log:
        f"{RESULTS}/logs/plot_norm_vs_brisque/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_norm_vs_brisque/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("norm_vs_brisque"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind norm_vs_brisque --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_trends:
    input:
        **figure_inputs("trends"),
    output:
        png=report(
            model_figure("trends", "png"),
            caption="../report/trends.rst",
            category="figures",
            labels={"model": "{model}", "figure": "binned trends"},
        ),
        svg=model_figure("trends", "svg"),
    log:
        f"{RESULTS}/logs/plot_trends/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_trends/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("trends"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind trends --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_forest:
    input:
        **figure_inputs("forest"),
    output:
        png=report(
            model_figure("forest", "png"),
            caption="../report/forest.rst",
            category="figures",
            labels={"model": "{model}", "figure": "forest plot"},
        ),
        svg=model_figure("forest", "svg"),
    log:
        f"{RESULTS}/logs/plot_forest/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_forest/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("forest"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind forest --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_ground_truth:
    input:
        **figure_inputs("ground_truth"),
    output:
        png=report(
            model_figure("ground_truth", "png"),
            caption="../report/ground_truth.rst",
            category="figures",
            labels={"model": "{model}", "figure": "ground truth"},
        ),
        svg=model_figure("ground_truth", "svg"),
    log:
        f"{RESULTS}/logs/plot_ground_truth/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_ground_truth/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("ground_truth"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind ground_truth --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_two_levels:
    input:
        **figure_inputs("two_levels"),
    output:
        png=report(
            model_figure("two_levels", "png"),
            caption="../report/two_levels.rst",
            category="figures",
            labels={"model": "{model}", "figure": "between and within classes"},
        ),
        svg=model_figure("two_levels", "svg"),
    log:
        f"{RESULTS}/logs/plot_two_levels/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_two_levels/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("two_levels"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind two_levels --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule plot_by_class_size:
    input:
        **figure_inputs("by_class_size"),
    output:
        png=report(
            model_figure("by_class_size", "png"),
            caption="../report/by_class_size_figure.rst",
            category="figures",
            labels={"model": "{model}", "figure": "r by class size"},
        ),
        svg=model_figure("by_class_size", "svg"),
    log:
        f"{RESULTS}/logs/plot_by_class_size/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_by_class_size/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        args=figure_args("by_class_size"),
    shell:
        "{PYTHON:q} -m featnorm plot --kind by_class_size --model {wildcards.model}"
        " {params.args}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"
