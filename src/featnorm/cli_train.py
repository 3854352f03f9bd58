"""``python -m featnorm train-demo``: train the demo model and write its checkpoint.

Registered in :mod:`featnorm.steps`; :mod:`featnorm.cli` builds the parser.
"""

from __future__ import annotations

import argparse
import logging

from featnorm.steps import step

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
        choices=["auto", "fp32", "bf16"],
        help="auto = bf16 autocast where the CPU has native bf16, else fp32",
    )
    p.add_argument("--output", required=True)
    p.add_argument("--curve", help="CSV of the per-epoch training curve (loss, accuracy)")


@step("train-demo", _train_args)
def run_train_demo(args: argparse.Namespace) -> None:
    from featnorm import io, train

    manifest = io.read_table(args.manifest)
    train.train_demo_model(
        manifest,
        args.output,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        precision=args.precision,
        curve_output=args.curve,
    )
