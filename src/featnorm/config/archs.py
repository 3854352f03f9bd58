"""Architecture tables of the model families: plain data, free of torch.

The workflow checks ``models.<name>.arch`` while Snakemake parses it, on a login node that may
have no torch; :mod:`featnorm.embedding.models` builds the networks from these same tables.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ARCHS", "IR_ARCHS", "MAGFACE_ARCHS", "IRArch"]


class IRArch(NamedTuple):
    """One architecture: units per stage and channel width per stage (four stages each)."""

    units: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]


_OFFICIAL_WIDTHS = (64, 128, 256, 512)

#: AdaFace: architecture name -> (units per stage, widths per stage). ``ir_101`` has units
#: 3-13-30-3 (the official ``build_model('ir_101')`` builds ``num_layers=100``). ``ir_demo`` is
#: ours: a tiny IR network that trains on 2 CPU cores in minutes for the embedded demo dataset.
IR_ARCHS: dict[str, IRArch] = {
    "ir_18": IRArch((2, 2, 2, 2), _OFFICIAL_WIDTHS),
    "ir_34": IRArch((3, 4, 6, 3), _OFFICIAL_WIDTHS),
    "ir_50": IRArch((3, 4, 14, 3), _OFFICIAL_WIDTHS),
    "ir_101": IRArch((3, 13, 30, 3), _OFFICIAL_WIDTHS),
    "ir_demo": IRArch((1, 1, 1, 1), (16, 32, 64, 128)),
}

#: MagFace: architecture name -> units per stage (insightface iResNet; 100 = 3-13-30-3).
MAGFACE_ARCHS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}

#: family -> architecture names it accepts (the names users type in config.yaml).
ARCHS: dict[str, tuple[str, ...]] = {"adaface": tuple(IR_ARCHS), "magface": tuple(MAGFACE_ARCHS)}
