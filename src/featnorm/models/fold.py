"""Inference-time rewrite: fold each BatchNorm that follows a conv/linear layer into its weights.

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

import torch
from torch import nn

__all__ = ["fold_batchnorm"]

_Foldable = nn.Conv2d | nn.Linear


def _folded(layer: _Foldable, bn: nn.modules.batchnorm._BatchNorm) -> _Foldable:
    """A copy of ``layer`` with ``bn`` (eval mode, running statistics) folded in."""
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    weight = layer.weight.double() * scale.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    bias = shift if layer.bias is None else layer.bias.double() * scale + shift
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
            padding_mode=layer.padding_mode,
        )
    else:
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    dtype = layer.weight.dtype
    new.weight.data.copy_(weight.to(dtype))
    new.bias.data.copy_(bias.to(dtype))
    return new.to(layer.weight.device)


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
    becomes ``nn.Identity``. The input model is not changed.
    """
    model = copy.deepcopy(model).eval()
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
