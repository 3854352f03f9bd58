"""``python -m featnorm pairs | edc | plot-edc``: the evaluation steps (comparison pairs, EDC).

Registered in :mod:`featnorm.cli.steps` like the other ``featnorm.cli_*`` steps, whose conventions
they follow: parse, log, read, call one package function, write atomically.
"""

from __future__ import annotations

import argparse
import logging

from featnorm import options
from featnorm.cli.steps import save_figure, step

logger = logging.getLogger("featnorm")


def _pairs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True, help="samples.parquet of the model")
    p.add_argument(
        "--embed",
        nargs="+",
        required=True,
        help="the model's embedding shards (with the embedding column)",
    )
    p.add_argument("--max-genuine-per-class", type=int, required=True)
    p.add_argument("--impostor-pairs", type=int, required=True, help="per stratum")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True, help="pairs.parquet")


@step("pairs", _pairs_args)
def run_pairs(args: argparse.Namespace) -> None:
    """Genuine and impostor comparison pairs with their cosine scores (pairs.parquet)."""
    import tempfile

    import pyarrow.parquet as pq

    from featnorm import tableio
    from featnorm.evaluation import pairs
    from featnorm.status import OK

    columns = ["sample_id", "label", "status"]
    schema = pq.read_schema(args.samples)
    samples = tableio.read_table(
        args.samples, columns=columns + (["split"] if "split" in schema.names else [])
    )
    ok = samples["status"] == OK
    logger.info(
        "pairs: %d of %d images have status ok; %d excluded: %s",
        int(ok.sum()),
        len(samples),
        int((~ok).sum()),
        samples.loc[~ok, "status"].value_counts().to_dict(),
    )
    eligible = samples[ok].reset_index(drop=True)
    # the matrix is memory-mapped in the job's temporary folder ($TMPDIR: node-local on SLURM)
    with tempfile.TemporaryDirectory(prefix="featnorm-pairs-") as scratch:
        emb = pairs.read_embeddings(args.embed, eligible["sample_id"].to_numpy(), scratch=scratch)
        logger.info("embeddings: %d x %d float16 (%.0f MB)", *emb.shape, emb.nbytes / 2**20)
        table = pairs.pairs_table(
            eligible,
            emb,
            max_genuine_per_class=args.max_genuine_per_class,
            impostor_pairs_per_stratum=args.impostor_pairs,
            seed=args.seed,
        )
        del emb  # unmap before the folder goes
    params = {
        "step": "pairs",
        "max_genuine_per_class": args.max_genuine_per_class,
        "impostor_pairs_per_stratum": args.impostor_pairs,
        "seed": args.seed,
        "images_ok": int(ok.sum()),
        "images_excluded": int((~ok).sum()),
        "score": "cosine similarity of the stored float16 embeddings, in float32",
        "counts": {
            f"{split}:{'genuine' if gen else 'impostor'}": int(n)
            for (split, gen), n in table.groupby(["split", "genuine"]).size().items()
        },
    }
    tableio.write_table(table, args.output, params=params, schema=pairs.output_schema())
    logger.info("pairs: %s -> %s", params["counts"], args.output)


def _edc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--model", required=True)
    p.add_argument(
        "--policies",
        nargs="*",
        required=True,
        choices=options.STANDARDISATION_POLICIES,
        help="standardisation policies",
    )
    p.add_argument("--fmrs", nargs="+", type=float, required=True)
    p.add_argument("--discard-limits", nargs="+", type=float, required=True)
    p.add_argument("--discard-step", type=float, required=True)
    p.add_argument("--replicates", type=int, required=True)
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True, help="edc.csv")
    p.add_argument("--curves", required=True, help="edc_curve.csv")


@step("edc", _edc_args)
def run_edc(args: argparse.Namespace) -> None:
    """Error-versus-discard characteristic and pAUC of every quality proxy (edc.csv)."""
    import pyarrow.parquet as pq

    from featnorm import tableio
    from featnorm.analysis.columns import edc_proxy_columns, norm_columns
    from featnorm.evaluation import edc_tables

    available = pq.read_schema(args.samples).names
    proxies = edc_proxy_columns(available, norm_columns(args.policies))
    samples = tableio.read_table(args.samples, columns=["sample_id", "label", *proxies])
    logger.info("EDC proxies: %s", proxies)
    settings = edc_tables.EdcSettings(
        fmrs=args.fmrs,
        limits=args.discard_limits,
        step=args.discard_step,
        replicates=args.replicates,
        confidence=args.confidence,
        seed=args.seed,
    )
    result = edc_tables.evaluate(
        samples,
        tableio.read_table(args.pairs),
        model=args.model,
        proxies=proxies,
        settings=settings,
    )
    tableio.write_text(result.table.to_csv(index=False), args.output)
    tableio.write_text(result.curves.to_csv(index=False), args.curves)


def _plot_edc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edc", required=True, help="edc.csv")
    p.add_argument("--curves", required=True, help="edc_curve.csv")
    p.add_argument("--model", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--svg", required=True)


@step("plot-edc", _plot_edc_args)
def run_plot_edc(args: argparse.Namespace) -> None:
    """EDC curves of one model, one panel per (split, fmr) (PNG and SVG)."""
    from featnorm import tableio
    from featnorm.report import edc_plots

    fig = edc_plots.edc_curves(
        tableio.read_csv(args.edc), tableio.read_csv(args.curves), model=args.model
    )
    save_figure(fig, args.png, args.svg)
