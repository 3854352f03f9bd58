"""Per-shard extraction of feature norms (and optionally embeddings) with a batched pipeline.

Images are read and decoded by :func:`featnorm.data.sources.read_image` inside ``torch.utils.data``
worker processes (grey replicated to BGR, alpha dropped, 16-bit scaled, sizes other than 112x112
resized by :data:`featnorm.embedding.models.RESIZE_POLICY`), mapped to the family's input values by the
same lookup table as :func:`featnorm.embedding.models.preprocess`, and batched. The model runs in
``eval()`` under ``torch.inference_mode()`` on an inference copy (BatchNorms folded into the
convs, NHWC "channels-last" layout; outputs change by float32 rounding only). An image that
cannot be decoded, or whose shorter side is under ``min_side`` (status ``too_small``), keeps its
row, with its status and a NaN norm; nothing is dropped. A job that was given a GPU which torch
cannot use stops (:func:`choose_device`) instead of running on the CPU.

Flip fusion (optional; :data:`featnorm.options.FLIP_FUSIONS` lists the rules and what each fused
norm is) adds the horizontally flipped view, as AdaFace's validation code does: the vector-add
rule's fused norm is about **2x** the single-view norm.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from featnorm.data.sources import read_image
from featnorm.embedding.models import EMBEDDING_DIM, INPUT_SIZE_PX, RESIZE_POLICY
from featnorm.embedding.models.fold import fold_batchnorm, replace_subsample_pools
from featnorm.embedding.models.preprocessing import FAMILY_LUTS, to_input_array
from featnorm.options import (
    EMBED_DEVICES,
    EMBED_PRECISIONS,
    FLIP_FUSIONS,
    NO_FLIP,
    PRE_NORM_VECTOR_ADD,
)
from featnorm.status import OK, TOO_SMALL
from featnorm.threads import decoding_worker_init

__all__ = [
    "GPU_ENV_VARS",
    "MIN_SIDE_PX",
    "EmbedOptions",
    "ImageFiles",
    "choose_device",
    "device_name",
    "embed_batch",
    "embed_table",
    "embedding_params",
    "gpu_assignment",
    "embedding_column",
    "output_schema",
    "prepare_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

#: Environment variables through which the user or SLURM gives a job GPUs.
GPU_ENV_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")
_NO_GPU_VALUES = frozenset({"nodevfiles", "none"})  # values that name no device (lower case)
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_PROGRESS_LINES = 20  # default: about this many progress lines per shard
#: Shorter side (px) below which an image is not embedded: up-sampled to 112x112 a patch that
#: small carries no face, so its norm would measure nothing. BRISQUE's own limit, so both stages
#: refuse the same images (config key embed.min_side).
MIN_SIDE_PX = 32


@dataclass(frozen=True)
class EmbedOptions:
    """How a batch is run (see :func:`embed_table` for the meaning of each field)."""

    family: str
    device: torch.device
    flip_fusion: str = NO_FLIP
    precision: str = "fp32"
    channels_last: bool = False


def gpu_assignment(env: Mapping[str, str]) -> str | None:
    """``"NAME=value"`` of the first variable of :data:`GPU_ENV_VARS` in ``env`` that gives this
    job a GPU, or None. ``env`` is an environment mapping (the CLI passes ``os.environ``).

    ``CUDA_VISIBLE_DEVICES`` names a device unless it is empty or starts with a negative index
    (``-1``: CUDA hides every device); the SLURM variables count unless empty, ``0`` or SLURM's
    ``NoDevFiles``.
    """
    for name in GPU_ENV_VARS:
        value = env.get(name, "").strip()
        first = value.split(",")[0].strip()
        if not first or first.startswith("-") or first.lower() in _NO_GPU_VALUES:
            continue
        if name == "SLURM_GPUS_ON_NODE" and first.isdigit() and int(first) == 0:
            continue
        return f"{name}={value}"
    return None


def choose_device(
    device: str, env: Mapping[str, str], *, cuda_available: bool, cuda_build: str | None
) -> str:
    """The device to embed on, ``"cuda"`` or ``"cpu"``; a pure function of its arguments.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``cpu`` always runs on the CPU; ``auto`` uses CUDA when torch sees a device, else the CPU,
        unless the job was given a GPU (see ``env``); ``cuda`` needs a device.
    env : mapping
        The job's environment; a GPU given through :data:`GPU_ENV_VARS` that torch cannot see is
        an error under ``auto``, never a silent run on the CPU.
    cuda_available, cuda_build : what torch reports (``torch.cuda.is_available()``,
        ``torch.version.cuda``: None for a CPU-only build of torch).

    Raises
    ------
    ValueError
        A GPU is expected and torch sees none; the message names the cause (CPU-only build of
        torch, or driver/visibility) and the way out (``embed.device: cpu``).
    """
    if device not in EMBED_DEVICES:
        raise ValueError(f"device {device!r} is not known; use one of {', '.join(EMBED_DEVICES)}")
    if device == "cpu":
        return "cpu"
    if cuda_available:
        return "cuda"
    given = gpu_assignment(env)
    if device == "auto" and given is None:
        return "cpu"
    if cuda_build is None:
        cause = (
            "this torch is a CPU-only build (torch.version.cuda is None): install the CUDA "
            "build of torch in the job's environment (envs/featnorm-gpu.yaml, or the PyPI "
            "wheel on Linux)"
        )
    else:
        cause = (
            f"torch is built for CUDA {cuda_build} but finds no device: the NVIDIA driver "
            "is missing or too old for it, or the device is not visible to this process "
            "(check nvidia-smi inside the job)"
        )
    way_out = (
        "to embed on the CPU on purpose, set embed.device: cpu (on SLURM, also drop the "
        "GPU request: --profile profiles/slurm --profile profiles/slurm/cpu)"
    )
    if device == "cuda":
        raise ValueError(
            f"device 'cuda' was asked for but no CUDA GPU is visible; use auto or cpu. {cause}"
        )
    raise ValueError(
        f"the job was given a GPU ({given}) but torch sees no CUDA GPU; {cause}; {way_out}"
    )


def resolve_device(device: str, env: Mapping[str, str] | None = None) -> torch.device:
    """:func:`choose_device` with what this torch reports; ``env`` None skips the check of a
    GPU given to the job (pass ``os.environ`` where the job starts)."""
    return torch.device(
        choose_device(
            device,
            env or {},
            cuda_available=torch.cuda.is_available(),
            cuda_build=torch.version.cuda,
        )
    )


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device`` for logs and metadata (GPU model, or CPU and threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} torch threads"


def _check_options(flip_fusion: str, precision: str, device: torch.device) -> None:
    if flip_fusion not in FLIP_FUSIONS:
        raise ValueError(
            f"flip_fusion {flip_fusion!r} is not known; use one of {', '.join(FLIP_FUSIONS)}"
        )
    if precision not in EMBED_PRECISIONS:
        raise ValueError(
            f"precision {precision!r} is not known; use one of {', '.join(EMBED_PRECISIONS)}"
        )
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(
            f"precision {precision!r} is a CUDA option (autocast) but the device is {device}; "
            "use precision fp32 on the CPU"
        )


def prepare_model(model: nn.Module, device: torch.device, *, channels_last: bool) -> nn.Module:
    """An inference copy of ``model``: BatchNorms folded, 1x1 shortcut pools made views, eval
    mode, on ``device``.

    BN folding changes the outputs by float32 rounding only (see :mod:`featnorm.embedding.models.fold`).
    ``channels_last`` stores conv weights NHWC, which cuDNN and oneDNN run faster. ``model``
    itself is left as it is.
    """
    prepared = replace_subsample_pools(fold_batchnorm(model))  # shares unfolded tensors
    tensors = itertools.chain(prepared.parameters(), prepared.buffers())
    if any(t.device.type != device.type for t in tensors):
        prepared = copy.deepcopy(prepared).to(device)  # own tensors: .to() must not move model's
    if channels_last:
        for module in prepared.modules():
            if isinstance(module, nn.Conv2d):
                module.weight = nn.Parameter(
                    module.weight.contiguous(memory_format=torch.channels_last),
                    requires_grad=False,
                )
    return prepared.eval()


def _fuse(
    emb: torch.Tensor,
    norm: torch.Tensor,
    flip_emb: torch.Tensor,
    flip_norm: torch.Tensor,
    rule: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    if rule == PRE_NORM_VECTOR_ADD:
        fused = emb * norm + flip_emb * flip_norm
        fused_norm = torch.linalg.vector_norm(fused, ord=2, dim=1, keepdim=True)
        return fused / fused_norm, fused_norm
    # NORM_WEIGHTED_AVG
    weights = torch.stack([norm, flip_norm]) / (norm + flip_norm)
    fused = weights[0] * emb + weights[1] * flip_emb
    fused = fused / torch.linalg.vector_norm(fused, ord=2, dim=1, keepdim=True)
    return fused, (norm + flip_norm) / 2


def embed_batch(
    model: nn.Module, x: torch.Tensor, options: EmbedOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one preprocessed batch; returns float32 CPU tensors (embedding (N, 512), norm (N,)).

    The norm is the L2 norm of the un-normalised feature, meant to be higher for better images
    (MagFace, Meng et al. 2021; AdaFace, Kim et al. 2022: see :mod:`featnorm.embedding.models`).

    ``x`` is (N, 3, 112, 112) float32 from :func:`featnorm.embedding.models.preprocess`. Call inside
    ``torch.inference_mode()`` with a model in eval mode.
    """
    x = x.to(options.device, non_blocking=True)
    if options.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    views = [x] if options.flip_fusion == NO_FLIP else [x, torch.flip(x, dims=[3])]
    if options.flip_fusion != NO_FLIP:
        x = torch.cat(views)  # one forward pass for both views
    if options.precision == "fp32":
        emb, norm = model(x)
    else:
        with torch.autocast(options.device.type, dtype=_AUTOCAST_DTYPES[options.precision]):
            emb, norm = model(x)
    emb, norm = emb.float(), norm.float()
    if options.flip_fusion != NO_FLIP:
        n = len(views[0])
        emb, norm = _fuse(emb[:n], norm[:n], emb[n:], norm[n:], options.flip_fusion)
    return emb.cpu(), norm[:, 0].cpu()


class ImageFiles(Dataset):
    """Decodes one image per item into the model's input values; failures become a status."""

    def __init__(self, paths: Sequence[str], family: str, min_side: int = MIN_SIDE_PX):
        self.paths = list(paths)
        self.family = family
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, bool]:
        decoded = read_image(self.paths[i])
        if not decoded.ok:
            return torch.zeros(3, INPUT_SIZE_PX, INPUT_SIZE_PX), decoded.status, False
        if min(decoded.image.shape[:2]) < self.min_side:
            return torch.zeros(3, INPUT_SIZE_PX, INPUT_SIZE_PX), TOO_SMALL, False
        values, resized = to_input_array(decoded.image, self.family)
        return torch.from_numpy(values), OK, resized


def embed_table(
    shard: pd.DataFrame,
    model: nn.Module,
    *,
    family: str,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    min_side: int = MIN_SIDE_PX,
    flip_fusion: str = NO_FLIP,
    precision: str = "fp32",
    save_embeddings: bool = False,
    channels_last: bool = True,
    progress_every: int | None = None,
) -> pd.DataFrame:
    """Feature norm (and optionally the embedding) of every image of a shard.

    Parameters
    ----------
    shard : DataFrame with ``sample_id`` (int64) and ``path`` (str) columns
        Paths are opened as given (relative to the working directory, or absolute).
    model : nn.Module
        A loaded backbone (:func:`featnorm.embedding.models.load`); it is not modified (an inference copy
        with BatchNorms folded runs instead).
    family : {"adaface", "magface"}
        Selects the input mapping (AdaFace BGR [-1, 1], MagFace BGR [0, 1]).
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when a GPU is visible.
    batch_size : int >= 1
        Images per forward pass (per view).
    workers : int >= 0
        Decoding worker processes; 0 decodes in this process.
    min_side : int >= 1
        Images whose shorter side is below this (px) get status ``too_small`` and a NaN norm.
    flip_fusion : a key of :data:`featnorm.options.FLIP_FUSIONS`
        See the module docstring; the vector-add rule's fused norm is ~2x the plain one.
    precision : {"fp32", "bf16", "fp16"}
        Non-fp32 runs the model under CUDA autocast (CUDA only; CPU raises ValueError).
    save_embeddings : bool
        Also return the L2-normalised embedding as float16 (fused one with flip fusion).
    channels_last : bool
        NHWC memory layout (default on: faster with cuDNN, and with oneDNN on the CPU, where it
        measured ~1.25x at batch 16 on IR-50; outputs move by float32 rounding only).
    progress_every : int or None
        Log a progress line every this many batches; None = about 20 lines per shard.

    Returns
    -------
    DataFrame, one row per shard row in shard order:
        ``sample_id`` int64; ``feature_norm`` float32 (L2 norm of the un-normalised feature,
        meant to be higher for better images; NaN when status != "ok"); ``status`` str ("ok",
        the decoding failure, or ``too_small``); ``resized`` bool (the image was not 112x112); ``embedding``
        (only with ``save_embeddings``) ndarray (512,) float16, None when status != "ok".
    """
    # long because: the docstring documents its 12 parameters; the body is 30 lines
    _check_table_options(shard, batch_size, workers, min_side, family)
    torch_device = resolve_device(device)
    _check_options(flip_fusion, precision, torch_device)
    options = EmbedOptions(family, torch_device, flip_fusion, precision, channels_last)
    logger.info(
        "embedding %d images on %s (%s): family=%s batch_size=%d workers=%d min_side=%d "
        "flip_fusion=%s precision=%s channels_last=%s",
        len(shard),
        torch_device,
        device_name(torch_device),
        family,
        batch_size,
        workers,
        min_side,
        flip_fusion,
        precision,
        channels_last,
    )
    loader = DataLoader(
        ImageFiles(shard["path"].astype(str).tolist(), family, min_side),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch_device.type == "cuda",
        worker_init_fn=decoding_worker_init if workers > 0 else None,
        # workers start from a clean server process, not a fork of this one: a fork inherits the
        # locks of OpenCV's, OpenMP's and torch's thread pools as held by threads that the child
        # lacks, and a worker then waited on one for ever (seen in the test suite)
        multiprocessing_context="forkserver" if workers > 0 else None,
    )
    prepared = prepare_model(model, torch_device, channels_last=channels_last)
    n_batches = max(1, math.ceil(len(shard) / batch_size))
    every = progress_every or max(1, math.ceil(n_batches / _PROGRESS_LINES))
    return _run_loader(loader, prepared, options, shard, save_embeddings, n_batches, every)


def _check_table_options(
    shard: pd.DataFrame, batch_size: int, workers: int, min_side: int, family: str
) -> None:
    """ValueError naming the value and what is allowed, for the arguments of embed_table."""
    missing = {"sample_id", "path"} - set(shard.columns)
    if missing:
        raise ValueError(f"shard lacks columns {sorted(missing)}; it needs sample_id and path")
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}; it must be at least 1")
    if workers < 0:
        raise ValueError(f"workers = {workers}; it must be 0 (decode in-process) or more")
    if min_side < 1:
        raise ValueError(f"min_side = {min_side}; it must be at least 1 px")
    if family not in FAMILY_LUTS:
        raise ValueError(f"family {family!r} is not known; use one of {', '.join(FAMILY_LUTS)}")


def _run_loader(
    loader: DataLoader,
    prepared: nn.Module,
    options: EmbedOptions,
    shard: pd.DataFrame,
    save_embeddings: bool,
    n_batches: int,
    every: int,
) -> pd.DataFrame:
    """Embed every batch of ``loader`` (shard order) into the table of :func:`embed_table`."""
    n = len(shard)
    norms = np.full(n, np.nan, dtype=np.float32)
    statuses = np.empty(n, dtype=object)
    resized = np.zeros(n, dtype=bool)
    # one (N, 512) float16 block, handed to Arrow as one fixed-size-list column at the end
    embeddings = np.zeros((n, EMBEDDING_DIM), np.float16) if save_embeddings else None
    started = time.perf_counter()
    start = 0
    with torch.inference_mode():
        for b, (x, batch_status, batch_resized) in enumerate(loader, start=1):
            stop = start + len(x)
            statuses[start:stop] = batch_status
            resized[start:stop] = batch_resized.numpy()
            ok = np.flatnonzero(np.asarray(batch_status) == OK)
            if len(ok):
                emb, norm = embed_batch(prepared, x[ok], options)
                norms[start + ok] = norm.numpy()
                if embeddings is not None:
                    embeddings[start + ok] = emb.numpy()
            start = stop
            if b % every == 0 or b == n_batches:
                elapsed = time.perf_counter() - started
                logger.info("embedded %d/%d images, %.1f img/s", stop, n, stop / max(elapsed, 1e-9))
    out = pd.DataFrame(
        {
            "sample_id": shard["sample_id"].to_numpy(dtype=np.int64),
            "feature_norm": norms,
            "status": statuses.astype(str) if n else np.array([], dtype=str),
            "resized": resized,
        }
    )
    if embeddings is not None:
        out["embedding"] = embedding_column(embeddings, statuses == OK)
    logger.info(
        "embedded %d images in %.1f s; statuses %s; %d resized to %dx%d",
        n,
        time.perf_counter() - started,
        out["status"].value_counts().to_dict(),
        int(resized.sum()),
        INPUT_SIZE_PX,
        INPUT_SIZE_PX,
    )
    return out


def embedding_column(embeddings: np.ndarray, present: np.ndarray) -> pd.Series:
    """An (N, D) float16 matrix as one Arrow fixed-size-list column (null where not ``present``).

    The matrix becomes the list values without a per-row Python object; pandas holds the Arrow
    array as it is and Parquet writes it as ``fixed_size_list<float16>[D]``.
    """
    values = pa.array(np.ascontiguousarray(embeddings, dtype=np.float16).reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(
        values, embeddings.shape[1], mask=pa.array(~np.asarray(present, dtype=bool))
    )
    return pd.Series(pd.arrays.ArrowExtensionArray(column))


def output_schema(save_embeddings: bool) -> pa.Schema:
    """Parquet schema of :func:`embed_table`'s output (embedding: fixed-size list of float16)."""
    fields = [
        pa.field("sample_id", pa.int64()),
        pa.field("feature_norm", pa.float32()),
        pa.field("status", pa.string()),
        pa.field("resized", pa.bool_()),
    ]
    if save_embeddings:
        fields.append(pa.field("embedding", pa.list_(pa.float16(), EMBEDDING_DIM)))
    return pa.schema(fields)


def embedding_params(
    *,
    family: str,
    arch: str,
    checkpoint: str,
    device: torch.device | str,
    batch_size: int,
    flip_fusion: str,
    precision: str,
    save_embeddings: bool,
    min_side: int = MIN_SIDE_PX,
) -> dict[str, object]:
    """The parameters that describe an embedding table (for its Parquet metadata)."""
    return {
        "step": "embed",
        "family": family,
        "arch": arch,
        "checkpoint": checkpoint,
        "device": str(device),
        "device_name": device_name(torch.device(device)),
        "batch_size": batch_size,
        "min_side_px": min_side,
        "flip_fusion": flip_fusion,
        "flip_fusion_rule": FLIP_FUSIONS[flip_fusion],
        "precision": precision,
        "save_embeddings": save_embeddings,
        "embedding": "L2-normalised, float16" if save_embeddings else "not stored",
        "input": "BGR, 112x112, "
        + ("(x/255-0.5)/0.5 in [-1, 1]" if family == "adaface" else "x/255 in [0, 1]"),
        "resize_policy": RESIZE_POLICY,
        "feature_norm": "L2 norm of the un-normalised feature (AdaFace: BatchNorm1d output; "
        "MagFace: feature magnitude); higher is meant to mean better quality",
        "bn_folded": True,
    }
