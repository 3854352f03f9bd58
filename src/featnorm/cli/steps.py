"""The registry of ``python -m featnorm`` steps, and what several steps share.

The ``featnorm.cli_*`` modules (``cli_data``, ``cli_train``, ``cli_brisque``, ``cli_embed``,
``cli_analysis``, ``cli_evaluation``) register their handlers here with ``@step``;
``featnorm.cli.main.build_parser`` imports them and makes one subcommand per entry.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["STEPS", "save_figure", "step"]

# step name -> (add_arguments, run); filled by the @step decorator.
STEPS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable]] = {}


def step(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args)`` as the handler of ``python -m featnorm <name>``."""

    def register(run: Callable[[argparse.Namespace], None]):
        STEPS[name] = (add_arguments, run)
        return run

    return register


def save_figure(fig, png: str, svg: str) -> None:
    """Write a matplotlib figure as PNG (150 dpi) and SVG, atomically, and close it."""
    import matplotlib.pyplot as plt

    from featnorm import tableio

    for path, fmt in ((png, "png"), (svg, "svg")):
        with tableio.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")  # long labels stay whole
    plt.close(fig)
