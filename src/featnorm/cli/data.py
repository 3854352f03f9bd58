"""``python -m featnorm manifest | shard``: the image list of a dataset, cut into shards.

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import json
import logging

from featnorm import options
from featnorm.cli.steps import step

logger = logging.getLogger("featnorm")


def _json_arg(text: str):
    return json.loads(text)


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=options.DATASET_FORMATS)
    p.add_argument("--root", help="imagefolder/recordio: dataset folder")
    p.add_argument("--list", dest="list_file", help="list: CSV or Parquet with path,label")
    p.add_argument("--demo", type=_json_arg, default=None, help="demo generator parameters (JSON)")
    p.add_argument("--demo-dir", help="demo: folder that receives the generated images")
    p.add_argument("--output", required=True)


@step("manifest", _manifest_args)
def run_manifest(args: argparse.Namespace) -> None:
    """The manifest of a dataset: one row per image with sample_id, path, label, class_name."""
    from featnorm import tableio
    from featnorm.data import datasets

    manifest, params = datasets.build_manifest(
        args.format,
        root=args.root,
        list_file=args.list_file,
        demo=args.demo,
        demo_dir=args.demo_dir,
    )
    tableio.write_table(manifest, args.output, params=params)
    logger.info(
        "manifest: %d images in %d classes -> %s",
        len(manifest),
        manifest["label"].nunique(),
        args.output,
    )


def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--outputs", nargs="+", required=True, help="shard-0 .. shard-(N-1) paths")


@step("shard", _shard_args)
def run_shard(args: argparse.Namespace) -> None:
    """Split the manifest into --shards tables (sample_id mod shards), one per output."""
    from featnorm import tableio
    from featnorm.data import shards

    manifest = tableio.read_table(args.manifest)
    if len(args.outputs) != args.shards:
        raise ValueError(f"--outputs names {len(args.outputs)} files for --shards {args.shards}")
    parts = shards.split(manifest, args.shards)
    meta = tableio.read_metadata(args.manifest)
    for k, (part, path) in enumerate(zip(parts, args.outputs, strict=True)):
        tableio.write_table(part, path, params={**meta, "shard": k, "shards": args.shards})
        logger.info("shard %d: %d images -> %s", k, len(part), path)
