"""``python -m featnorm train-demo``: train the demo model and write its checkpoint.

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import logging

from featnorm import options
from featnorm.cli.steps import step

logger = logging.getLogger("featnorm")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument(
        "--precision",
        required=True,
        choices=options.TRAIN_PRECISIONS,
        help="auto = bf16 autocast where the CPU has native bf16, else fp32",
    )
    p.add_argument(
        "--augment-prob",
        type=float,
        default=0.0,
        help="probability of each AdaFace augmentation (crop, low resolution, photometric)",
    )
    p.add_argument("--output", required=True)
    p.add_argument("--curve", help="CSV of the per-epoch training curve (loss, accuracy)")


@step("train-demo", _train_args)
def run_train_demo(args: argparse.Namespace) -> None:
    """Train the demo model (AdaFace head) on the manifest's training images; save it."""
    import torch

    from featnorm import tableio, threads
    from featnorm.embedding import train

    threads.set_torch_threads(args.threads)
    torch.manual_seed(args.seed)  # the backbone's initialisation draws from the default generator
    images = train.load_training_images(tableio.read_table(args.manifest))
    result = train.train_demo_model(
        images,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        precision=args.precision,
        augment_prob=args.augment_prob,
    )
    with tableio.atomic_path(args.output) as tmp:
        torch.save(result.checkpoint, tmp)
    if args.curve is not None:
        tableio.write_text(result.curve.to_csv(index=False, float_format="%.6g"), args.curve)
    logger.info("train-demo: checkpoint -> %s", args.output)
