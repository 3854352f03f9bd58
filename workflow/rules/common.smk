# Setup and every workflow helper: validation, wildcard constraints, path functions.
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# The workflow runs the featnorm package of its own checkout: here, to check the config while
# Snakemake parses (torch- and OpenCV-free: planning needs Snakemake and NumPy only),
# and in every job through PYTHONPATH. The conda envs in envs/ therefore list third-party
# packages only: Snakemake copies an env file under .snakemake/conda/ before creating it, so the
# file cannot install this checkout by a path relative to itself.
FEATNORM_SRC = str(Path(workflow.basedir) / "src")
if FEATNORM_SRC not in sys.path:
    sys.path.insert(0, FEATNORM_SRC)
# Each job runs `$FEATNORM_PYTHON -m featnorm`, with the interpreter running Snakemake, so that
# a venv's snakemake called by path, without activation, needs no `python` on PATH (SLURM jobs
# start Snakemake with the same interpreter). Under --sdm conda: the env's python, first on PATH.
FEATNORM_PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else sys.executable
)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(FEATNORM_SRC)}"
    "${{PYTHONPATH:+:$PYTHONPATH}}; "
    f"FEATNORM_PYTHON={shlex.quote(FEATNORM_PYTHON)}; "
)

from featnorm import options

from featnorm.config import checks

validate(config, schema="../schemas/config.schema.yaml", set_default=True)
# Outputs go under results/ of the working directory; use `snakemake --directory` to move them.
RESULTS = "results"
FIGURE_FORMATS = ["png", "svg"]  # every figure is written in both
checks.check(config, results=RESULTS)


def model_names():
    """Configured model names, in config order."""
    return list(config["models"])


def shard_ids():
    """Shard indices 0..shards-1."""
    return list(range(config["shards"]))


# Per-model tables: name (as the steps and featnorm.options.FIGURE_INPUTS call them) -> file
# under results/<model>/.
MODEL_TABLES = {
    "samples": "samples.parquet",
    "class_stats": "class_stats.parquet",
    "correlations": "correlations.csv",
    "differences": "differences.csv",
    "decomposition": "decomposition.csv",
    "by_class_size": "by_class_size.csv",
    "references": "references.parquet",
    "pairs": "pairs.parquet",
    "edc": "edc.csv",
    "edc_curve": "edc_curve.csv",
}


def model_table(name, model="{model}"):
    """Table ``name`` of one model: of the {model} wildcard unless ``model`` is given."""
    return f"{RESULTS}/{model}/{MODEL_TABLES[name]}"


def model_tables(name, models=None):
    """Table ``name`` of each of ``models`` (default: every configured model), in order."""
    return [
        model_table(name, model)
        for model in (model_names() if models is None else models)
    ]


def model_figure(figure, ext, model="{model}"):
    """A per-model figure file (ext png or svg), of the {model} wildcard unless given."""
    return f"{RESULTS}/{model}/figures/{figure}.{ext}"


def trained_checkpoint(model="{model}"):
    """The checkpoint that train_demo_model writes for a model whose checkpoint is `train`."""
    return f"{RESULTS}/models/{model}/checkpoint.ckpt"


def training_curve(model="{model}"):
    """The per-epoch training curve of a trained model."""
    return f"{RESULTS}/models/{model}/training_curve.csv"


def embed_table(model="{model}", k="{k}"):
    """The embedding table of one model and shard (the {model} and {k} wildcards by default)."""
    return f"{RESULTS}/embed/{model}/shard-{k}.parquet"


def study_file(name):
    """An output of the whole study (all models): results/<name>."""
    return f"{RESULTS}/{name}"


def study_figure(figure, ext):
    """A figure of the whole study (all models), ext png or svg."""
    return f"{RESULTS}/figures/{figure}.{ext}"


def manifest_table():
    return study_file("manifest.parquet")


def shard_table(k="{k}"):
    """One shard of the manifest (the {k} wildcard unless ``k`` is given)."""
    return f"{RESULTS}/shards/shard-{k}.parquet"


def brisque_table(k="{k}"):
    """The BRISQUE table of one shard (the {k} wildcard unless ``k`` is given)."""
    return f"{RESULTS}/brisque/shard-{k}.parquet"


def shard_tables():
    return [shard_table(k) for k in shard_ids()]


def brisque_tables():
    return [brisque_table(k) for k in shard_ids()]


def embed_tables(wildcards):
    """Embedding shard tables of one model (wildcards.model)."""
    return [embed_table(wildcards.model, k) for k in shard_ids()]


def all_embed_tables():
    return [embed_table(model, k) for model in model_names() for k in shard_ids()]


def model_setting(wildcards, key):
    """One setting of model wildcards.model, with the schema's defaults applied."""
    return checks.model_settings(config, wildcards.model)[key]


def model_family(wildcards):
    return model_setting(wildcards, "family")


def model_arch(wildcards):
    return model_setting(wildcards, "arch")


def model_checkpoint(wildcards):
    """The checkpoint file: the user's, or the demo model trained by train_demo_model."""
    path = model_setting(wildcards, "checkpoint")
    if path == checks.TRAIN_CHECKPOINT:
        return trained_checkpoint(wildcards.model)
    return path


def train_setting(wildcards, key):
    """One training setting of demo model wildcards.model (its `train` block over `train:`)."""
    return checks.train_settings(config, wildcards.model)[key]


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


def train_augment_prob(wildcards):
    return train_setting(wildcards, "augment_prob")


def trained_models():
    """Models whose checkpoint is `train` (the demo model and its variants), in config order."""
    return [
        name
        for name in model_names()
        if checks.model_settings(config, name)["checkpoint"] == checks.TRAIN_CHECKPOINT
    ]


def trained_model_epochs():
    return [checks.train_settings(config, name)["epochs"] for name in trained_models()]


def trained_model_curves():
    """The training curve of each trained model, in config order."""
    return [training_curve(model) for model in trained_models()]


def training_length_method():
    """Spearman (rank agreement) when the analysis computes it, else the first method."""
    methods = config["analysis"]["methods"]
    return "spearman" if "spearman" in methods else methods[0]


def training_length_targets():
    """The training-length table and figure, when models are trained here for two or more
    different lengths (models that differ only in seed have no length axis)."""
    if len(set(trained_model_epochs())) < 2:
        return []
    return [
        study_file("training_length.csv"),
        *[study_figure("training_length", ext) for ext in FIGURE_FORMATS],
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
                flag_if(saves_embeddings(), "--save-embeddings"),
                flag_if(embed["trust_legacy_checkpoints"], "--trust-legacy-checkpoint"),
            ],
        )
    )


def edc_enabled():
    """The EDC runs (evaluation.edc): it needs the embeddings in the embedding tables."""
    return config["evaluation"]["edc"]


def saves_embeddings():
    """embed.save_embeddings, or implied by evaluation.edc or references.enabled."""
    return config["embed"]["save_embeddings"] or edc_enabled() or references_enabled()


def references_enabled():
    """The face-quality references run (references.enabled): they read the stored embeddings."""
    return config["references"]["enabled"]


def references_inputs(wildcards):
    """Inputs of compute_references: the manifest, the model's embedding shards and, when
    references.certainty_ratio is on, its checkpoint (for the margin head)."""
    inputs = {"manifest": manifest_table(), "embed": embed_tables(wildcards)}
    if config["references"]["certainty_ratio"]:
        inputs["checkpoint"] = model_checkpoint(wildcards)
    return inputs


def references_head_args(wildcards, input):
    """`featnorm references` flags that hand it the checkpoint's head (none when
    references.certainty_ratio is off)."""
    if "checkpoint" not in input.keys():
        return ""
    trust = flag_if(
        config["embed"]["trust_legacy_checkpoints"], " --trust-legacy-checkpoint"
    )
    return f"--checkpoint {shlex.quote(input.checkpoint)}{trust}"


def references_tables(wildcards):
    """The model's references table as an input of merge_samples, or nothing when off."""
    return [model_table("references", wildcards.model)] if references_enabled() else []


def references_option(wildcards, input):
    """`featnorm merge --references <table>`, or nothing when the references are off."""
    return edc_option("--references", list(input.references))


def evaluation_list(key):
    """A list-valued evaluation setting, space-separated for the CLI."""
    return " ".join(str(v) for v in config["evaluation"][key])


def edc_tables():
    """Every model's edc.csv, or nothing when the EDC is off."""
    if not edc_enabled():
        return []
    return model_tables("edc")


def edc_option(option, paths):
    """``option path ...`` for the CLI, or nothing when ``paths`` is empty (EDC off)."""
    return f"{option} {' '.join(map(shlex.quote, paths))}" if paths else ""


def evaluation_targets():
    """Pairs, EDC tables and figures of every model (nothing when the EDC is off)."""
    if not edc_enabled():
        return []
    names = ["pairs", "edc", "edc_curve"]
    tables = [model_table(name, m) for m in model_names() for name in names]
    figures = [
        model_figure("edc", ext, m) for m in model_names() for ext in FIGURE_FORMATS
    ]
    return tables + figures


def analysis_policies():
    """Standardisation policies, space-separated for the CLI."""
    return " ".join(config["analysis"]["policies"])


def analysis_methods():
    """Correlation methods, space-separated for the CLI."""
    return " ".join(config["analysis"]["methods"])


def analysis_size_bins():
    """Lower edges of the class-size bands, space-separated for the CLI (checked here, so a
    bad list is refused before any job runs)."""
    edges = checks.check_size_bins(config["analysis"]["size_bins"])
    return " ".join(str(edge) for edge in edges)


def has_ground_truth():
    """Only the demo dataset carries ground-truth quality columns."""
    return config["dataset"]["format"] == "demo"


def model_figure_names():
    """Per-model figure names (results/{model}/figures/<name>.png)."""
    return [
        name
        for name in options.FIGURES
        if (has_ground_truth() or name not in options.GROUND_TRUTH_FIGURES)
        and (references_enabled() or name not in options.REFERENCE_FIGURES)
    ]


def figure_inputs(figure):
    """The tables one model's ``figure`` is drawn from, by name (featnorm.options.FIGURE_INPUTS)."""
    return {name: model_table(name) for name in options.FIGURE_INPUTS[figure]}


def figure_args(figure):
    """Params function: `featnorm plot` flags naming the input tables of ``figure`` (one per
    table, --<name>), and the policies when it draws one panel per norm column."""

    def args(wildcards, input):
        flags = [
            f"{options.table_flag(name)} {shlex.quote(getattr(input, name))}"
            for name in options.FIGURE_INPUTS[figure]
        ]
        if figure in options.FIGURES_WITH_POLICIES:
            flags.append(f"--policies {analysis_policies()}")
        return " ".join(flags)

    return args


def analysis_targets():
    """Every final output of the analysis, for all configured models."""
    names = ["samples", "class_stats", "correlations"]
    names += ["differences", "decomposition", "by_class_size"]
    names += ["references"] if references_enabled() else []
    per_model = [model_table(name, m) for m in model_names() for name in names]
    figures = [
        model_figure(figure, ext, m)
        for m in model_names()
        for figure in model_figure_names()
        for ext in FIGURE_FORMATS
    ]
    tables = [
        study_file(name)
        for name in ["table1.md", "table1.csv", "comparison.csv", "summary.md"]
    ]
    comparison = [study_figure("comparison_forest", ext) for ext in FIGURE_FORMATS]
    return per_model + figures + tables + comparison


def final_outputs():
    return [
        manifest_table(),
        *brisque_tables(),
        *all_embed_tables(),
        *analysis_targets(),
        *evaluation_targets(),
        *training_length_targets(),
    ]


wildcard_constraints:
    k=r"\d+",
    model="|".join(map(re.escape, model_names())),
