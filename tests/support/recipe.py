"""Golden weight recipe v1: deterministic, well-conditioned synthetic weights for tests/benchmarks.

These are **not** trained weights. They regenerate, key for key, the weights with which the
reference golden outputs (``shared/reference/adaface/golden_*.npz``) were produced from the
official AdaFace code, so a re-implementation can be checked against them, and they give
benchmarks a model whose activations neither explode nor vanish.

For state-dict entry ``i`` (0-based, state-dict order) with key ``k`` and shape ``S``:
``R = torch.randn(S, generator=torch.Generator().manual_seed(1000 + i))`` (float32), then by role:
conv/linear weight ``R * gain / sqrt(fan_in)`` (gain 0.25 for ``res_layer.4.weight``, the second
3x3 conv of an IR unit, else 1), BN weight ``1 + 0.1 R``, BN bias ``0.1 R``, running mean
``0.1 R``, running var ``1 + 0.1 |R|``, PReLU slope ``0.25 + 0.05 R``, linear bias ``0.1 R``,
``num_batches_tracked`` 0 (nothing drawn).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["RECIPE_SEED_BASE", "golden_state_dict", "recipe_role"]

RECIPE_SEED_BASE = 1000  # entry i uses seed 1000 + i
_SECOND_CONV_SUFFIX = "res_layer.4.weight"
_SECOND_CONV_GAIN = 0.25  # keeps residual growth bounded (gain 1 drives IR-101 norms to ~6e4)
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def recipe_role(key: str, shape: tuple[int, ...], keys: set[str]) -> str:
    """Role of a state-dict entry, from its name and shape (the recipe's rules).

    ``keys`` is the set of all keys of the state dict (a 1-d weight/bias is a BatchNorm parameter
    when ``<module>.running_mean`` exists).
    """
    module, _, leaf = key.rpartition(".")
    if leaf in _BN_BUFFERS:
        return f"bn_{leaf}"
    is_bn = f"{module}.running_mean" in keys
    if leaf == "weight":
        if len(shape) == 4:
            return "conv_weight"
        if len(shape) == 2:
            return "linear_weight"
        return "bn_weight" if is_bn else "prelu_weight"
    if leaf == "bias":
        return "bn_bias" if is_bn else "linear_bias"
    raise ValueError(
        f"state-dict entry {key!r} has no recipe role; expected weight, bias or a BN buffer"
    )


def _draw(role: str, key: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    if role == "bn_num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    r = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    if role in ("conv_weight", "linear_weight"):
        gain = _SECOND_CONV_GAIN if key.endswith(_SECOND_CONV_SUFFIX) else 1.0
        return r * (gain / math.sqrt(math.prod(shape[1:])))
    if role == "bn_weight":
        return 1.0 + 0.1 * r
    if role in ("bn_bias", "bn_running_mean", "linear_bias"):
        return 0.1 * r
    if role == "bn_running_var":
        return 1.0 + 0.1 * r.abs()
    if role == "prelu_weight":
        return 0.25 + 0.05 * r
    raise ValueError(f"unknown recipe role {role!r} for {key!r}")


def golden_state_dict(
    entries: list[tuple[str, tuple[int, ...]]] | nn.Module,
) -> dict[str, torch.Tensor]:
    """Weights of the golden recipe v1, in the given order.

    Parameters
    ----------
    entries : nn.Module, or list of (key, shape) in state-dict order
        A model (its own ``state_dict()`` order and names are used) or a manifest, e.g. the
        ``model.``-prefixed entries of ``shared/reference/adaface/<arch>.keys.json``.

    Returns
    -------
    dict key -> tensor (float32; int64 for ``num_batches_tracked``), same keys and order.
    """
    if isinstance(entries, nn.Module):
        entries = [(k, tuple(v.shape)) for k, v in entries.state_dict().items()]
    keys = {k for k, _ in entries}
    return {
        key: _draw(recipe_role(key, tuple(shape), keys), key, tuple(shape), RECIPE_SEED_BASE + i)
        for i, (key, shape) in enumerate(entries)
    }
