# featnorm: is the face-embedding feature norm image quality, or class familiarity?
# This file only wires: configuration, includes, and the target rules.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/shard.smk"
include: "workflow/rules/brisque.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/evaluation.smk"


# The target rules below run no command: never a cluster job (every other rule is sized or grouped
# in profiles/slurm; tests/workflow/test_slurm.py checks both lists against --list-rules).
localrules:
    all,
    manifest,
    brisque_all,
    embed_all,
    analysis_all,
    evaluation_all,


rule all:
    default_target: True
    input:
        final_outputs(),


rule manifest:
    input:
        manifest_table(),


rule brisque_all:
    input:
        brisque_tables(),


rule embed_all:
    input:
        all_embed_tables(),


rule analysis_all:
    input:
        analysis_targets(),


rule evaluation_all:
    input:
        evaluation_targets(),
