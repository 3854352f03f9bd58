# Setup and every workflow helper: validation, wildcard constraints, path functions.
import json
import re
import shlex

from snakemake.utils import validate

from featnorm import config_checks

validate(config, schema="../schemas/config.schema.yaml", set_default=True)
# Outputs go under results/ of the working directory; use `snakemake --directory` to move them.
RESULTS = "results"
config_checks.check(config, results=RESULTS)


def model_names():
    """Configured model names, in config order."""
    return list(config["models"])


def shard_ids():
    """Shard indices 0..shards-1."""
    return list(range(config["shards"]))


def manifest_table():
    return f"{RESULTS}/manifest.parquet"


def shard_tables():
    return expand(f"{RESULTS}/shards/shard-{{k}}.parquet", k=shard_ids())


def brisque_tables():
    return expand(f"{RESULTS}/brisque/shard-{{k}}.parquet", k=shard_ids())


def embed_tables(wildcards):
    """Embedding shard tables of one model (wildcards.model)."""
    return expand(
        f"{RESULTS}/embed/{wildcards.model}/shard-{{k}}.parquet", k=shard_ids()
    )


def all_embed_tables():
    return expand(
        f"{RESULTS}/embed/{{model}}/shard-{{k}}.parquet",
        model=model_names(),
        k=shard_ids(),
    )


def model_setting(wildcards, key):
    """One setting of model wildcards.model, with the schema's defaults applied."""
    return config_checks.model_settings(config, wildcards.model)[key]


def model_family(wildcards):
    return model_setting(wildcards, "family")


def model_arch(wildcards):
    return model_setting(wildcards, "arch")


def model_checkpoint(wildcards):
    """The checkpoint file: the user's, or the demo model trained by train_demo_model."""
    path = model_setting(wildcards, "checkpoint")
    if path == config_checks.TRAIN_CHECKPOINT:
        return f"{RESULTS}/models/{wildcards.model}/checkpoint.ckpt"
    return path


def train_setting(wildcards, key):
    """One training setting of demo model wildcards.model (its `train` block over `train:`)."""
    return config_checks.train_settings(config, wildcards.model)[key]


def train_epochs(wildcards):
    return train_setting(wildcards, "epochs")


def train_batch_size(wildcards):
    return train_setting(wildcards, "batch_size")


def train_lr(wildcards):
    return train_setting(wildcards, "lr")


def train_seed(wildcards):
    return train_setting(wildcards, "seed")


def train_precision(wildcards):
    return train_setting(wildcards, "precision")


def trained_models():
    """Models whose checkpoint is `train` (the demo model and its variants), in config order."""
    return [
        name
        for name in model_names()
        if config_checks.model_settings(config, name)["checkpoint"]
        == config_checks.TRAIN_CHECKPOINT
    ]


def trained_model_epochs():
    return [
        config_checks.train_settings(config, name)["epochs"]
        for name in trained_models()
    ]


def trained_model_files(name):
    """Per trained model: its analysis table (correlations.csv) or its training curve."""
    folder = "models/{model}/" if name == "training_curve.csv" else "{model}/"
    return expand(f"{RESULTS}/{folder}{name}", model=trained_models())


def training_length_method():
    """Spearman (rank agreement) when the analysis computes it, else the first method."""
    methods = config["analysis"]["methods"]
    return "spearman" if "spearman" in methods else methods[0]


def training_length_targets():
    """The training-length table and figure, when two or more models are trained here."""
    if len(trained_models()) < 2:
        return []
    return [
        f"{RESULTS}/training_length.csv",
        *expand(f"{RESULTS}/figures/training_length.{{ext}}", ext=["png", "svg"]),
    ]


def flag_if(condition, flag):
    """``flag`` when ``condition`` holds, else nothing (for boolean CLI switches)."""
    return flag if condition else ""


def dataset_source_args():
    """CLI arguments that tell `featnorm manifest` where the images come from."""
    dataset = config["dataset"]
    fmt = dataset["format"]
    if fmt == "demo":
        demo = json.dumps(dataset["demo"], sort_keys=True)
        return f"--demo '{demo}' --demo-dir {RESULTS}/demo/images"
    if fmt == "list":
        return f"--list {shlex.quote(dataset['list'])}"
    return f"--root {shlex.quote(dataset['root'])}"


def embed_flags():
    """Boolean switches of the embed step."""
    embed = config["embed"]
    return " ".join(
        filter(
            None,
            [
                flag_if(embed["save_embeddings"], "--save-embeddings"),
                flag_if(embed["trust_legacy_checkpoints"], "--trust-legacy-checkpoint"),
            ],
        )
    )


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
    comparison = expand(
        f"{RESULTS}/figures/comparison_forest.{{ext}}", ext=["png", "svg"]
    )
    return per_model + figures + tables + comparison


def final_outputs():
    return [
        manifest_table(),
        *brisque_tables(),
        *all_embed_tables(),
        *analysis_targets(),
        *training_length_targets(),
    ]


wildcard_constraints:
    k=r"\d+",
    model="|".join(map(re.escape, model_names())),
