"""Inference-time rewrites that keep the outputs: BatchNorm folding, free shortcut subsampling.

In eval mode a BatchNorm is a per-channel affine map, so ``BN(conv(x)) = conv'(x)`` with
``w' = w * s`` and ``b' = (b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``. Folding
removes one full pass over every activation it touches. The folded weights are computed in
float64 and cast to float32; outputs move by float32 rounding only (measured on the golden
IR-50: well under 1e-5 relative in the norm, see benchmarks/README.md).

BatchNorms that come *before* a conv (``res_layer.0`` in IR units, ``bn1`` in iResNet blocks)
cannot be folded exactly because of the conv's zero padding, and stay.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

__all__ = ["StridedSubsample", "fold_batchnorm", "replace_subsample_pools"]

_Foldable = nn.Conv2d | nn.Linear


def _folded(layer: _Foldable, bn: nn.modules.batchnorm._BatchNorm) -> _Foldable:
    """``layer`` with ``bn`` (eval mode, running statistics) folded into its weight and bias."""
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    weight = layer.weight.double() * scale.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    bias = shift if layer.bias is None else layer.bias.double() * scale + shift
    # ``layer`` belongs to the caller's private copy: rewrite it in place (building a new layer
    # would spend seconds on a random initialisation that is thrown away).
    dtype = layer.weight.dtype
    layer.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    layer.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return layer


def _is_bn_after(layer: nn.Module, bn: nn.Module) -> bool:
    return (
        (isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d))
        or (isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d))
    ) and bn.track_running_stats


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every foldable BatchNorm merged into its layer.

    Folds adjacent (Conv2d, BatchNorm2d) / (Linear, BatchNorm1d) pairs inside ``nn.Sequential``
    containers, and the attribute pairs a module lists in a ``FOLD_PAIRS`` class attribute
    (``(("conv1", "bn2"), ...)``, for blocks that call their layers by name). A folded BatchNorm
    becomes ``nn.Identity``. The input model is not changed: the copy gets new tensors for the
    folded layers and shares every other parameter and buffer with it (read-only use only; copy
    the result before moving it to another device or training it).
    """
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    model = copy.deepcopy(model, memo=shared).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for i in range(len(children) - 1):
                if _is_bn_after(children[i], children[i + 1]):
                    module[i] = _folded(children[i], children[i + 1])
                    module[i + 1] = nn.Identity()
                    children[i + 1] = module[i + 1]
        for layer_name, bn_name in getattr(module, "FOLD_PAIRS", ()):
            layer, bn = getattr(module, layer_name), getattr(module, bn_name)
            if _is_bn_after(layer, bn):
                setattr(module, layer_name, _folded(layer, bn))
                setattr(module, bn_name, nn.Identity())
    return model


class StridedSubsample(nn.Module):
    """``x[:, :, ::s, ::s]``: what a 1x1 max pool with stride ``s`` computes, without a copy."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> a view of shape (N, C, ceil(H / s), ceil(W / s))."""
        return x[:, :, :: self.stride, :: self.stride]


def _stride(pool: nn.MaxPool2d) -> int | None:
    """The stride of a parameter-free subsampling 1x1 max pool, None for any other pool."""
    size = pool.kernel_size if isinstance(pool.kernel_size, int) else set(pool.kernel_size)
    stride = pool.stride if isinstance(pool.stride, int) else set(pool.stride)
    padding = pool.padding if isinstance(pool.padding, int) else max(pool.padding)
    undilated = pool.dilation in (1, (1, 1))
    if size in (1, {1}) and padding == 0 and isinstance(stride, int) and undilated:
        return stride
    return None


def replace_subsample_pools(model: nn.Module) -> nn.Module:
    """Replace every 1x1 max pool (AdaFace's shortcut) by a view: identity or strided slicing.

    A 1x1 max pool with stride s returns ``x[:, :, ::s, ::s]`` exactly (ceil(H / s) rows, no
    padding), but as a full copy of the activation; the view costs nothing. Changes ``model``
    in place (use it on an inference copy, e.g. from :func:`fold_batchnorm`) and returns it.
    """
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d) and (stride := _stride(child)) is not None:
                setattr(module, name, nn.Identity() if stride == 1 else StridedSubsample(stride))
    return model
