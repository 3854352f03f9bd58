"""The allowed values of every enumerated option: the one home of each list.

The config schema (``workflow/schemas/config.schema.yaml``), the ``python -m featnorm`` argument
parser (``choices=``), the workflow and the modules that check their arguments all take their
values from here; tests/unit/test_options.py checks that every ``enum`` of the schema equals its
constant. Plain data, free of torch, OpenCV and matplotlib: planning (``snakemake -n``) and
argument parsing import it.
"""

from __future__ import annotations

__all__ = [
    "BRISQUE_PRECISIONS",
    "CORRELATION_METHODS",
    "DATASET_FORMATS",
    "DDOFS",
    "DEMO_IMAGE_FORMATS",
    "EMBED_DEVICES",
    "EMBED_PRECISIONS",
    "FIGURES",
    "FIGURE_INPUTS",
    "FIGURES_WITH_POLICIES",
    "FLIP_FUSIONS",
    "GROUND_TRUTH_FIGURES",
    "REFERENCE_FIGURES",
    "MODEL_FAMILIES",
    "NORM_WEIGHTED_AVG",
    "NO_FLIP",
    "PRE_NORM_VECTOR_ADD",
    "STANDARDISATION_POLICIES",
    "TRAIN_PRECISIONS",
    "table_flag",
]

#: dataset.format: the embedded demo, root/<class>/<image>, a path,label list, insightface RecordIO.
DATASET_FORMATS = ("demo", "imagefolder", "list", "recordio")
#: dataset.demo.image_format: file format of the generated demo images.
DEMO_IMAGE_FORMATS = ("jpg", "png")
#: models.<name>.family: decides the architecture table, preprocessing and checkpoint layout.
MODEL_FAMILIES = ("adaface", "magface")
#: train.precision (and models.<name>.train.precision); see featnorm.embedding.train.resolve_precision.
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")
#: embed.device: auto = CUDA when present, else CPU.
EMBED_DEVICES = ("auto", "cpu", "cuda")
#: embed.precision: bf16/fp16 are CUDA autocast.
EMBED_PRECISIONS = ("fp32", "bf16", "fp16")

NO_FLIP = "none"
PRE_NORM_VECTOR_ADD = "pre_norm_vector_add"
NORM_WEIGHTED_AVG = "norm_weighted_avg"
#: embed.flip_fusion: rule -> what the fused norm is (written into the embedding metadata).
FLIP_FUSIONS: dict[str, str] = {
    NO_FLIP: "single view: the norm of the unflipped image",
    PRE_NORM_VECTOR_ADD: "norm of (feature + flipped feature), un-normalised features; ~2x the "
    "single-view norm",
    NORM_WEIGHTED_AVG: "mean of the two views' norms; embedding = norm-weighted average, "
    "re-normalised",
}

#: brisque.precision: arithmetic of the local mean and variance (see featnorm.quality.brisque.mscn).
BRISQUE_PRECISIONS = ("float32", "float64")
#: analysis.ddof: delta degrees of freedom of the per-class std in the z-score.
DDOFS = (0, 1)
#: analysis.policies: standardisation policy -> suffix of its column feature_norm_<policy>.
STANDARDISATION_POLICIES = ("z", "shrinkage_z", "rank", "residual")
#: analysis.methods: correlation coefficients.
CORRELATION_METHODS = ("pearson", "spearman", "kendall")

#: per-model figure -> the tables it is drawn from (results/<model>/<table>.parquet or .csv), in
#: the order the plotting function takes them. The workflow's figure rules take their inputs from
#: here and `python -m featnorm plot` reads them by these names.
FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "class_sizes": ("class_stats",),
    "class_norm_mean": ("class_stats",),
    "norm_vs_brisque": ("samples", "correlations"),
    "trends": ("samples",),
    "forest": ("correlations",),
    "two_levels": ("samples", "decomposition"),
    "by_class_size": ("by_class_size",),
    "ground_truth": ("samples",),
    "references": ("samples", "correlations"),
}
#: per-model figure names (results/<model>/figures/<name>.png), in the workflow's order.
FIGURES = tuple(FIGURE_INPUTS)
#: figures that draw one panel per norm column, so they need the standardisation policies.
FIGURES_WITH_POLICIES = ("norm_vs_brisque", "trends", "ground_truth", "references")
#: figures that need the demo's ground-truth quality (drawn on the demo dataset only).
GROUND_TRUTH_FIGURES = ("ground_truth",)
#: figures of the face-quality references (drawn when references.enabled).
REFERENCE_FIGURES = ("references",)


def table_flag(table: str) -> str:
    """The `python -m featnorm plot` flag that names the file of ``table`` (``--class-stats``)."""
    return "--" + table.replace("_", "-")
