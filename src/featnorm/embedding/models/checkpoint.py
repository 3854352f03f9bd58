"""Reading checkpoints safely and fitting them to a backbone, with errors that say what to change.

Formats understood:

* AdaFace's Lightning ``.ckpt``: ``{"epoch", "global_step", ..., "state_dict": {"model.<key>",
  "head.kernel", "head.t", ...}}``; only the ``model.`` entries are kept (the head is ignored).
  featnorm's demo checkpoints use the same layout;
* MagFace ``.pth``: ``{"epoch", "arch", "state_dict", "optimizer"}`` whose backbone keys start with
  ``features.module.`` (DDP) or ``module.features.`` (DataParallel); the margin-loss ``fc.weight``
  outside that prefix is ignored;
* a plain backbone state dict, with or without those prefixes (``module.`` too).

Files are always read with ``map_location="cpu"`` and ``weights_only=True``: a pickle that would
construct arbitrary objects (and so could run code, e.g. write a file) is refused before anything
runs. ``trust_legacy_pickle=True`` is an explicit opt-in for trusted files that pickle custom
classes (old Lightning ``AttributeDict``, AdaFace's ``dotdict``).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "FAMILY_PREFIXES",
    "CheckpointError",
    "backbone_state_dict",
    "fit_state_dict",
    "guess_arch",
    "read_checkpoint",
]

logger = logging.getLogger(__name__)

#: family -> wrapper prefixes in the order they are tried; the first one present wins, and only
#: the keys carrying it are kept (the rest belong to heads, losses or optimiser wrappers).
FAMILY_PREFIXES: dict[str, tuple[str, ...]] = {
    "adaface": ("model.", "module."),
    "magface": ("features.module.", "module.features.", "module."),
}
_SHOW_KEYS = 5  # how many missing/unexpected keys an error message lists


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the requested architecture."""


def read_checkpoint(path: str | os.PathLike, *, trust_legacy_pickle: bool = False) -> Any:
    """Read a torch checkpoint file onto the CPU.

    Parameters
    ----------
    path : path of a ``.ckpt`` / ``.pth`` / ``.pt`` file (torch zip or legacy format).
    trust_legacy_pickle : bool
        False (default): ``weights_only=True``, which refuses pickled custom classes and any
        callable, so a malicious file cannot run code. True: fall back to a full unpickle when
        the safe load refuses; only for files you trust.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CheckpointError
        The file is truncated/corrupt, or holds objects the safe loader refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; check the models.*.checkpoint path"
        )
    size = path.stat().st_size
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_legacy_pickle:
            raise CheckpointError(
                f"checkpoint {str(path)!r} ({size} bytes) holds pickled objects that the safe "
                f"loader (weights_only=True) refuses: {_first_line(err)}. If the file is "
                "truncated, re-copy it. If you trust its origin, opt in with "
                "trust_legacy_pickle=True (CLI --trust-legacy-checkpoint); the classes it pickles "
                "must then be importable."
            ) from err
        logger.warning(
            "checkpoint %s: safe load refused (%s); loading with a full unpickle because "
            "trust_legacy_pickle=True",
            path,
            _first_line(err),
        )
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as legacy_err:
            raise CheckpointError(
                f"checkpoint {str(path)!r} could not be unpickled even as a trusted legacy file: "
                f"{_first_line(legacy_err)}"
            ) from legacy_err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} ({size} bytes) could not be read; it is probably truncated "
            f"or not a torch file: {_first_line(err)}. Re-copy or re-download it."
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _raw_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor entries of a loaded checkpoint object (wrapper dict, state dict or module)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint holds a {type(obj).__name__}; expected a state dict or a dict with a "
            "'state_dict' entry"
        )
    inner = obj.get("state_dict")
    if isinstance(inner, nn.Module):
        inner = inner.state_dict()
    if isinstance(inner, Mapping):
        obj = inner
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"checkpoint holds no tensors (top-level keys: {sorted(map(str, obj))[:_SHOW_KEYS]}); "
            "expected a state dict or a dict with a 'state_dict' entry"
        )
    return tensors


def backbone_state_dict(obj: Any, family: str) -> dict[str, torch.Tensor]:
    """The backbone's entries of a loaded checkpoint, wrapper prefixes removed.

    The first prefix of ``FAMILY_PREFIXES[family]`` that any key carries wins: only keys with it
    are kept (``head.*``, MagFace's loss ``fc.weight`` and other wrapper entries are dropped).
    """
    if family not in FAMILY_PREFIXES:
        raise ValueError(
            f"family {family!r} is not known; use one of {', '.join(sorted(FAMILY_PREFIXES))}"
        )
    tensors = _raw_state_dict(obj)
    for prefix in FAMILY_PREFIXES[family]:
        if any(k.startswith(prefix) for k in tensors):
            kept = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            dropped = len(tensors) - len(kept)
            if dropped:
                logger.info(
                    "checkpoint: kept %d '%s' entries, ignored %d others (head/loss/wrapper)",
                    len(kept),
                    prefix,
                    dropped,
                )
            return kept
    return tensors


def _signature(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def guess_arch(
    obj: Any, builders: Mapping[tuple[str, str], Callable[[], nn.Module]]
) -> tuple[tuple[str, str], float]:
    """The (family, arch) whose key/shape layout best fits a checkpoint, and the match fraction.

    The fraction is (entries whose key and shape both match) / max(entries in the file, entries
    the architecture has): 1.0 is an exact fit. Models are built on the ``meta`` device, so no
    memory is allocated.
    """
    best, best_score = ("?", "?"), -1.0
    for (family, arch), make in builders.items():
        state = backbone_state_dict(obj, family)
        with torch.device("meta"):
            expected = _signature(make())
        matches = sum(1 for k, s in expected.items() if k in state and tuple(state[k].shape) == s)
        score = matches / max(len(expected), len(state))
        if score > best_score:
            best, best_score = (family, arch), score
    return best, best_score


def fit_state_dict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    what: str,
    guess: Callable[[], tuple[tuple[str, str], float]],
) -> None:
    """Load ``state`` into ``model`` strictly, or raise :class:`CheckpointError` explaining why.

    ``what`` names the checkpoint and requested architecture for the message; ``guess`` is called
    only on a mismatch, to name the architecture the file most likely holds.
    """
    expected = _signature(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} (model: {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or reshaped:
        (family, arch), score = guess()
        parts = [f"{what} does not fit:"]
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:_SHOW_KEYS])});")
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:_SHOW_KEYS])});"
            )
        if reshaped:
            parts.append(
                f"{len(reshaped)} shape mismatches (first: {'; '.join(reshaped[:_SHOW_KEYS])});"
            )
        parts.append(
            f"it most likely holds family={family!r} arch={arch!r} "
            f"({score:.0%} of keys and shapes match); set family/arch to that, or check the file."
        )
        raise CheckpointError(" ".join(parts))
    model.load_state_dict(state, strict=True)
