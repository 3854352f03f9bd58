"""Throughput of one demo-model training step: the seed's loop against featnorm's.

* seed: the whole training set held as float32 NCHW tensors in [-1, 1], fp32 arithmetic,
  batch 32 (featnorm's trainer before the converged demo);
* featnorm: the training set held as one uint8 tensor, flipped and mapped to [-1, 1] through
  the AdaFace lookup table per batch, bf16 autocast on CPU where supported (``train.precision:
  auto``), channels-last (NHWC) activations and weights, batch 64 (the defaults of ``train:``).

Both train the same ``ir_demo`` backbone with the AdaFace head on random pixels of the demo's
size (speed does not depend on the values). They alternate, one chunk of images at a time, and
only chunks in which the process kept its threads busy (CPU time >= 0.9 x threads x wall) count,
because on a shared machine the others measure the neighbours. CPU time per image is reported
beside wall time: it is the steadier figure on a busy machine.

Run from the repository root::

    python benchmarks/train_demo.py               # 2 threads, 3 rounds of 512 images each
    python benchmarks/train_demo.py --threads 4 --rounds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.nn import functional as F

from featnorm.embedding import models, train
from featnorm.embedding.models.preprocessing import FAMILY_LUTS

CLASSES = 320  # identities of the default demo
POOL = 1024  # images held in memory for sampling batches
BUSY_SHARE = 0.9  # a chunk counts when CPU time >= this share of threads x wall


def _setup(seed: int, *, channels_last: bool):
    torch.manual_seed(seed)
    backbone = models.build("adaface", "ir_demo").train()
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    head = train.AdaFaceHead(CLASSES, generator=torch.Generator().manual_seed(seed))
    optimiser = torch.optim.SGD(
        list(backbone.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9
    )
    return backbone, head, optimiser


def _step(backbone, head, optimiser, x, y, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        embedding, norm = backbone(x)
    loss = F.cross_entropy(head(embedding.float(), norm.float(), y), y)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=512, help="images per chunk")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (POOL, 3, 112, 112), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, CLASSES, (POOL,), generator=gen)
    lut = torch.from_numpy(FAMILY_LUTS["adaface"])
    floats = lut[pixels.long()]
    bf16 = train.resolve_precision("auto") == "bf16"

    def seed_chunk(state):
        for _ in range(args.images // 32):
            idx = torch.randint(0, POOL, (32,), generator=gen)
            x = floats[idx]
            flip = torch.rand(32, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            _step(*state, x, labels[idx], bf16=False)

    def featnorm_chunk(state):
        for _ in range(args.images // 64):
            idx = torch.randint(0, POOL, (64,), generator=gen)
            x = pixels[idx]
            flip = torch.rand(64, generator=gen) < 0.5
            x = lut[torch.where(flip[:, None, None, None], x.flip(3), x).long()]
            x = x.contiguous(memory_format=torch.channels_last)
            _step(*state, x, labels[idx], bf16=bf16)

    runs = {
        "seed (fp32, batch 32)": (seed_chunk, _setup(0, channels_last=False), []),
        f"featnorm ({'bf16' if bf16 else 'fp32'}, batch 64, NHWC)": (
            featnorm_chunk,
            _setup(0, channels_last=True),
            [],
        ),
    }
    warm_up = {seed_chunk: False, featnorm_chunk: bf16}  # oneDNN creates its primitives once
    for chunk, state, _ in runs.values():
        _step(*state, floats[:64], labels[:64], bf16=warm_up[chunk])
    for _ in range(args.rounds):
        for chunk, state, kept in runs.values():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            chunk(state)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            busy = cpu >= BUSY_SHARE * args.threads * wall
            kept.append((wall, cpu, busy))
    print(
        f"threads {args.threads}, {args.images} images per chunk, {args.rounds} rounds; "
        f"bf16 native: {bf16}"
    )
    rates = {}
    for name, (_, _, kept) in runs.items():
        busy = [k for k in kept if k[2]] or kept
        wall = float(np.median([w for w, _, _ in busy]))
        cpu = float(np.median([c for _, c, _ in busy]))
        rates[name] = (args.images / wall, args.images / cpu)
        print(
            f"{name:28s} {args.images / wall:7.1f} img/s wall  {args.images / cpu:7.1f} img per "
            f"CPU-s  ({sum(k[2] for k in kept)}/{len(kept)} chunks busy)"
        )
    (seed_wall, seed_cpu), (new_wall, new_cpu) = rates.values()
    print(
        f"ratio featnorm / seed: {new_wall / seed_wall:.2f}x wall, {new_cpu / seed_cpu:.2f}x per CPU-s"
    )


if __name__ == "__main__":
    main()
