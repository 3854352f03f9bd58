"""``python -m featnorm embed``: feature norms (and embeddings) of one shard.

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import logging
import os

from featnorm import options
from featnorm.cli.steps import step

logger = logging.getLogger("featnorm")


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", required=True, help="shard table (sample_id, path, ...)")
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.ckpt/.pth/.pt)")
    p.add_argument("--family", required=True, choices=options.MODEL_FAMILIES)
    p.add_argument("--arch", required=True, help="e.g. ir_50 (adaface), iresnet100 (magface)")
    p.add_argument("--device", required=True, choices=options.EMBED_DEVICES)
    p.add_argument("--batch-size", type=int, required=True, help="images per forward pass")
    p.add_argument("--workers", type=int, required=True, help="decoding worker processes")
    p.add_argument(
        "--min-side",
        type=int,
        required=True,
        help="px; images with a shorter side get status too_small",
    )
    p.add_argument("--flip-fusion", required=True, choices=tuple(options.FLIP_FUSIONS))
    p.add_argument(
        "--precision",
        required=True,
        choices=options.EMBED_PRECISIONS,
        help="bf16/fp16: CUDA autocast",
    )
    p.add_argument(
        "--save-embeddings", action="store_true", help="also store the 512-d embedding (float16)"
    )
    p.add_argument(
        "--trust-legacy-checkpoint",
        action="store_true",
        help="allow a full unpickle of a trusted checkpoint that pickles custom classes",
    )
    p.add_argument("--threads", type=int, required=True, help="torch CPU threads of this job")
    p.add_argument("--output", required=True)


@step("embed", _embed_args)
def run_embed(args: argparse.Namespace) -> None:
    """Feature norm (and optionally embedding) of every image of one shard."""
    from featnorm import tableio, threads
    from featnorm.embedding import embed, models

    threads.set_torch_threads(args.threads)  # the job's share of the CPU, as the scheduler gave it
    device = embed.resolve_device(args.device, env=os.environ)  # a GPU job must get its GPU
    logger.info(
        "embed.device %s -> %s (%s); GPU given to this job: %s",
        args.device,
        device,
        embed.device_name(device),
        embed.gpu_assignment(os.environ) or "none",
    )
    shard = tableio.read_table(args.shard)
    model = models.load(
        args.checkpoint, args.family, args.arch, trust_legacy_pickle=args.trust_legacy_checkpoint
    )
    table = embed.embed_table(
        shard,
        model,
        family=args.family,
        device=str(device),
        batch_size=args.batch_size,
        workers=args.workers,
        min_side=args.min_side,
        flip_fusion=args.flip_fusion,
        precision=args.precision,
        save_embeddings=args.save_embeddings,
    )
    params = embed.embedding_params(
        family=args.family,
        arch=args.arch,
        checkpoint=args.checkpoint,
        device=device,
        batch_size=args.batch_size,
        flip_fusion=args.flip_fusion,
        precision=args.precision,
        save_embeddings=args.save_embeddings,
        min_side=args.min_side,
    )
    params["shard"] = tableio.read_metadata(args.shard).get("shard")
    params["rows"] = len(table)
    params["status_counts"] = table["status"].value_counts().to_dict()
    params["resized"] = int(table["resized"].sum())
    tableio.write_table(
        table, args.output, params=params, schema=embed.output_schema(args.save_embeddings)
    )
    logger.info("embed: %d rows -> %s", len(table), args.output)
