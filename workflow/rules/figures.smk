# Figures per model (PNG for the report, SVG beside it): one rule per figure of
# featnorm.options.FIGURES, named plot_<figure>, drawn from the tables FIGURE_INPUTS names for it,
# with its caption in workflow/report/<figure>.rst. A new figure needs no change here.
# ground_truth exists only on the demo dataset (see model_figure_names()).

# Report labels that say more than the figure's name.
FIGURE_LABELS = {
    "norm_vs_brisque": "norm vs BRISQUE",
    "trends": "binned trends",
    "forest": "forest plot",
    "two_levels": "between and within classes",
    "by_class_size": "r by class size",
}


for figure in options.FIGURES:

    rule:
        name:
            f"plot_{figure}"
        input:
            **figure_inputs(figure),
        output:
            png=report(
                model_figure(figure, "png"),
                caption=f"../report/{figure}.rst",
                category="figures",
                labels={
                    "model": "{model}",
                    "figure": FIGURE_LABELS.get(figure, figure.replace("_", " ")),
                },
            ),
            svg=model_figure(figure, "svg"),
        log:
            f"{RESULTS}/logs/plot_{figure}/{{model}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/plot_{figure}/{{model}}.tsv"
        conda:
            "../../envs/featnorm.yaml"
        params:
            kind=figure,
            args=figure_args(figure),
        shell:
            "$FEATNORM_PYTHON -m featnorm plot --kind {params.kind} --model {wildcards.model}"
            " {params.args} --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"
