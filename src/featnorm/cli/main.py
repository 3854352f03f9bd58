"""``python -m featnorm <step>``: one subcommand per workflow step.

This module builds the parser and runs a step; the handlers live by concept in ``cli_data``
(manifest, shard), ``cli_train`` (train-demo), ``cli_brisque``, ``cli_embed``, ``cli_analysis``
(merge to summary) and ``cli_evaluation`` (pairs, EDC). Each handler parses its arguments, sends
logging to ``--log``, reads inputs, calls one package function and writes outputs atomically with
their metadata. Flags that the workflow passes have no defaults here: the config schema is their
single source.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from featnorm import __version__
from featnorm.cli.steps import STEPS

logger = logging.getLogger("featnorm")


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


def build_parser() -> argparse.ArgumentParser:
    """The ``featnorm`` argument parser: one sub-command per registered step."""
    # importing a module registers its steps; this order is the order of the help text
    # isort: off
    from featnorm.cli import data  # noqa: F401
    from featnorm.cli import train  # noqa: F401
    from featnorm.cli import brisque  # noqa: F401
    from featnorm.cli import embed  # noqa: F401
    from featnorm.cli import references  # noqa: F401
    from featnorm.cli import analysis  # noqa: F401
    from featnorm.cli import evaluation  # noqa: F401
    # isort: on

    parser = argparse.ArgumentParser(prog="featnorm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"featnorm {__version__}")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, (add_arguments, run) in STEPS.items():
        p = sub.add_parser(
            name, help=(run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else None
        )
        add_arguments(p)
        p.add_argument("--log", help="also write the log to this file")
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one step (``argv`` as on the command line); returns the exit status, 0 or 1."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    started = time.perf_counter()
    logger.info("featnorm %s %s", __version__, args.step)
    try:
        args.run(args)
    except Exception:
        logger.exception("step %s failed", args.step)
        return 1
    else:
        logger.info("step %s done in %.1f s", args.step, time.perf_counter() - started)
        return 0
    finally:
        for handler in logging.getLogger().handlers:
            handler.close()  # flush and release the --log file (matters when called in-process)
