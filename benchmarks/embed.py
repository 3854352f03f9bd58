"""Throughput of featnorm's extractor against a re-creation of the official one-at-a-time loop.

The official AdaFace ``inference.py`` path, re-created faithfully:
``PIL.Image.open(path).convert("RGB")`` -> ``to_input`` (``np.array``, reverse channels to BGR,
``(x / 255. - 0.5) / 0.5`` in float64, ``torch.tensor([chw]).float()``) -> the unmodified
(unfolded, contiguous NCHW) backbone, one image per forward call, under ``torch.no_grad()``.

featnorm: the pipeline of :func:`featnorm.embedding.embed.embed_table` on the same files (OpenCV decoding,
lookup-table preprocessing, BatchNorm folding, channels-last, batching).

Both use the same model weights (the deterministic golden recipe, ``tests/support/recipe.py``;
speed does not depend on the values) and the same PNG images (demo faces from ``featnorm.data.demo``;
PNG so both decoders see identical pixels and the deviation measures the compute only). The two
alternate one batch of images at a time, and only chunks where both kept the cores busy (process
CPU time >= 0.9 x threads x wall) count, since on a shared machine the others measure the
neighbours. featnorm's figure is its steady state (decoding + batched forward); the one-off model
preparation per shard and an end-to-end ``embed_table`` run are reported beside it.

Run from the repository root::

    python benchmarks/embed.py            # ir_50, 48 images, 3 rounds, CPU (~1-2 min when idle)
    python benchmarks/embed.py --arch ir_101 --device cuda --images 512 --batch-size 128

**Sweep mode** (``--batch-sizes``; used by ``benchmarks/gpu.sh``): for each ``--arch`` and
``--precisions`` entry and each batch size it measures, on ``--device``,

* ``forward_ips``: :func:`featnorm.embedding.embed.embed_batch` on already decoded images held in (pinned,
  on CUDA) host memory: copy in, forward, copy the results out; the model side of the stage;
* ``pipeline_ips``: :func:`featnorm.embedding.embed.embed_table` end to end over ``--pipeline-images``
  image files (the ``--images`` files cycled; decoding in ``--workers`` DataLoader processes, model
  preparation included), i.e. what one embed job achieves once started;
* ``max_rel_norm_dev``: the largest ``|norm / norm_cpu_fp32 - 1|`` over the first
  ``--deviation-images`` images, against featnorm's fp32 path on the CPU;

and once per arch the official loop (fp32, ``--official-images`` images, on the same device).
It writes ``embed_sweep.csv`` (one row per arch, precision, batch size) and
``embed_summary.csv`` (per arch and precision: the best batch size and its ratios to the official
loop) to ``--out``; both are rewritten after every row, so a run stopped at its time limit keeps
what it measured::

    python benchmarks/embed.py --device cuda --arch ir_50 ir_101 --precisions fp32 bf16 fp16 \
        --batch-sizes 64 256 1024 --workers 8 --out /tmp/embed-gpu

Needs Pillow for the official loop (``pip install pillow``; benchmark extra).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from featnorm.data import demo
from featnorm.embedding import embed, models
from featnorm.options import EMBED_DEVICES, EMBED_PRECISIONS

# the golden-recipe weights live in tests/support, beside the tests, because the installed
# featnorm never uses them
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.recipe import golden_state_dict  # noqa: E402

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
    """``count`` demo face images as PNG files (the demo generator's rendering + degradations).

    Draws from 64 demo identities, or twice as many each time until they hold ``count`` images.
    """
    identities = _DEMO_IDENTITIES
    while True:
        params = demo.DemoParams(
            identities=identities,
            min_images=2,
            max_images=_DEMO_MAX_IMAGES,
            image_format="png",
            seed=0,
        )
        if demo.class_sizes(params).sum() >= count:
            break
        identities *= 2
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
    p.add_argument(
        "--family",
        default="adaface",
        choices=["adaface"],
        help="the official loop exists for AdaFace only",
    )
    p.add_argument(
        "--arch", nargs="+", default=["ir_50"], help="backbone; several only in sweep mode"
    )
    p.add_argument(
        "--images", type=int, default=48, help="images per round (sweep mode: distinct image files)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="featnorm decoding workers")
    p.add_argument("--device", default="cpu", choices=EMBED_DEVICES)
    p.add_argument("--precision", default="fp32", choices=list(EMBED_PRECISIONS))
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    sweep_args = p.add_argument_group("sweep mode (on when --batch-sizes is given)")
    sweep_args.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    sweep_args.add_argument(
        "--precisions", nargs="+", default=["fp32"], choices=list(EMBED_PRECISIONS)
    )
    sweep_args.add_argument(
        "--forward-images",
        type=int,
        default=4096,
        help="images timed per forward measurement (whole batches)",
    )
    sweep_args.add_argument(
        "--pipeline-images", type=int, default=8192, help="images per embed_table measurement"
    )
    sweep_args.add_argument("--official-images", type=int, default=256)
    sweep_args.add_argument("--deviation-images", type=int, default=64)
    sweep_args.add_argument(
        "--out", type=Path, default=None, help="folder for embed_sweep.csv and embed_summary.csv"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("featnorm").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = embed.resolve_device(args.device)
    if args.batch_sizes:
        if args.out is None:
            p.error("sweep mode (--batch-sizes) needs --out")
        sweep(args, device)
        return
    if len(args.arch) != 1:
        p.error(f"--arch takes one backbone outside sweep mode; got {' '.join(args.arch)}")
    args.arch = args.arch[0]

    model = models.build(args.family, args.arch)
    model.load_state_dict(golden_state_dict(model))
    model = model.eval().to(device)

    channels_last = not args.no_channels_last
    options = embed.EmbedOptions(
        args.family, device, precision=args.precision, channels_last=channels_last
    )
    with tempfile.TemporaryDirectory(prefix="featnorm-bench-") as tmp:
        paths = make_images(Path(tmp), args.images)
        shard = pd.DataFrame({"sample_id": np.arange(len(paths), dtype=np.int64), "path": paths})
        files = embed.ImageFiles(paths, args.family)
        chunks = [
            list(range(i, min(i + args.batch_size, len(paths))))
            for i in range(0, len(paths), args.batch_size)
        ]

        # one-off per shard: the inference copy (BN folding, channels-last)
        prepared, prep_wall, _ = timed(
            lambda: embed.prepare_model(model, device, channels_last=channels_last)
        )

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
            done = rows[-len(chunks) :]
            logger.info(
                "round %d: official %.2f img/s, featnorm %.2f img/s",
                r + 1,
                len(paths) / sum(row[1] for row in done),
                len(paths) / sum(row[3] for row in done),
            )

        # end to end, once: embed_table on the shard (DataLoader, preparation, bookkeeping)
        ref = theirs(list(range(len(paths))))
        table, e2e_wall, _ = timed(
            lambda: embed.embed_table(
                shard,
                model,
                family=args.family,
                device=str(device),
                batch_size=args.batch_size,
                workers=args.workers,
                precision=args.precision,
                channels_last=channels_last,
            )
        )
        deviation = float(np.max(np.abs(table["feature_norm"].to_numpy() / ref - 1.0)))

    threads = torch.get_num_threads()
    busy = _CLEAN_CPU_FRACTION * threads
    clean = [
        row
        for row in rows
        if device.type == "cuda" or min(row[2] / row[1], row[4] / row[3]) >= busy
    ]
    used = clean or rows
    images = sum(row[0] for row in used)
    ref_rate = images / sum(row[1] for row in used)
    our_rate = images / sum(row[3] for row in used)
    logger.info(
        "%s on %s (%d threads), %d images x %d rounds, batch %d, %s, channels_last=%s",
        args.arch,
        torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        threads,
        len(paths),
        args.rounds,
        args.batch_size,
        args.precision,
        channels_last,
    )
    if device.type == "cuda":
        logger.info("chunks: all %d counted (GPU run)", len(rows))
    elif clean:
        logger.info(
            "clean chunks: %d of %d (CPU busy >= %.0f%% of %d threads in both runs)",
            len(clean),
            len(rows),
            100 * _CLEAN_CPU_FRACTION,
            threads,
        )
    else:
        logger.info(
            "WARNING: no clean chunk (other processes took the cores); the figures "
            "below are unreliable: rerun when the machine is idle or with more --rounds"
        )
    logger.info("official loop: %.2f img/s", ref_rate)
    logger.info(
        "featnorm:      %.2f img/s (steady state; + %.2f s once per shard to prepare the model)",
        our_rate,
        prep_wall,
    )
    logger.info("ratio:         %.2fx", our_rate / ref_rate)
    # CPU time per image is less sensitive to neighbours than wall time (exact with --threads 1,
    # where no thread spins waiting for another)
    ref_cpu_rate = images / sum(row[2] for row in used)
    our_cpu_rate = images / sum(row[4] for row in used)
    logger.info(
        "per CPU-second: official %.2f img, featnorm %.2f img, ratio %.2fx",
        ref_cpu_rate,
        our_cpu_rate,
        our_cpu_rate / ref_cpu_rate,
    )
    logger.info(
        "end to end:    embed_table %.2f img/s over %d images (workers %d, includes "
        "preparation; not interleaved)",
        len(paths) / e2e_wall,
        len(paths),
        args.workers,
    )
    logger.info("max relative norm deviation vs official: %.2e", deviation)


# ---------------------------------------------------------------------------------------------
# sweep mode (benchmarks/gpu.sh)
# ---------------------------------------------------------------------------------------------

SWEEP_COLUMNS = [
    "arch",
    "precision",
    "batch_size",
    "device",
    "device_name",
    "forward_ips",
    "pipeline_ips",
    "official_ips",
    "forward_ratio",
    "pipeline_ratio",
    "max_rel_norm_dev",
    "deviation_images",
    "pipeline_images",
    "workers",
    "channels_last",
    "cudnn_allow_tf32",
    "peak_gpu_mib",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tiled(decoded: torch.Tensor, count: int, device: torch.device) -> torch.Tensor:
    """``count`` inputs cycling through ``decoded`` (U, 3, 112, 112); pinned when on CUDA."""
    x = decoded[torch.arange(count) % len(decoded)].contiguous()
    return x.pin_memory() if device.type == "cuda" else x


def forward_rate(
    prepared: torch.nn.Module,
    decoded: torch.Tensor,
    options: embed.EmbedOptions,
    *,
    batch_size: int,
    images: int,
) -> float:
    """Images/s of :func:`featnorm.embedding.embed.embed_batch` on host batches (copy in, forward, out)."""
    x = _tiled(decoded, batch_size, options.device)
    batches = max(1, math.ceil(images / batch_size))
    with torch.inference_mode():
        for _ in range(2):  # warm-up: cuDNN/oneDNN choose kernels for this shape
            embed.embed_batch(prepared, x, options)
        _sync(options.device)
        started = time.perf_counter()
        for _ in range(batches):
            embed.embed_batch(prepared, x, options)  # returns CPU tensors: synchronises
        _sync(options.device)
        return batches * batch_size / (time.perf_counter() - started)


def cpu_reference_norms(model: torch.nn.Module, decoded: torch.Tensor, family: str) -> np.ndarray:
    """featnorm's fp32 CPU norms of ``decoded`` (N,), the reference of every deviation."""
    cpu = torch.device("cpu")
    prepared = embed.prepare_model(model, cpu, channels_last=True)
    options = embed.EmbedOptions(family, cpu, channels_last=True)
    with torch.inference_mode():
        return np.concatenate(
            [
                embed.embed_batch(prepared, decoded[i : i + 16], options)[1].numpy()
                for i in range(0, len(decoded), 16)
            ]
        )


def _write_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
    tmp.replace(path)


def summarise_sweep(sweep_rows: pd.DataFrame) -> pd.DataFrame:
    """Per arch and precision: the best batch size (by ``pipeline_ips``) and its figures."""
    best = sweep_rows.loc[
        sweep_rows.groupby(["arch", "precision"], sort=False)["pipeline_ips"].idxmax()
    ]
    best_forward = sweep_rows.groupby(["arch", "precision"], sort=False)["forward_ips"].max()
    out = (
        best[
            [
                "arch",
                "precision",
                "device_name",
                "batch_size",
                "pipeline_ips",
                "official_ips",
                "pipeline_ratio",
                "max_rel_norm_dev",
            ]
        ]
        .rename(columns={"batch_size": "best_batch_size"})
        .reset_index(drop=True)
    )
    out["best_forward_ips"] = best_forward.to_numpy()
    out["best_forward_ratio"] = out["best_forward_ips"] / out["official_ips"]
    return out


def sweep(args: argparse.Namespace, device: torch.device) -> pd.DataFrame:
    """Measure every (arch, precision, batch size); write embed_sweep.csv / embed_summary.csv."""
    args.out.mkdir(parents=True, exist_ok=True)
    channels_last = not args.no_channels_last
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="featnorm-bench-") as tmp:
        paths = make_images(Path(tmp), args.images)
        files = embed.ImageFiles(paths, args.family)
        decoded = torch.stack([files[i][0] for i in range(len(paths))])
        subset = decoded[: args.deviation_images]
        cycled = [paths[i % len(paths)] for i in range(args.pipeline_images)]
        shard = pd.DataFrame({"sample_id": np.arange(len(cycled), dtype=np.int64), "path": cycled})
        official_paths = [paths[i % len(paths)] for i in range(args.official_images)]
        for arch in args.arch:
            model = models.build(args.family, arch)
            model.load_state_dict(golden_state_dict(model))
            model.eval()
            reference = cpu_reference_norms(model, subset, args.family)
            on_device = model if device.type == "cpu" else copy_to(model, device)
            official_loop(official_paths[:2], on_device, device)  # warm-up
            _, official_wall, _ = timed(
                lambda m=on_device: official_loop(official_paths, m, device)
            )
            official_ips = len(official_paths) / official_wall
            logger.info("%s official loop on %s: %.1f img/s", arch, device_name, official_ips)
            del on_device
            for precision in args.precisions:
                options = embed.EmbedOptions(
                    args.family, device, precision=precision, channels_last=channels_last
                )
                prepared = embed.prepare_model(model, device, channels_last=channels_last)
                with torch.inference_mode():
                    norms = np.concatenate(
                        [
                            embed.embed_batch(prepared, subset[i : i + 16], options)[1].numpy()
                            for i in range(0, len(subset), 16)
                        ]
                    )
                deviation = float(np.max(np.abs(norms / reference - 1.0)))
                for batch_size in args.batch_sizes:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    forward_ips = forward_rate(
                        prepared,
                        decoded,
                        options,
                        batch_size=batch_size,
                        images=args.forward_images,
                    )
                    table, pipeline_wall, _ = timed(
                        lambda bs=batch_size, pr=precision, m=model: embed.embed_table(
                            shard,
                            m,
                            family=args.family,
                            device=str(device),
                            batch_size=bs,
                            workers=args.workers,
                            precision=pr,
                            channels_last=channels_last,
                        )
                    )
                    if not (table["status"] == "ok").all():
                        raise RuntimeError(
                            f"{arch} {precision}: embed_table statuses "
                            f"{table['status'].value_counts().to_dict()}"
                        )
                    pipeline_ips = len(shard) / pipeline_wall
                    rows.append(
                        {
                            "arch": arch,
                            "precision": precision,
                            "batch_size": batch_size,
                            "device": device.type,
                            "device_name": device_name,
                            "forward_ips": forward_ips,
                            "pipeline_ips": pipeline_ips,
                            "official_ips": official_ips,
                            "forward_ratio": forward_ips / official_ips,
                            "pipeline_ratio": pipeline_ips / official_ips,
                            "max_rel_norm_dev": deviation,
                            "deviation_images": len(subset),
                            "pipeline_images": len(shard),
                            "workers": args.workers,
                            "channels_last": channels_last,
                            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                            "peak_gpu_mib": (
                                torch.cuda.max_memory_allocated(device) / 2**20
                                if device.type == "cuda"
                                else float("nan")
                            ),
                        }
                    )
                    logger.info(
                        "%s %s batch %d: forward %.1f img/s, pipeline %.1f img/s "
                        "(%.1fx official), max rel norm dev %.2e",
                        arch,
                        precision,
                        batch_size,
                        forward_ips,
                        pipeline_ips,
                        pipeline_ips / official_ips,
                        deviation,
                    )
                    _write_csv(rows, args.out / "embed_sweep.csv", SWEEP_COLUMNS)
                    summary = summarise_sweep(pd.DataFrame(rows, columns=SWEEP_COLUMNS))
                    _write_csv(
                        summary.to_dict("records"),
                        args.out / "embed_summary.csv",
                        list(summary.columns),
                    )
                del prepared
    table = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    logger.info("best batch per arch and precision:\n%s", summary.to_string(index=False))
    return table


def copy_to(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy of ``model`` on ``device`` (``model`` stays where it is, for the CPU reference)."""
    return copy.deepcopy(model).to(device)


if __name__ == "__main__":
    main()
