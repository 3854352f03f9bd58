"""``python -m featnorm brisque``: BRISQUE scores of one shard.

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import logging

from featnorm import options
from featnorm.cli.steps import step

logger = logging.getLogger("featnorm")


def _brisque_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", required=True, help="shard table (sample_id, path, ...)")
    p.add_argument(
        "--threads",
        type=int,
        required=True,
        help="OpenCV/OpenBLAS threads (1 per job is fastest; run jobs in parallel)",
    )
    p.add_argument(
        "--save-features",
        action="store_true",
        help="also store the 36 BRISQUE features (brisque_s1_mscn_shape, ...)",
    )
    p.add_argument(
        "--precision",
        required=True,
        choices=options.BRISQUE_PRECISIONS,
        help="float32 (fast, within 0.3 of float64 on 95 %% of images) or float64",
    )
    p.add_argument("--output", required=True)


@step("brisque", _brisque_args)
def run_brisque(args: argparse.Namespace) -> None:
    """BRISQUE score (LIVE release flavour) of every image of one shard."""
    from featnorm import tableio
    from featnorm.quality import brisque

    shard = tableio.read_table(args.shard)
    table = brisque.score_table(
        shard, threads=args.threads, save_features=args.save_features, precision=args.precision
    )
    params = brisque.output_params(save_features=args.save_features, precision=args.precision)
    params["shard"] = tableio.read_metadata(args.shard).get("shard")
    params["rows"] = len(table)
    params["status_counts"] = table["status"].value_counts().to_dict()
    tableio.write_table(table, args.output, params=params)
    logger.info("brisque: %d rows -> %s", len(table), args.output)
