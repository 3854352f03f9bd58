# Correlations (cluster bootstrap over classes), the seed's Table 1, the model comparison and the
# plain-text summary. The analysis helpers live at the top of merge.smk (included first).


rule correlate:
    input:
        samples=model_table("samples"),
    output:
        table=report(
            model_table("correlations"),
            caption="../report/correlations.rst",
            category="correlations",
            labels={"model": "{model}", "table": "correlations"},
        ),
    log:
        f"{RESULTS}/logs/correlate/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/correlate/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        policies=analysis_policies(),
        methods=analysis_methods(),
        replicates=config["analysis"]["bootstrap_replicates"],
        confidence=config["analysis"]["confidence"],
        seed=config["analysis"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm correlate --samples {input.samples:q} --model {wildcards.model}"
        " --policies {params.policies} --methods {params.methods}"
        " --replicates {params.replicates} --confidence {params.confidence}"
        " --seed {params.seed} --output {output.table:q} > {log:q} 2>&1"


rule table1:
    input:
        correlations=model_tables("correlations"),
    output:
        csv=study_file("table1.csv"),
        markdown=report(
            study_file("table1.md"),
            caption="../report/table1.rst",
            category="correlations",
            labels={"table": "Table 1"},
        ),
    log:
        f"{RESULTS}/logs/table1/table1.log",
    benchmark:
        f"{RESULTS}/benchmarks/table1/table1.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        confidence=config["analysis"]["confidence"],
    shell:
        "$FEATNORM_PYTHON -m featnorm table1 --correlations {input.correlations:q}"
        " --confidence {params.confidence} --csv {output.csv:q} --markdown {output.markdown:q}"
        " > {log:q} 2>&1"


rule compare_models:
    input:
        correlations=model_tables("correlations"),
        edc=edc_tables(),
    output:
        table=report(
            study_file("comparison.csv"),
            caption="../report/comparison.rst",
            category="comparison",
            labels={"table": "all models"},
        ),
        png=report(
            study_figure("comparison_forest", "png"),
            caption="../report/comparison_forest.rst",
            category="comparison",
            labels={"figure": "forest plot, all models"},
        ),
        svg=study_figure("comparison_forest", "svg"),
    log:
        f"{RESULTS}/logs/compare_models/compare_models.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_models/compare_models.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        edc=edc_option("--edc", edc_tables()),
    shell:
        "$FEATNORM_PYTHON -m featnorm compare --correlations {input.correlations:q} {params.edc}"
        " --output {output.table:q} --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"


rule summary:
    input:
        correlations=model_tables("correlations"),
        samples=expand(model_table("samples"), model=model_names()),
        class_stats=expand(model_table("class_stats"), model=model_names()),
        differences=expand(model_table("differences"), model=model_names()),
        decomposition=expand(model_table("decomposition"), model=model_names()),
        by_class_size=expand(model_table("by_class_size"), model=model_names()),
        edc=edc_tables(),
    output:
        summary=report(
            study_file("summary.md"),
            caption="../report/summary.rst",
            category="summary",
            labels={"table": "summary"},
        ),
    log:
        f"{RESULTS}/logs/summary/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary/summary.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        models=model_names(),
        confidence=config["analysis"]["confidence"],
        edc=edc_option("--edc", edc_tables()),
    shell:
        "$FEATNORM_PYTHON -m featnorm summary --models {params.models} {params.edc}"
        " --correlations {input.correlations:q} --samples {input.samples:q}"
        " --class-stats {input.class_stats:q} --differences {input.differences:q}"
        " --decomposition {input.decomposition:q} --by-class-size {input.by_class_size:q}"
        " --confidence {params.confidence}"
        " --output {output.summary:q} > {log:q} 2>&1"


rule paired_differences:
    input:
        samples=model_table("samples"),
    output:
        table=report(
            model_table("differences"),
            caption="../report/differences.rst",
            category="correlations",
            labels={"model": "{model}", "table": "paired differences"},
        ),
    log:
        f"{RESULTS}/logs/paired_differences/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/paired_differences/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        policies=analysis_policies(),
        methods=analysis_methods(),
        replicates=config["analysis"]["bootstrap_replicates"],
        confidence=config["analysis"]["confidence"],
        seed=config["analysis"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm differences --samples {input.samples:q} --model {wildcards.model}"
        " --policies {params.policies} --methods {params.methods}"
        " --replicates {params.replicates} --confidence {params.confidence}"
        " --seed {params.seed} --output {output.table:q} > {log:q} 2>&1"


rule decompose_correlations:
    input:
        samples=model_table("samples"),
    output:
        table=report(
            model_table("decomposition"),
            caption="../report/decomposition.rst",
            category="correlations",
            labels={"model": "{model}", "table": "within/between decomposition"},
        ),
    log:
        f"{RESULTS}/logs/decompose_correlations/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/decompose_correlations/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        policies=analysis_policies(),
        replicates=config["analysis"]["bootstrap_replicates"],
        confidence=config["analysis"]["confidence"],
        seed=config["analysis"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm decompose --samples {input.samples:q} --model {wildcards.model}"
        " --policies {params.policies} --replicates {params.replicates}"
        " --confidence {params.confidence} --seed {params.seed}"
        " --output {output.table:q} > {log:q} 2>&1"


rule correlate_by_class_size:
    input:
        samples=model_table("samples"),
    output:
        table=report(
            model_table("by_class_size"),
            caption="../report/by_class_size_table.rst",
            category="correlations",
            labels={"model": "{model}", "table": "correlations by class size"},
        ),
    log:
        f"{RESULTS}/logs/correlate_by_class_size/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/correlate_by_class_size/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        policies=analysis_policies(),
        methods=analysis_methods(),
        size_bins=analysis_size_bins(),
        replicates=config["analysis"]["bootstrap_replicates"],
        confidence=config["analysis"]["confidence"],
        seed=config["analysis"]["seed"],
    shell:
        "$FEATNORM_PYTHON -m featnorm by-class-size --samples {input.samples:q} --model {wildcards.model}"
        " --policies {params.policies} --methods {params.methods}"
        " --size-bins {params.size_bins} --replicates {params.replicates}"
        " --confidence {params.confidence} --seed {params.seed}"
        " --output {output.table:q} > {log:q} 2>&1"
