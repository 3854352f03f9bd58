"""``python -m featnorm <step>``: one subcommand per workflow step.

Each handler parses its arguments, sends logging to ``--log``, reads inputs, calls one package
function and writes outputs atomically with their metadata. Flags that the workflow passes have
no defaults here: the config schema is their single source.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from featnorm import __version__

logger = logging.getLogger("featnorm")

# step name -> (add_arguments, run); filled by the @step decorator below.
STEPS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable]] = {}


def step(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args)`` as the handler of ``python -m featnorm <name>``."""

    def register(run: Callable[[argparse.Namespace], None]):
        STEPS[name] = (add_arguments, run)
        return run

    return register


def _json_arg(text: str):
    return json.loads(text)


def _setup_logging(log_path: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


# ---------------------------------------------------------------------------------------------
# manifest, shard, train-demo
# ---------------------------------------------------------------------------------------------


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=["demo", "imagefolder", "list", "recordio"])
    p.add_argument("--root", help="imagefolder/recordio: dataset folder")
    p.add_argument("--list", dest="list_file", help="list: CSV or Parquet with path,label")
    p.add_argument("--demo", type=_json_arg, default=None, help="demo generator parameters (JSON)")
    p.add_argument("--demo-dir", help="demo: folder that receives the generated images")
    p.add_argument("--output", required=True)


@step("manifest", _manifest_args)
def run_manifest(args: argparse.Namespace) -> None:
    from featnorm import datasets, io

    manifest, params = datasets.build_manifest(
        args.format, root=args.root, list_file=args.list_file, demo=args.demo,
        demo_dir=args.demo_dir,
    )
    io.write_table(manifest, args.output, params=params)
    logger.info("manifest: %d images in %d classes -> %s",
                len(manifest), manifest["label"].nunique(), args.output)


def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--outputs", nargs="+", required=True, help="shard-0 .. shard-(N-1) paths")


@step("shard", _shard_args)
def run_shard(args: argparse.Namespace) -> None:
    from featnorm import io, shards

    manifest = io.read_table(args.manifest)
    if len(args.outputs) != args.shards:
        raise ValueError(f"--outputs names {len(args.outputs)} files for --shards {args.shards}")
    parts = shards.split(manifest, args.shards)
    meta = io.read_metadata(args.manifest)
    for k, (part, path) in enumerate(zip(parts, args.outputs, strict=True)):
        io.write_table(part, path, params={**meta, "shard": k, "shards": args.shards})
        logger.info("shard %d: %d images -> %s", k, len(part), path)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--output", required=True)


@step("train-demo", _train_args)
def run_train_demo(args: argparse.Namespace) -> None:
    from featnorm import io, train

    manifest = io.read_table(args.manifest)
    train.train_demo_model(
        manifest, args.output, arch=args.arch, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
    )


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="featnorm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"featnorm {__version__}")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, (add_arguments, run) in STEPS.items():
        p = sub.add_parser(name, help=(run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else None)
        add_arguments(p)
        p.add_argument("--log", help="also write the log to this file")
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    started = time.perf_counter()
    logger.info("featnorm %s %s", __version__, args.step)
    try:
        args.run(args)
    except Exception:
        logger.exception("step %s failed", args.step)
        return 1
    logger.info("step %s done in %.1f s", args.step, time.perf_counter() - started)
    return 0
