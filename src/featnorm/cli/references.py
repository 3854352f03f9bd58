"""``python -m featnorm references``: the face-quality references of one model's images from its
stored embeddings (and the margin head of its checkpoint).

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import logging

from featnorm.cli.steps import step

logger = logging.getLogger("featnorm")

# why certainty_ratio is absent when the config turns it off
_TURNED_OFF = "turned off (references.certainty_ratio: false)"


def _references_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--embed", nargs="+", required=True, help="all embedding shards of the model")
    p.add_argument("--model", required=True)
    p.add_argument("--sdd-similarities", type=int, required=True, help="SDD-FIQA's m")
    p.add_argument("--sdd-resamplings", type=int, required=True, help="SDD-FIQA's k")
    p.add_argument("--sdd-seed", type=int, required=True)
    p.add_argument(
        "--checkpoint",
        help="the model's checkpoint: certainty_ratio from its margin head (left out: no "
        "certainty_ratio)",
    )
    p.add_argument(
        "--trust-legacy-checkpoint",
        action="store_true",
        help="allow a full unpickle of a trusted checkpoint that pickles custom classes",
    )
    p.add_argument("--threads", type=int, required=True, help="BLAS threads of this job")
    p.add_argument("--output", required=True, help="references.parquet")


def _read_samples(manifest_path: str, embed_paths: list[str]):
    """One row per manifest image: sample_id, label, embed_status (``missing`` when no shard
    has the image)."""
    import pandas as pd

    from featnorm import tableio
    from featnorm.status import MISSING

    manifest = tableio.read_table(manifest_path, columns=["sample_id", "label"])
    status = pd.concat(
        [tableio.read_table(p, columns=["sample_id", "status"]) for p in embed_paths],
        ignore_index=True,
    ).rename(columns={"status": "embed_status"})
    extra = ~status["sample_id"].isin(manifest["sample_id"])
    if extra.any():
        raise ValueError(
            f"the embedding shards have {int(extra.sum())} sample_id(s) not in the manifest: "
            "they were made from another manifest; re-run the embed step"
        )
    samples = manifest.merge(status, on="sample_id", how="left", validate="one_to_one")
    samples["embed_status"] = samples["embed_status"].fillna(MISSING)
    return samples


def _head(args: argparse.Namespace, labels) -> tuple:
    """(kernel or None, why certainty_ratio is absent or None)."""
    from featnorm.quality import head, references

    if args.checkpoint is None:
        return None, _TURNED_OFF
    kernel, reason = head.read_head_kernel(
        args.checkpoint, trust_legacy_pickle=args.trust_legacy_checkpoint
    )
    if kernel is not None:
        reason = references.head_mismatch(kernel.shape[1], labels)
    return (kernel, None) if reason is None else (None, reason)


@step("references", _references_args)
def run_references(args: argparse.Namespace) -> None:
    """Class-centre similarity, SDD-FIQA and CR-FIQA certainty ratio of every image."""
    from featnorm import tableio, threads
    from featnorm.evaluation import pairs
    from featnorm.quality import references
    from featnorm.status import OK

    threads.set_threads(args.threads)  # the job's share of the CPU for the BLAS products
    samples = _read_samples(args.manifest, args.embed)
    ok_ids = samples.loc[samples["embed_status"] == OK, "sample_id"].to_numpy()
    embeddings = pairs.read_embeddings(args.embed, ok_ids)
    logger.info("embeddings: %d x %d float16", *embeddings.shape)
    kernel, reason = _head(args, samples["label"].to_numpy())
    if reason:
        logger.info("certainty_ratio left out: %s", reason)
    sdd = references.SddSettings(
        similarities=args.sdd_similarities, resamplings=args.sdd_resamplings, seed=args.sdd_seed
    )
    table, counts = references.reference_table(samples, embeddings, sdd=sdd, kernel=kernel)
    params = {
        "model": args.model,
        "sdd": {"m": sdd.similarities, "k": sdd.resamplings, "seed": sdd.seed},
        "certainty_ratio": {"computed": kernel is not None, "reason": reason},
        "status_counts": counts,
        "oriented": "higher = better",
        "embed_meta": tableio.read_metadata(args.embed[0]),
    }
    tableio.write_table(table, args.output, params=params)
    logger.info("references: %d rows -> %s", len(table), args.output)
