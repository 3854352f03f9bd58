"""The real `snakemake` on the tiny demo config (tests/workflow/tiny): contracts, row counts,
re-run behaviour, lint and refusal of bad configurations."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.snakemake_cli import run_snakemake

from featnorm import tableio

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "workflow" / "tiny" / "config.yaml"

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, config: Path | None = None, check: bool = True):
    """Run the real snakemake CLI in ``workdir`` (config: ``workdir/config.yaml`` by default)."""
    return run_snakemake(workdir, config or workdir / "config.yaml", *args, check=check)


def planned_jobs(workdir: Path, config: Path | None = None) -> dict[str, int]:
    """Rule -> job count that a dry run would execute (empty when nothing is to be done)."""
    result = snakemake(workdir, "--dry-run", config=config)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def write_config(path: Path, **changes) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def finished_run(tiny_run: Path) -> Path:
    """The session's finished run of the tiny demo (tests/conftest.py): plan in it, never run."""
    return tiny_run


def test_outputs_follow_the_contracts(finished_run: Path):
    """Every contract file exists with its columns; per-image tables keep every manifest row."""
    results = finished_run / "results"
    manifest = tableio.read_table(results / "manifest.parquet")
    assert {"sample_id", "path", "label", "class_name", "true_quality"} <= set(manifest.columns)
    assert manifest["sample_id"].tolist() == list(range(len(manifest)))

    shards = [tableio.read_table(p) for p in sorted((results / "shards").glob("shard-*.parquet"))]
    brisque = pd.concat(
        [tableio.read_table(p) for p in sorted((results / "brisque").glob("shard-*.parquet"))]
    )
    embed = pd.concat(
        [
            tableio.read_table(p)
            for p in sorted((results / "embed" / "demo").glob("shard-*.parquet"))
        ]
    )
    assert len(shards) == 2
    for table in (pd.concat(shards), brisque, embed):
        assert sorted(table["sample_id"]) == manifest["sample_id"].tolist()
    assert {"brisque", "status"} <= set(brisque.columns) and brisque["brisque"].dtype == "float64"
    assert {"feature_norm", "status"} <= set(embed.columns) and embed[
        "feature_norm"
    ].dtype == "float32"
    assert (embed["status"] == "ok").all() and (embed["feature_norm"] > 0).all()

    samples = tableio.read_table(results / "demo" / "samples.parquet")
    assert len(samples) == len(manifest)
    assert {"brisque", "feature_norm", "feature_norm_z"} <= set(samples.columns)
    stats = tableio.read_table(results / "demo" / "class_stats.parquet")
    assert {"label", "n", "norm_mean", "norm_std", "brisque_mean", "brisque_std"} <= set(
        stats.columns
    )
    # class sizes count training images; the held-out images (split holdout) are the rest
    assert stats["n"].sum() == (manifest["split"] == "train").sum() < len(manifest)
    corr = pd.read_csv(results / "demo" / "correlations.csv")
    assert {"model", "x", "y", "method", "n", "r", "ci_low", "ci_high", "p_value"} <= set(
        corr.columns
    )
    assert {"p_value_iid", "p_value_wald", "p_holm"} <= set(corr.columns)
    diff = pd.read_csv(results / "demo" / "differences.csv")
    assert {
        "model",
        "x",
        "reference",
        "y",
        "method",
        "n",
        "n_classes",
        "delta",
        "ci_low",
        "ci_high",
        "p_value",
        "replicates",
        "quality_aligned_delta",
    } <= set(diff.columns)
    assert (diff["reference"] == "feature_norm").all() and "feature_norm_z" in set(diff["x"])
    dec = pd.read_csv(results / "demo" / "decomposition.csv")
    assert {
        "r_total",
        "r_within",
        "r_between",
        "between_share_x",
        "between_share_y",
        "r_within_ci_low",
        "r_between_ci_high",
    } <= set(dec.columns)
    bands = pd.read_csv(results / "demo" / "by_class_size.csv")
    assert {
        "model",
        "x",
        "y",
        "method",
        "size_low",
        "size_high",
        "n",
        "n_classes",
        "r",
        "ci_low",
        "ci_high",
    } <= set(bands.columns)
    for figure in ("class_sizes.png", "class_norm_mean.png", "two_levels.png", "by_class_size.png"):
        assert (results / "demo" / "figures" / figure).stat().st_size > 0
    assert "feature norm" in (results / "summary.md").read_text().lower()


def test_provenance_metadata_is_recorded(finished_run: Path):
    """Tables carry the featnorm version and the parameters that made them."""
    meta = tableio.read_metadata(finished_run / "results" / "manifest.parquet")
    assert meta["format"] == "demo" and meta["demo"]["seed"] == 1 and "featnorm_version" in meta


def test_second_run_does_nothing(finished_run: Path):
    assert planned_jobs(finished_run) == {}


def test_analysis_change_reruns_only_analysis(finished_run: Path, tmp_path: Path):
    config = write_config(tmp_path / "config.yaml", **{"analysis.min_class_size": 3})
    jobs = planned_jobs(finished_run, config)
    assert jobs, "changing an analysis parameter must re-run the analysis"
    upstream = {"make_manifest", "make_shards", "score_brisque", "train_demo_model", "embed_shard"}
    assert not upstream & set(jobs), jobs


def test_brisque_change_reruns_no_embedding(finished_run: Path, tmp_path: Path):
    config = write_config(tmp_path / "config.yaml", **{"brisque.save_features": True})
    jobs = planned_jobs(finished_run, config)
    assert jobs.get("score_brisque") == 2
    assert not {"embed_shard", "train_demo_model", "make_manifest"} & set(jobs), jobs


def test_second_model_reruns_no_brisque(finished_run: Path, tmp_path: Path):
    models = {
        "demo": {"arch": "ir_demo", "checkpoint": "train"},
        "demo_b": {"arch": "ir_demo", "checkpoint": "train"},
    }
    config = write_config(tmp_path / "config.yaml", models=models)
    jobs = planned_jobs(finished_run, config)
    assert jobs.get("embed_shard") == 2 and jobs.get("train_demo_model") == 1
    assert "score_brisque" not in jobs and "make_manifest" not in jobs, jobs


def test_lint_reports_nothing(tmp_path: Path):
    shutil.copy(TINY_CONFIG, tmp_path / "config.yaml")
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset.colour": "red"}, r"colour"),
        ({"shards": "four"}, r"shards|four"),
        ({"dataset.format": "imagefolder", "dataset.root": "/no/such/folder"}, r"dataset\.root"),
        (
            {"models": {"demo": {"arch": "ir_51", "checkpoint": "train"}}},
            r"models\.demo\.arch.*ir_51",
        ),
        ({"shards": 5000}, r"shards = 5000"),
        ({"references.sdd.similarities": 0}, r"similarities"),
        ({"references.sdd": {"m": 24}}, r"\bm\b"),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path: Path, changes: dict, message: str):
    config = write_config(tmp_path / "config.yaml", **changes)
    result = snakemake(tmp_path, "--dry-run", config=config, check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_html_report_contains_every_figure_and_table(finished_run: Path):
    """`snakemake --report` after a run: one self-contained HTML with every figure and table."""
    report = finished_run / "report.html"
    snakemake(finished_run, "--report", str(report))
    html = report.read_text(errors="replace")
    results = finished_run / "results"
    figures = sorted(p.name for p in results.rglob("*.png"))
    assert {
        "class_sizes.png",
        "class_norm_mean.png",
        "norm_vs_brisque.png",
        "two_levels.png",
        "by_class_size.png",
    } <= set(figures)
    for name in [
        *figures,
        "correlations.csv",
        "table1.md",
        "summary.md",
        "differences.csv",
        "decomposition.csv",
        "by_class_size.csv",
    ]:
        assert name in html, f"{name} is missing from the report"


@pytest.mark.parametrize(
    ("key", "value", "pairs_rerun"),
    [
        ("evaluation.impostor_pairs", 300, True),
        ("evaluation.fmrs", [0.05], False),
        ("evaluation.bootstrap_replicates", 20, False),
    ],
)
def test_evaluation_change_reruns_no_brisque_or_embedding(
    finished_run: Path, tmp_path: Path, key: str, value, pairs_rerun: bool
):
    config = write_config(tmp_path / "config.yaml", **{key: value})
    jobs = planned_jobs(finished_run, config)
    assert jobs.get("compute_edc") == 1 and ("draw_pairs" in jobs) == pairs_rerun, jobs
    upstream = {
        "make_manifest",
        "make_shards",
        "score_brisque",
        "train_demo_model",
        "embed_shard",
        "merge_samples",
        "correlate",
    }
    assert not upstream & set(jobs), jobs


def test_edc_outputs_follow_the_contract(finished_run: Path):
    """Embeddings stored, pairs within/between identities as labelled, one EDC row per
    (split, quality, fmr, limit) including the references."""
    results = finished_run / "results"
    embed = tableio.read_table(next((results / "embed" / "demo").glob("shard-*.parquet")))
    assert "embedding" in embed.columns and len(embed["embedding"].iloc[0]) == 512
    samples = tableio.read_table(results / "demo" / "samples.parquet")
    label = dict(zip(samples["sample_id"], samples["label"], strict=True))
    pairs = tableio.read_table(results / "demo" / "pairs.parquet")
    assert list(pairs.columns) == ["sample_id_a", "sample_id_b", "score", "genuine", "split"]
    same = pairs["sample_id_a"].map(label) == pairs["sample_id_b"].map(label)
    assert (same == pairs["genuine"]).all() and pairs["genuine"].any() and (~pairs["genuine"]).any()
    edc = pd.read_csv(results / "demo" / "edc.csv")
    expected = {"feature_norm", "feature_norm_z", "brisque", "true_quality", "random", "ideal"}
    assert expected <= set(edc["quality"])
    assert len(edc) == edc.groupby(["split", "quality", "fmr", "discard_limit"]).ngroups
    assert {
        "model",
        "threshold",
        "pauc",
        "ci_low",
        "ci_high",
        "n_genuine",
        "n_impostor",
        "fnmr_at_0",
    } <= set(edc.columns)
    assert (results / "demo" / "figures" / "edc.png").stat().st_size > 0
    comparison = pd.read_csv(results / "comparison.csv")
    assert (comparison["y"] == "FNMR pAUC").any()
    assert "Quality utility" in (results / "summary.md").read_text()


def test_edc_off_runs_no_evaluation(tmp_path: Path):
    changes = {"evaluation.edc": False, "references.enabled": False}
    config = write_config(tmp_path / "config.yaml", **changes)
    jobs = planned_jobs(tmp_path, config)
    assert jobs.get("embed_shard") == 2
    assert not {"draw_pairs", "compute_edc", "plot_edc"} & set(jobs), jobs
    text = snakemake(tmp_path, "--dry-run", "--printshellcmds", config=config).stdout
    assert "--save-embeddings" not in text


def test_references_follow_the_contract(finished_run: Path):
    """references.parquet: one row per manifest image; samples.parquet carries the three
    references (the demo model's head matches its labels); every correlation table has rows
    for each; they are no EDC proxy; edc.csv has gap_closed."""
    results = finished_run / "results"
    manifest = tableio.read_table(results / "manifest.parquet")
    refs = tableio.read_table(results / "demo" / "references.parquet")
    assert refs["sample_id"].tolist() == manifest["sample_id"].tolist()
    assert set(refs["status"]) <= {"ok", "single_image_class"}
    names = ["centre_similarity", "sdd_quality", "certainty_ratio"]
    samples = tableio.read_table(results / "demo" / "samples.parquet")
    assert set(names) <= set(samples.columns) and "references_status" in samples.columns
    assert samples["certainty_ratio"].notna().all()
    for table in ("correlations", "differences", "decomposition", "by_class_size"):
        ys = set(pd.read_csv(results / "demo" / f"{table}.csv")["y"])
        assert set(names) <= ys, (table, ys)
    assert set(names) <= set(pd.read_csv(results / "comparison.csv")["y"])
    edc = pd.read_csv(results / "demo" / "edc.csv")
    assert not set(names) & set(edc["quality"])
    assert "gap_closed" in edc.columns
    assert (results / "demo" / "figures" / "references.png").stat().st_size > 0
    assert "face-quality references" in (results / "summary.md").read_text()


def test_references_change_reruns_them_and_what_reads_samples_only(
    finished_run: Path, tmp_path: Path
):
    config = write_config(tmp_path / "config.yaml", **{"references.sdd.seed": 7})
    jobs = planned_jobs(finished_run, config)
    assert jobs.get("compute_references") == 1 and jobs.get("merge_samples") == 1, jobs
    upstream = {"make_manifest", "make_shards", "score_brisque", "train_demo_model", "embed_shard"}
    assert not upstream & set(jobs), jobs


def test_references_off_runs_no_references_step(tmp_path: Path):
    config = write_config(tmp_path / "config.yaml", **{"references.enabled": False})
    jobs = planned_jobs(tmp_path, config)
    assert "compute_references" not in jobs and "plot_references" not in jobs, jobs
    text = snakemake(tmp_path, "--dry-run", "--printshellcmds", config=config).stdout
    assert "--references" not in text


def test_certainty_ratio_off_reads_no_checkpoint(tmp_path: Path):
    config = write_config(tmp_path / "config.yaml", **{"references.certainty_ratio": False})
    text = snakemake(tmp_path, "--dry-run", "--printshellcmds", config=config).stdout
    step = next(ln for ln in text.splitlines() if "featnorm references" in ln)
    assert "--checkpoint" not in step
