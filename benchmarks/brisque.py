"""Throughput of featnorm.quality.brisque against OpenCV-contrib's cv2.quality.QualityBRISQUE.

Measures images per second on 250x250 colour JPEGs, one process and one thread, with decoding
excluded (arrays decoded beforehand) and included (``featnorm.data.sources.read_image`` of each file),
both implementations side by side, and prints the speed ratio; then the same with two worker
processes (one thread each) sharing the images.

Robust to a shared, loaded machine: every round runs each implementation once over all images,
in a rotating order, so that load changes hit all of them alike; a round's ratio compares
passes made seconds apart. Each ratio is reported twice, as the median over rounds of the
per-round wall-clock ratio and as the ratio of the median images per CPU-second of this process
(``time.process_time``: time the process actually ran, so the other jobs' share of the CPU drops
out). The CPU-time ratio is the figure to quote on a busy machine; on an idle one both agree.

The JPEGs are made once per run in a temporary folder from the 250x250 reference images (each
re-encoded at JPEG quality 75, 85 and 95, also mirrored), so no image file is shipped. The OpenCV
model files default to ``../shared/reference/brisque/brisque_{model,range}_live.yml`` beside the
checkout; give ``--opencv-model`` / ``--opencv-range`` otherwise.

Usage::

    python benchmarks/brisque.py                 # 240 images, 5 rounds, ~40 s on 2 cores
    python benchmarks/brisque.py --rounds 5 --images /path/to/250x250/images
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from featnorm import threads
from featnorm.data.sources import read_image
from featnorm.quality import brisque

logger = logging.getLogger("benchmarks.brisque")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "brisque"
SIDE = 250  # the reference README's benchmark size (a CASIA-WebFace-like face crop)
JPEG_QUALITIES = (75, 85, 95)  # the README's range of typical dataset JPEGs
PRECISION = {"featnorm": brisque.DEFAULT_PRECISION, "featnorm-f64": "float64"}  # default; MATLAB's
IMPLS = ("featnorm", "featnorm-f64", "opencv")


def make_jpegs(source: Path, folder: Path, count: int) -> list[Path]:
    """Write up to ``count`` 250x250 colour JPEGs made from the images in ``source``."""
    paths: list[Path] = []
    for src in sorted(source.iterdir()):
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (SIDE, SIDE):
            continue
        for variant, img in (("", image), ("_mirror", image[:, ::-1])):
            for q in JPEG_QUALITIES:
                path = folder / f"{src.stem}{variant}_q{q}.jpg"
                cv2.imwrite(str(path), np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, q])
                paths.append(path)
    if not paths:
        raise ValueError(f"no {SIDE}x{SIDE} images in {source}; pass --images with such images")
    return paths[:count]


def _opencv_scorer(model: str, range_file: str):
    return cv2.quality.QualityBRISQUE_create(model, range_file)


def _run(
    impl: str,
    mode: str,
    paths: list[str],
    arrays: list[np.ndarray] | None,
    opencv_files: tuple[str, str],
    batch: int,
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process) to score all images once."""
    quality = _opencv_scorer(*opencv_files) if impl == "opencv" else None
    started, cpu_started = time.perf_counter(), time.process_time()
    for a in range(0, len(paths), batch):
        if mode == "decoded":
            images = arrays[a : a + batch]
        else:
            images = [read_image(p).image for p in paths[a : a + batch]]
        if impl == "opencv":
            for img in images:
                quality.compute(img)
        else:
            brisque.score(images, precision=PRECISION[impl])
    return time.perf_counter() - started, time.process_time() - cpu_started


def _worker(args: tuple) -> float:
    """One worker process: 1 thread, reads, decodes and scores its share of the files."""
    impl, paths, opencv_files, batch = args
    threads.set_threads(1)
    return _run(impl, "files", paths, None, opencv_files, batch)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=Path,
        default=REFERENCE / "images",
        help="folder with 250x250 images to turn into JPEGs",
    )
    parser.add_argument("--count", type=int, default=240, help="number of JPEGs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure")
    parser.add_argument("--batch", type=int, default=64, help="images per featnorm call")
    parser.add_argument("--opencv-model", default=str(REFERENCE / "brisque_model_live.yml"))
    parser.add_argument("--opencv-range", default=str(REFERENCE / "brisque_range_live.yml"))
    parser.add_argument(
        "--processes", type=int, default=2, help="workers for the multi-process figure"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    opencv_files = (args.opencv_model, args.opencv_range)
    for f in opencv_files:
        if not Path(f).is_file():
            parser.error(f"OpenCV model file {f} not found; pass --opencv-model/--opencv-range")
    if not hasattr(cv2, "quality"):
        parser.error("cv2.quality missing: install opencv-contrib-python-headless")

    threads.set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(p) for p in make_jpegs(args.images, Path(tmp), args.count)]
        arrays = [read_image(p).image for p in paths]
        logger.info(
            "%d JPEGs %dx%d, qualities %s; cv2 %s, 1 thread each",
            len(paths),
            SIDE,
            SIDE,
            JPEG_QUALITIES,
            cv2.__version__,
        )
        ours = brisque.score(arrays)
        theirs = np.array([_opencv_scorer(*opencv_files).compute(a)[0] for a in arrays[:20]])
        logger.info(
            "sanity: featnorm mean %.2f (NaN %d); OpenCV mean of first 20 %.2f",
            np.nanmean(ours),
            int(np.isnan(ours).sum()),
            theirs.mean(),
        )

        wall: dict[tuple[str, str], list[float]] = {}  # images per second, one entry per round
        cpu: dict[tuple[str, str], list[float]] = {}  # images per CPU-second of this process
        for r in range(args.rounds):
            order = IMPLS[r % len(IMPLS) :] + IMPLS[: r % len(IMPLS)]  # rotate who runs first
            for mode in ("decoded", "files"):
                for impl in order:
                    seconds, cpu_seconds = _run(impl, mode, paths, arrays, opencv_files, args.batch)
                    wall.setdefault((impl, mode), []).append(len(paths) / seconds)
                    cpu.setdefault((impl, mode), []).append(len(paths) / cpu_seconds)
        med = statistics.median
        for mode, label in (("decoded", "decode excluded"), ("files", "read + decode + score")):
            o, o_cpu = wall[("opencv", mode)], cpu[("opencv", mode)]
            logger.info(
                "%-22s %-22s %5.0f img/s (best %4.0f), %5.0f img/CPU-s",
                label,
                "OpenCV-contrib",
                med(o),
                max(o),
                med(o_cpu),
            )
            for impl in IMPLS[:2]:
                f, f_cpu = wall[(impl, mode)], cpu[(impl, mode)]
                ratios = [a / b for a, b in zip(f, o, strict=True)]
                logger.info(
                    "%-22s %-22s %5.0f img/s (best %4.0f), %5.0f img/CPU-s | vs OpenCV: "
                    "%.2fx CPU-time, %.2fx wall (median of rounds %s)",
                    label,
                    f"featnorm {PRECISION[impl]}",
                    med(f),
                    max(f),
                    med(f_cpu),
                    med(f_cpu) / med(o_cpu),
                    med(ratios),
                    " ".join(f"{x:.2f}" for x in ratios),
                )

        if args.processes > 1:
            ctx = mp.get_context("spawn")
            parts = [paths[k :: args.processes] for k in range(args.processes)]
            with ctx.Pool(args.processes) as pool:
                for impl in IMPLS:
                    pool.map(_worker, [(impl, parts[0][:8], opencv_files, args.batch)])  # warm-up
                    started = time.perf_counter()
                    pool.map(_worker, [(impl, p, opencv_files, args.batch) for p in parts])
                    rate = len(paths) / (time.perf_counter() - started)
                    logger.info(
                        "%d processes x 1 thread, read + decode + score: %-12s %6.0f img/s",
                        args.processes,
                        impl,
                        rate,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
