"""Per-shard extraction of feature norms (and optionally embeddings) with a batched pipeline.

Images are read and decoded by :func:`featnorm.images.read_image` inside ``torch.utils.data``
worker processes (grey replicated to BGR, alpha dropped, 16-bit scaled, sizes other than 112x112
resized by :data:`featnorm.models.RESIZE_POLICY`), mapped to the family's input values by the
same lookup table as :func:`featnorm.models.preprocess`, and batched. The model runs in
``eval()`` under ``torch.inference_mode()`` on an inference copy (BatchNorms folded into the
convs, NHWC "channels-last" layout; outputs change by float32 rounding only). An image that
cannot be decoded keeps its row, with its status and a NaN norm; nothing is dropped.

Flip fusion (optional) adds the horizontally flipped view, as AdaFace's validation code does:

* ``pre_norm_vector_add``: sum of the two un-normalised features; the fused norm is the norm of
  that sum, about **2x** the single-view norm;
* ``norm_weighted_avg``: embeddings averaged with weights proportional to their norms, then
  re-normalised; the fused norm is the mean of the two norms.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from featnorm.images import STATUS_OK, read_image
from featnorm.models import EMBEDDING_DIM, INPUT_SIZE_PX, RESIZE_POLICY, fit_input_size, to_bgr
from featnorm.models.fold import fold_batchnorm, replace_subsample_pools
from featnorm.models.preprocessing import FAMILY_LUTS

__all__ = [
    "DEVICES",
    "FLIP_FUSIONS",
    "PRECISIONS",
    "EmbedOptions",
    "ImageFiles",
    "embed_batch",
    "embed_table",
    "embedding_params",
    "output_schema",
    "prepare_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: fusion rule -> what the fused norm is (written into the metadata).
FLIP_FUSIONS: dict[str, str] = {
    "none": "single view: the norm of the unflipped image",
    "pre_norm_vector_add": "norm of (feature + flipped feature), un-normalised features; ~2x the "
    "single-view norm",
    "norm_weighted_avg": "mean of the two views' norms; embedding = norm-weighted average, "
    "re-normalised",
}
_PROGRESS_LINES = 20  # default: about this many progress lines per shard


@dataclass(frozen=True)
class EmbedOptions:
    """How a batch is run (see :func:`embed_table` for the meaning of each field)."""

    family: str
    device: torch.device
    flip_fusion: str = "none"
    precision: str = "fp32"
    channels_last: bool = False


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not known; use one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use auto or cpu")
    return torch.device(device)


def _check_options(flip_fusion: str, precision: str, device: torch.device) -> None:
    if flip_fusion not in FLIP_FUSIONS:
        raise ValueError(
            f"flip_fusion {flip_fusion!r} is not known; use one of {', '.join(FLIP_FUSIONS)}"
        )
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision {precision!r} is not known; use one of {', '.join(PRECISIONS)}"
        )
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(
            f"precision {precision!r} is a CUDA option (autocast) but the device is {device}; "
            "use precision fp32 on the CPU"
        )


def prepare_model(model: nn.Module, device: torch.device, *, channels_last: bool) -> nn.Module:
    """An inference copy of ``model``: BatchNorms folded, 1x1 shortcut pools made views, eval
    mode, on ``device``.

    BN folding changes the outputs by float32 rounding only (see :mod:`featnorm.models.fold`).
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


def _fuse(emb: torch.Tensor, norm: torch.Tensor, flip_emb: torch.Tensor, flip_norm: torch.Tensor,
          rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    if rule == "pre_norm_vector_add":
        fused = emb * norm + flip_emb * flip_norm
        fused_norm = torch.linalg.vector_norm(fused, ord=2, dim=1, keepdim=True)
        return fused / fused_norm, fused_norm
    # norm_weighted_avg
    weights = torch.stack([norm, flip_norm]) / (norm + flip_norm)
    fused = weights[0] * emb + weights[1] * flip_emb
    fused = fused / torch.linalg.vector_norm(fused, ord=2, dim=1, keepdim=True)
    return fused, (norm + flip_norm) / 2


def embed_batch(model: nn.Module, x: torch.Tensor, options: EmbedOptions
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one preprocessed batch; returns float32 CPU tensors (embedding (N, 512), norm (N,)).

    ``x`` is (N, 3, 112, 112) float32 from :func:`featnorm.models.preprocess`. Call inside
    ``torch.inference_mode()`` with a model in eval mode.
    """
    x = x.to(options.device, non_blocking=True)
    if options.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    views = [x] if options.flip_fusion == "none" else [x, torch.flip(x, dims=[3])]
    if options.flip_fusion != "none":
        x = torch.cat(views)  # one forward pass for both views
    if options.precision == "fp32":
        emb, norm = model(x)
    else:
        with torch.autocast(options.device.type, dtype=_AUTOCAST_DTYPES[options.precision]):
            emb, norm = model(x)
    emb, norm = emb.float(), norm.float()
    if options.flip_fusion != "none":
        n = len(views[0])
        emb, norm = _fuse(emb[:n], norm[:n], emb[n:], norm[n:], options.flip_fusion)
    return emb.cpu(), norm[:, 0].cpu()


class ImageFiles(Dataset):
    """Decodes one image per item into the model's input values; failures become a status."""

    def __init__(self, paths: Sequence[str], family: str):
        self.paths = list(paths)
        self.lut = FAMILY_LUTS[family]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, bool]:
        decoded = read_image(self.paths[i])
        if not decoded.ok:
            return torch.zeros(3, INPUT_SIZE_PX, INPUT_SIZE_PX), decoded.status, False
        bgr, resized = fit_input_size(to_bgr(decoded.image))
        return torch.from_numpy(self.lut[bgr.transpose(2, 0, 1)]), STATUS_OK, resized


def _worker_init(_: int) -> None:
    # Each worker decodes one image at a time; OpenCV's and torch's own threads would only
    # compete with the model for the cores.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def embed_table(
    shard: pd.DataFrame,
    model: nn.Module,
    *,
    family: str,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    flip_fusion: str = "none",
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
        A loaded backbone (:func:`featnorm.models.load`); it is not modified (an inference copy
        with BatchNorms folded runs instead).
    family : {"adaface", "magface"}
        Selects the input mapping (AdaFace BGR [-1, 1], MagFace BGR [0, 1]).
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when a GPU is visible.
    batch_size : int >= 1
        Images per forward pass (per view).
    workers : int >= 0
        Decoding worker processes; 0 decodes in this process.
    flip_fusion : {"none", "pre_norm_vector_add", "norm_weighted_avg"}
        See the module docstring; the fused norm of ``pre_norm_vector_add`` is ~2x the plain one.
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
        meant to be higher for better images; NaN when status != "ok"); ``status`` str ("ok" or
        the decoding failure); ``resized`` bool (the image was not 112x112); ``embedding``
        (only with ``save_embeddings``) ndarray (512,) float16, None when status != "ok".
    """
    missing = {"sample_id", "path"} - set(shard.columns)
    if missing:
        raise ValueError(f"shard lacks columns {sorted(missing)}; it needs sample_id and path")
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}; it must be at least 1")
    if workers < 0:
        raise ValueError(f"workers = {workers}; it must be 0 (decode in-process) or more")
    if family not in FAMILY_LUTS:
        raise ValueError(f"family {family!r} is not known; use one of {', '.join(FAMILY_LUTS)}")
    torch_device = resolve_device(device)
    _check_options(flip_fusion, precision, torch_device)
    options = EmbedOptions(family, torch_device, flip_fusion, precision, channels_last)

    n = len(shard)
    norms = np.full(n, np.nan, dtype=np.float32)
    statuses = np.empty(n, dtype=object)
    resized = np.zeros(n, dtype=bool)
    embeddings: list[np.ndarray | None] | None = [None] * n if save_embeddings else None
    n_batches = max(1, math.ceil(n / batch_size))
    every = progress_every or max(1, math.ceil(n_batches / _PROGRESS_LINES))
    logger.info(
        "embedding %d images on %s: family=%s batch_size=%d workers=%d flip_fusion=%s "
        "precision=%s channels_last=%s", n, torch_device, family, batch_size, workers,
        flip_fusion, precision, channels_last,
    )
    loader = DataLoader(
        ImageFiles(shard["path"].astype(str).tolist(), family),
        batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=torch_device.type == "cuda",
        worker_init_fn=_worker_init if workers > 0 else None,
    )
    prepared = prepare_model(model, torch_device, channels_last=channels_last)
    started = time.perf_counter()
    start = 0
    with torch.inference_mode():
        for b, (x, batch_status, batch_resized) in enumerate(loader, start=1):
            stop = start + len(x)
            statuses[start:stop] = batch_status
            resized[start:stop] = batch_resized.numpy()
            ok = np.flatnonzero(np.asarray(batch_status) == STATUS_OK)
            if len(ok):
                emb, norm = embed_batch(prepared, x[ok], options)
                norms[start + ok] = norm.numpy()
                if embeddings is not None:
                    for j, row in zip(ok, emb.numpy().astype(np.float16), strict=True):
                        embeddings[start + j] = row
            start = stop
            if b % every == 0 or b == n_batches:
                elapsed = time.perf_counter() - started
                logger.info("embedded %d/%d images, %.1f img/s", stop, n, stop / max(elapsed, 1e-9))
    out = pd.DataFrame({
        "sample_id": shard["sample_id"].to_numpy(dtype=np.int64),
        "feature_norm": norms,
        "status": statuses.astype(str) if n else np.array([], dtype=str),
        "resized": resized,
    })
    if embeddings is not None:
        out["embedding"] = pd.Series(embeddings, dtype=object)
    counts = out["status"].value_counts().to_dict()
    logger.info("embedded %d images in %.1f s; statuses %s; %d resized to %dx%d",
                n, time.perf_counter() - started, counts, int(resized.sum()),
                INPUT_SIZE_PX, INPUT_SIZE_PX)
    return out


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
    *, family: str, arch: str, checkpoint: str, device: torch.device | str, batch_size: int,
    flip_fusion: str, precision: str, save_embeddings: bool,
) -> dict[str, object]:
    """The parameters that describe an embedding table (for its Parquet metadata)."""
    return {
        "step": "embed",
        "family": family,
        "arch": arch,
        "checkpoint": checkpoint,
        "device": str(device),
        "batch_size": batch_size,
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
