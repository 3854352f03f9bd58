"""Throughput of featnorm's extractor against a re-creation of the official one-at-a-time loop.

The official AdaFace ``inference.py`` path, re-created faithfully:
``PIL.Image.open(path).convert("RGB")`` -> ``to_input`` (``np.array``, reverse channels to BGR,
``(x / 255. - 0.5) / 0.5`` in float64, ``torch.tensor([chw]).float()``) -> the unmodified
(unfolded, contiguous NCHW) backbone, one image per forward call, under ``torch.no_grad()``.

featnorm: the pipeline of :func:`featnorm.embed.embed_table` on the same files (OpenCV decoding,
lookup-table preprocessing, BatchNorm folding, channels-last, batching).

Both use the same model weights (the deterministic golden recipe, ``featnorm.models.recipe``;
speed does not depend on the values) and the same PNG images (demo faces from ``featnorm.demo``;
PNG so both decoders see identical pixels and the deviation measures the compute only). The two
alternate one batch of images at a time, and only chunks where both kept the cores busy (process
CPU time >= 0.9 x threads x wall) count, since on a shared machine the others measure the
neighbours. featnorm's figure is its steady state (decoding + batched forward); the one-off model
preparation per shard and an end-to-end ``embed_table`` run are reported beside it.

Run from the repository root::

    python benchmarks/embed.py            # ir_50, 48 images, 3 rounds, CPU (~1-2 min when idle)
    python benchmarks/embed.py --arch ir_101 --device cuda --images 512 --batch-size 128

Needs Pillow for the official loop (``pip install pillow``; benchmark extra).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from featnorm import demo, embed, models
from featnorm.models.recipe import golden_state_dict

logger = logging.getLogger("benchmarks.embed")

_DEMO_IDENTITIES = 64  # enough demo identities for a few hundred images
_DEMO_MAX_IMAGES = 16
_CLEAN_CPU_FRACTION = 0.9


def official_to_input(pil_rgb_image) -> torch.Tensor:
    """Re-creation of AdaFace ``inference.to_input``: RGB PIL image -> (1, 3, 112, 112) BGR."""
    np_img = np.array(pil_rgb_image)
    brg_img = ((np_img[:, :, ::-1] / 255.0) - 0.5) / 0.5  # float64, BGR (the original's name)
    return torch.tensor(np.array([brg_img.transpose(2, 0, 1)])).float()


def official_loop(paths: list[str], model: torch.nn.Module, device: torch.device) -> np.ndarray:
    """One image at a time, as the official inference script does; returns the norms (N,)."""
    from PIL import Image

    norms = np.empty(len(paths), dtype=np.float32)
    with torch.no_grad():
        for i, path in enumerate(paths):
            image = Image.open(path).convert("RGB")
            _, norm = model(official_to_input(image).to(device))
            norms[i] = norm[0, 0].item()
    return norms


def make_images(folder: Path, count: int) -> list[str]:
    """``count`` demo face images as PNG files (the demo generator's rendering + degradations)."""
    params = demo.DemoParams(identities=_DEMO_IDENTITIES, min_images=2,
                             max_images=_DEMO_MAX_IMAGES, image_format="png", seed=0)
    table = demo.generate(params, folder)
    if len(table) < count:
        raise ValueError(f"--images {count} is more than the {len(table)} demo images generated")
    return table["path"].astype(str).tolist()[:count]


def timed(fn) -> tuple[object, float, float]:
    """(result, wall seconds, process CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="adaface", choices=["adaface"],
                   help="the official loop exists for AdaFace only")
    p.add_argument("--arch", default="ir_50")
    p.add_argument("--images", type=int, default=48, help="images per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="featnorm decoding workers")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("featnorm").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = embed.resolve_device(args.device)

    model = models.build(args.family, args.arch)
    model.load_state_dict(golden_state_dict(model))
    model = model.eval().to(device)

    channels_last = not args.no_channels_last
    options = embed.EmbedOptions(args.family, device, precision=args.precision,
                                 channels_last=channels_last)
    with tempfile.TemporaryDirectory(prefix="featnorm-bench-") as tmp:
        paths = make_images(Path(tmp), args.images)
        shard = pd.DataFrame({"sample_id": np.arange(len(paths), dtype=np.int64), "path": paths})
        files = embed.ImageFiles(paths, args.family)
        chunks = [list(range(i, min(i + args.batch_size, len(paths))))
                  for i in range(0, len(paths), args.batch_size)]

        # one-off per shard: the inference copy (BN folding, channels-last)
        prepared, prep_wall, _ = timed(
            lambda: embed.prepare_model(model, device, channels_last=channels_last))

        def ours(chunk: list[int]) -> np.ndarray:
            # the steady state of embed_table: decode + lookup table, then one batched forward
            x = torch.stack([files[i][0] for i in chunk])
            with torch.inference_mode():
                norm = embed.embed_batch(prepared, x, options)[1]
            if device.type == "cuda":
                torch.cuda.synchronize()
            return norm.numpy()

        def theirs(chunk: list[int]) -> np.ndarray:
            result = official_loop([paths[i] for i in chunk], model, device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return result

        # warm-up: oneDNN/cuDNN pick and cache kernels on the first call of each shape
        theirs(chunks[0][:2])
        ours(chunks[0])
        # Official and featnorm alternate chunk by chunk (one batch of images each), so load
        # from other processes hits both alike; a chunk counts when both kept the cores busy.
        rows = []  # (images, official wall, official cpu, featnorm wall, featnorm cpu)
        for r in range(args.rounds):
            for chunk in chunks:
                _, ref_wall, ref_cpu = timed(lambda c=chunk: theirs(c))
                _, our_wall, our_cpu = timed(lambda c=chunk: ours(c))
                rows.append((len(chunk), ref_wall, ref_cpu, our_wall, our_cpu))
            done = rows[-len(chunks):]
            logger.info("round %d: official %.2f img/s, featnorm %.2f img/s", r + 1,
                        len(paths) / sum(row[1] for row in done),
                        len(paths) / sum(row[3] for row in done))

        # end to end, once: embed_table on the shard (DataLoader, preparation, bookkeeping)
        ref = theirs(list(range(len(paths))))
        table, e2e_wall, _ = timed(lambda: embed.embed_table(
            shard, model, family=args.family, device=str(device), batch_size=args.batch_size,
            workers=args.workers, precision=args.precision, channels_last=channels_last))
        deviation = float(np.max(np.abs(table["feature_norm"].to_numpy() / ref - 1.0)))

    threads = torch.get_num_threads()
    busy = _CLEAN_CPU_FRACTION * threads
    clean = [row for row in rows
             if device.type == "cuda" or min(row[2] / row[1], row[4] / row[3]) >= busy]
    used = clean or rows
    images = sum(row[0] for row in used)
    ref_rate = images / sum(row[1] for row in used)
    our_rate = images / sum(row[3] for row in used)
    logger.info(
        "%s on %s (%d threads), %d images x %d rounds, batch %d, %s, channels_last=%s",
        args.arch, torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        threads, len(paths), args.rounds, args.batch_size, args.precision, channels_last,
    )
    if device.type == "cuda":
        logger.info("chunks: all %d counted (GPU run)", len(rows))
    elif clean:
        logger.info("clean chunks: %d of %d (CPU busy >= %.0f%% of %d threads in both runs)",
                    len(clean), len(rows), 100 * _CLEAN_CPU_FRACTION, threads)
    else:
        logger.info("WARNING: no clean chunk (other processes took the cores); the figures "
                    "below are unreliable: rerun when the machine is idle or with more --rounds")
    logger.info("official loop: %.2f img/s", ref_rate)
    logger.info("featnorm:      %.2f img/s (steady state; + %.2f s once per shard to prepare "
                "the model)", our_rate, prep_wall)
    logger.info("ratio:         %.2fx", our_rate / ref_rate)
    # CPU time per image is less sensitive to neighbours than wall time (exact with --threads 1,
    # where no thread spins waiting for another)
    ref_cpu_rate = images / sum(row[2] for row in used)
    our_cpu_rate = images / sum(row[4] for row in used)
    logger.info("per CPU-second: official %.2f img, featnorm %.2f img, ratio %.2fx",
                ref_cpu_rate, our_cpu_rate, our_cpu_rate / ref_cpu_rate)
    logger.info("end to end:    embed_table %.2f img/s over %d images (workers %d, includes "
                "preparation; not interleaved)", len(paths) / e2e_wall, len(paths), args.workers)
    logger.info("max relative norm deviation vs official: %.2e", deviation)


if __name__ == "__main__":
    main()
